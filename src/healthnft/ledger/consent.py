"""Python side of the ConsentManager contract: codes, grants, requests, policies, log.

The chain stores only small codes for purposes and categories (never free
text); the tables here are the one place those codes are defined, shared by the
CLI, the custodians and the wallet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from healthnft.errors import LedgerError
from healthnft.ledger.client import KIND_CODES, POLICY_KINDS, Ledger

PURPOSES = {"treatment": 1, "research": 2, "insurance": 3, "public-health": 4}
CATEGORIES = {
    name: code
    for code, name in enumerate(
        [
            "laboratory", "vital-signs", "immunization", "condition", "procedure", "encounter",
            "claim", "diagnostic-report", "care-plan", "care-team", "medication", "allergy",
            "imaging", "note", "demographics", "other", "survey", "social-history", "exam",
            "observation",
        ],
        start=1,
    )
}  # fmt: skip
PURPOSE_NAMES = {v: k for k, v in PURPOSES.items()}
CATEGORY_NAMES = {v: k for k, v in CATEGORIES.items()}
REQUEST_STATES = {1: "pending", 2: "approved", 3: "declined", 4: "reclaimed"}
#: What the access log calls a release under grant 0: no grant, but a guardian recovery
#: (the custodians gave the record keys back to the recovered account).
RECOVERY_PURPOSE = "recovery"


def _purpose_logged(grant_id: int, purpose: int) -> str:
    if grant_id == 0:
        return RECOVERY_PURPOSE
    return PURPOSE_NAMES.get(purpose, str(purpose))


def purpose_code(name: str) -> int:
    if name not in PURPOSES:
        raise LedgerError(f"unknown purpose {name!r}; use one of {', '.join(PURPOSES)}")
    return PURPOSES[name]


def category_code(name: str) -> int:
    if name not in CATEGORIES:
        raise LedgerError(f"unknown category {name!r}; use one of {', '.join(CATEGORIES)}")
    return CATEGORIES[name]


@dataclass(frozen=True)
class Grant:
    grant_id: int
    owner: str
    grantee: str
    category: str | None
    purpose: str
    deidentified_only: bool
    expires: int
    revoked: bool


@dataclass(frozen=True)
class AccessRequest:
    request_id: int
    requester: str
    owner: str
    token_id: int | None
    category: str | None
    purpose: str
    duration: int
    escrow: int
    deadline: int
    state: str
    grant_id: int | None


class Consent:
    """The ConsentManager contract through a :class:`Ledger`."""

    def __init__(self, ledger: Ledger) -> None:
        if ledger.consent is None:
            raise LedgerError("this network has no consent manager deployed")
        self.ledger = ledger
        self.contract = ledger.consent

    def _created_id(self, receipt: dict, event: str, field: str) -> int:
        from web3.logs import DISCARD

        for ev in getattr(self.contract.events, event)().process_receipt(receipt, errors=DISCARD):
            return int(ev["args"][field])
        raise LedgerError(f"no {event} event in the receipt")

    # -- grants -------------------------------------------------------------

    def share_tokens_call(self, grantee: str, token_ids: list[int], purpose: str, expires: int,
                          deidentified_only: bool = False) -> Any:  # fmt: skip
        return self.contract.functions.share_tokens(
            Web3.to_checksum_address(grantee), token_ids, purpose_code(purpose), expires,
            deidentified_only,
        )  # fmt: skip

    def share_category_call(self, grantee: str, category: str, purpose: str, expires: int,
                            deidentified_only: bool = False) -> Any:  # fmt: skip
        return self.contract.functions.share_category(
            Web3.to_checksum_address(grantee), category_code(category), purpose_code(purpose),
            expires, deidentified_only,
        )  # fmt: skip

    def grant_created(self, receipt: dict) -> int:
        """The id of the grant a share's receipt created."""
        return self._created_id(receipt, "GrantCreated", "grant_id")

    def share_tokens(self, owner: LocalAccount, grantee: str, token_ids: list[int], purpose: str,
                     expires: int, deidentified_only: bool = False) -> int:  # fmt: skip
        call = self.share_tokens_call(grantee, token_ids, purpose, expires, deidentified_only)
        return self.grant_created(self.ledger.transact(owner, call))

    def share_category(self, owner: LocalAccount, grantee: str, category: str, purpose: str,
                       expires: int, deidentified_only: bool = False) -> int:  # fmt: skip
        call = self.share_category_call(grantee, category, purpose, expires, deidentified_only)
        return self.grant_created(self.ledger.transact(owner, call))

    def revoke(self, owner: LocalAccount, grant_id: int) -> None:
        self.ledger.transact(owner, self.contract.functions.revoke(grant_id))

    def grant(self, grant_id: int) -> Grant | None:
        owner, grantee, cat, purpose, deid, expires, revoked = self.contract.functions.grants(
            grant_id
        ).call()
        if int(owner, 16) == 0:
            return None
        return Grant(grant_id, owner, grantee, CATEGORY_NAMES.get(cat) if cat else None,
                     PURPOSE_NAMES.get(purpose, str(purpose)), bool(deid), int(expires),
                     bool(revoked))  # fmt: skip

    def can_access(self, grant_id: int, grantee: str, token_id: int) -> bool:
        return bool(
            self.contract.functions.can_access(
                grant_id, Web3.to_checksum_address(grantee), token_id
            ).call()
        )

    # -- requests -----------------------------------------------------------

    def request_call(self, owner: str, *, purpose: str, duration: int,
                     token_id: int | None = None, category: str | None = None) -> Any:  # fmt: skip
        return self.contract.functions.request(
            Web3.to_checksum_address(owner), token_id or 0,
            category_code(category) if category else 0, purpose_code(purpose), duration,
        )  # fmt: skip

    def request_created(self, receipt: dict) -> int:
        """The id of the access request a receipt created."""
        return self._created_id(receipt, "AccessRequested", "request_id")

    def request(self, requester: LocalAccount, owner: str, *, purpose: str, duration: int,
                token_id: int | None = None, category: str | None = None,
                reward_wei: int = 0) -> int:  # fmt: skip
        call = self.request_call(owner, purpose=purpose, duration=duration, token_id=token_id,
                                 category=category)  # fmt: skip
        return self.request_created(self.ledger.transact(requester, call, value=reward_wei))

    def approve(self, owner: LocalAccount, request_id: int, deidentified_only: bool = False) -> int:
        receipt = self.ledger.transact(
            owner, self.contract.functions.approve(request_id, deidentified_only)
        )
        return self._created_id(receipt, "RequestSettled", "grant_id")

    def decline(self, owner: LocalAccount, request_id: int) -> None:
        self.ledger.transact(owner, self.contract.functions.decline(request_id))

    def reclaim(self, requester: LocalAccount, request_id: int) -> None:
        self.ledger.transact(requester, self.contract.functions.reclaim(request_id))

    def get_request(self, request_id: int) -> AccessRequest | None:
        (requester, owner, token_id, cat, purpose, duration, escrow, deadline, state,
         grant_id) = self.contract.functions.requests(request_id).call()  # fmt: skip
        if int(requester, 16) == 0:
            return None
        return AccessRequest(
            request_id, requester, owner, int(token_id) or None,
            CATEGORY_NAMES.get(cat) if cat else None, PURPOSE_NAMES.get(purpose, str(purpose)),
            int(duration), int(escrow), int(deadline), REQUEST_STATES.get(state, str(state)),
            int(grant_id) or None,
        )  # fmt: skip

    # -- policies -----------------------------------------------------------

    def add_policy_call(self, *, grantee_kind: str, purpose: str, duration: int,
                        valid_until: int, category: str | None = None,
                        deidentified_only: bool = False) -> Any:  # fmt: skip
        if grantee_kind not in POLICY_KINDS:
            raise LedgerError(f"a policy names one of {', '.join(POLICY_KINDS)}, "
                              f"not {grantee_kind!r}")
        return self.contract.functions.add_policy(
            KIND_CODES[grantee_kind], category_code(category) if category else 0,
            purpose_code(purpose), duration, deidentified_only, valid_until,
        )  # fmt: skip

    def policy_added(self, receipt: dict) -> int:
        """The index of the policy a receipt added."""
        for ev in self.contract.events.PolicyChanged().process_receipt(receipt):
            return int(ev["args"]["index"])
        raise LedgerError("no PolicyChanged event in the receipt")

    def add_policy(self, owner: LocalAccount, *, grantee_kind: str, purpose: str, duration: int,
                   valid_until: int, category: str | None = None,
                   deidentified_only: bool = False) -> int:  # fmt: skip
        call = self.add_policy_call(grantee_kind=grantee_kind, purpose=purpose,
                                    duration=duration, valid_until=valid_until,
                                    category=category, deidentified_only=deidentified_only)
        return self.policy_added(self.ledger.transact(owner, call))

    def remove_policy(self, owner: LocalAccount, index: int) -> None:
        self.ledger.transact(owner, self.contract.functions.remove_policy(index))

    # -- custodians and the access log -------------------------------------

    def set_custodian(self, admin: LocalAccount, custodian: str, status: bool = True) -> None:
        call = self.contract.functions.set_custodian(Web3.to_checksum_address(custodian), status)
        self.ledger.admin_transact(admin, call)

    def log_access_call(self, grant_id: int, token_id: int) -> Any:
        """The custodian's ``log_access(grant_id, token_id)``, to simulate, sign or send."""
        return self.contract.functions.log_access(grant_id, token_id)

    def is_custodian(self, address: str) -> bool:
        return bool(self.contract.functions.is_custodian(
            Web3.to_checksum_address(address)).call())  # fmt: skip

    def log_access(self, custodian: LocalAccount, grant_id: int, token_id: int) -> dict:
        return self.ledger.transact(custodian, self.log_access_call(grant_id, token_id))

    def access_log(self, owner: str) -> list[dict[str, Any]]:
        """Every key release for ``owner``'s records, oldest first, from the chain's events."""
        logs = self.ledger.logs("AccessLogged", owner=owner)
        out = []
        for ev in logs:
            block = self.ledger.w3.eth.get_block(ev["blockNumber"])
            out.append({
                "token_id": int(ev["args"]["token_id"]),
                "grantee": ev["args"]["grantee"],
                "grant_id": int(ev["args"]["grant_id"]),
                "purpose": _purpose_logged(int(ev["args"]["grant_id"]), ev["args"]["purpose"]),
                "custodian": ev["args"]["custodian"],
                "time": int(block["timestamp"]),
            })  # fmt: skip
        return out
