"""Python side of the Governance contract: k of n founding institutions decide.

Without governance (the embedded default, ``make demo``) the deploying admin key owns
the ParticipantRegistry and the ConsentManager and registers members alone. A
consortium installs a council instead::

    gov = Governance.install(ledger, admin, council=[a, b, c, d], threshold=3)

which deploys the Governance contract and hands both contracts over to it; from then
on the admin key is refused (``ownable: caller is not the owner``) and every change to
the membership is a proposal that executes when the ``threshold``-th council member
approves it::

    pid = gov.propose(a, "register", newcomer, kind="research", key=enc_public)
    gov.approve(b, pid)              # 2 of 3: still pending
    gov.approve(c, pid)              # 3 of 3: executed in this transaction

The council's members must be registered, active participants (founding
institutions are). A member suspended in the registry can neither propose nor approve,
and its earlier approvals stop counting. Changing the council (add, remove, replace a
member, threshold, voting period) voids every pending proposal: re-propose them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.logs import DISCARD

from healthnft.errors import LedgerError
from healthnft.ledger.client import KIND_CODES, KIND_NAMES, Ledger
from healthnft.ledger.compiler import DEFAULT_EVM_VERSION, compile_contract

#: Action names and their codes in Governance.vy (ACTION_*).
ACTIONS = {
    "register": 1,
    "set-issuer": 2,
    "suspend": 3,
    "reactivate": 4,
    "rekey": 5,
    "bind-did": 6,
    "set-custodian": 7,
    "add-council": 8,
    "remove-council": 9,
    "replace-council": 10,
    "set-threshold": 11,
    "set-voting-period": 12,
    "hand-over": 13,
    "set-registrar": 14,
}
ACTION_NAMES = {v: k for k, v in ACTIONS.items()}
STATES = {0: "unknown", 1: "pending", 2: "executed", 3: "expired", 4: "void"}
DEFAULT_VOTING_PERIOD_S = 7 * 24 * 3600
ZERO = "0x" + "00" * 20


@dataclass(frozen=True)
class Proposal:
    """A proposal as the chain reports it (``approvals`` counts live council members)."""

    proposal_id: int
    action: str
    account: str
    number: int
    key: bytes
    new_account: str | None
    proposer: str
    deadline: int
    state: str
    approvals: int
    threshold: int

    def describe(self) -> str:
        what = {
            "register": lambda: f"register {self.account} as {KIND_NAMES.get(self.number, '?')}",
            "set-issuer": lambda: (
                f"{'grant' if self.number else 'withdraw'} issuer role of {self.account}"
            ),
            "set-custodian": lambda: (
                f"{'add' if self.number else 'remove'} custodian {self.account}"
            ),
            "set-registrar": lambda: (
                f"{'name' if self.number else 'withdraw'} patient registrar {self.account}"
            ),
            "replace-council": lambda: (
                f"replace council member {self.account} by {self.new_account}"
            ),
            "set-threshold": lambda: f"set threshold to {self.number}",
            "set-voting-period": lambda: f"set voting period to {self.number} s",
        }.get(self.action, lambda: f"{self.action} {self.account}")()
        return f"#{self.proposal_id} {what}: {self.state}, {self.approvals}/{self.threshold}"

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["key"] = "0x" + self.key.hex()
        return out


class Governance:
    """The Governance contract that owns a :class:`Ledger`'s registry and consent."""

    def __init__(self, ledger: Ledger, address: str) -> None:
        self.ledger = ledger
        self.contract = ledger.w3.eth.contract(
            address=Web3.to_checksum_address(address), abi=compile_contract("Governance").abi
        )
        #: Receipt of the last transaction sent through this object (gas, events).
        self.last_receipt: dict | None = None

    @property
    def address(self) -> str:
        return str(self.contract.address)

    # -- finding and installing ------------------------------------------------

    @classmethod
    def of(cls, ledger: Ledger) -> Governance | None:
        """The council that owns ``ledger``'s registry, or None while an admin key does."""
        owner = ledger.registry.functions.owner().call()
        if not ledger.w3.eth.get_code(owner):
            return None  # an externally owned account: the admin key
        gov = cls(ledger, owner)
        try:
            gov.contract.functions.threshold().call()
        except Exception:  # some other contract owns it: not ours to drive
            return None
        return gov

    @classmethod
    def install(
        cls,
        ledger: Ledger,
        admin: LocalAccount,
        council: list[str],
        threshold: int,
        voting_period_s: int = DEFAULT_VOTING_PERIOD_S,
        evm_version: str = DEFAULT_EVM_VERSION,
    ) -> Governance:
        """Deploy a council over ``ledger``'s contracts and hand them over to it.

        ``admin`` must own the registry and the consent manager; the ``council``
        addresses must be registered, active participants; ``2 <= threshold <=
        len(council)``. Afterwards ``admin`` can no longer change the membership.
        """
        if ledger.consent is None:
            raise LedgerError("this network has no consent manager to hand over")
        compiled = compile_contract("Governance", evm_version)
        members = [Web3.to_checksum_address(a) for a in council]
        args = [ledger.registry.address, ledger.consent.address, members, threshold,
                voting_period_s]  # fmt: skip
        try:
            address = ledger.deploy_contract(admin, compiled.abi, compiled.bytecode, args)
        except LedgerError as exc:
            raise LedgerError(f"governance not installed: {exc} (the council must be "
                              "distinct active participants, 2 <= threshold <= council size, "
                              "the voting period 1 h to 90 days)") from None  # fmt: skip
        ledger.transact(admin, ledger.registry.functions.transfer_ownership(address))
        ledger.transact(admin, ledger.consent.functions.transfer_ownership(address))
        gov = cls(ledger, address)
        if not gov.installed():
            raise LedgerError("governance deployed but the hand-over did not take effect")
        return gov

    def installed(self) -> bool:
        """Whether this council owns both the registry and the consent manager."""
        return bool(self.contract.functions.installed().call())

    # -- reading ---------------------------------------------------------------

    def council(self) -> list[str]:
        return list(self.contract.functions.members().call())

    def threshold(self) -> int:
        return int(self.contract.functions.threshold().call())

    def voting_period(self) -> int:
        return int(self.contract.functions.voting_period().call())

    def proposal_count(self) -> int:
        return int(self.contract.functions.proposal_count().call())

    def proposal(self, proposal_id: int) -> Proposal:
        action, account, number, key, new_account, proposer, deadline, state, approvals = (
            self.contract.functions.proposal(proposal_id).call()
        )
        if state == 0:
            raise LedgerError(f"no governance proposal #{proposal_id}")
        return Proposal(
            proposal_id, ACTION_NAMES.get(action, str(action)), account, int(number),
            bytes(key), None if int(new_account, 16) == 0 else new_account, proposer,
            int(deadline), STATES[state], int(approvals), self.threshold(),
        )  # fmt: skip

    def proposals(self, state: str | None = None) -> list[Proposal]:
        """Every proposal, newest first (only those in ``state`` when given)."""
        out = [self.proposal(i) for i in range(self.proposal_count(), 0, -1)]
        return [p for p in out if state is None or p.state == state]

    def has_approved(self, proposal_id: int, member: str) -> bool:
        return bool(
            self.contract.functions.approved(proposal_id, Web3.to_checksum_address(member)).call()
        )

    # -- deciding --------------------------------------------------------------

    def propose(
        self,
        member: LocalAccount,
        action: str,
        account: str,
        *,
        kind: str | None = None,
        key: bytes | None = None,
        flag: bool | None = None,
        number: int | None = None,
        new_account: str | None = None,
    ) -> int:
        """Propose ``action`` on ``account`` as council ``member`` (counts as its approval);
        the proposal's id. ``kind`` and ``key`` for register, ``key`` for rekey and
        bind-did, ``flag`` for set-issuer, set-custodian and set-registrar, ``number`` for
        set-threshold and set-voting-period, ``new_account`` for replace-council."""
        if action not in ACTIONS:
            raise LedgerError(f"unknown governance action {action!r}; use one of "
                              f"{', '.join(ACTIONS)}")  # fmt: skip
        if kind is not None:
            if kind not in KIND_CODES:
                raise LedgerError(f"unknown participant kind {kind!r}")
            number = KIND_CODES[kind]
        if flag is not None:
            number = int(flag)
        if action in ("register", "rekey", "bind-did") and not key:
            raise LedgerError(f"{action} needs a key")
        if action == "register" and kind is None:
            raise LedgerError("register needs a participant kind")
        call = self.contract.functions.propose(
            ACTIONS[action], Web3.to_checksum_address(account), int(number or 0),
            key or bytes(32), Web3.to_checksum_address(new_account or ZERO),
        )  # fmt: skip
        self.last_receipt = self.ledger.transact(member, call)
        proposed = self.contract.events.Proposed().process_receipt(self.last_receipt,
                                                                   errors=DISCARD)  # fmt: skip
        for event in proposed:
            return int(event["args"]["proposal_id"])
        raise LedgerError("the proposal transaction logged no proposal")

    def approve(self, member: LocalAccount, proposal_id: int) -> bool:
        """Approve as council ``member``; True when this approval executed the proposal."""
        call = self.contract.functions.approve(proposal_id)
        self.last_receipt = self.ledger.transact(member, call)
        executed = self.contract.events.Executed().process_receipt(self.last_receipt,
                                                                   errors=DISCARD)  # fmt: skip
        return bool(executed)
