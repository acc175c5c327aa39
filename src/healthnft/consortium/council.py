"""Admitting an institution by k of the founding council, and handing the network over.

Once a council owns the registry (:mod:`healthnft.ledger.governance`), no single key
admits an institution: each on-chain step of an admission (register, bind its DID, the
issuer right of a hospital, the custodian flag of a custodian) is a proposal that k
council members approve, each with its own key. Patients are the exception, by design:
the council names an enrolment office (the registry's *registrar* role) that registers
patients and binds their DIDs, nothing else.

Each step is looked up before it is proposed — done on chain already, or pending with
the same action, account and arguments — so an admission interrupted half-way is
finished by running it again, never duplicated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from healthnft.errors import Conflict, InvalidInput

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from healthnft.ledger.client import Ledger
    from healthnft.ledger.governance import Governance

Say = Callable[[str], None]


@dataclass(frozen=True)
class Step:
    """One decision of an admission: a governance action on the applicant."""

    action: str
    kind: str | None = None
    key: bytes | None = None
    flag: bool | None = None

    def number(self) -> int:
        from healthnft.ledger.client import KIND_CODES

        if self.kind is not None:
            return KIND_CODES[self.kind]
        return int(self.flag) if self.flag is not None else 0

    def as_kwargs(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key, "flag": self.flag}


def steps_needed(ledger: Ledger, address: str, kind: str, enc_key: bytes, did_key: bytes,
                 issuer: bool | None) -> list[Step]:  # fmt: skip
    """What is still missing on chain for ``address`` to be a member of ``kind``."""
    from healthnft.ledger.client import ISSUER_KINDS
    from healthnft.ledger.consent import Consent

    on_chain, _, _ = ledger.participant(address)
    steps = []
    if on_chain is None:
        steps.append(Step("register", kind=kind, key=enc_key))
    elif on_chain != kind:
        raise Conflict(f"{address} is already registered as a {on_chain}")
    if ledger.did_key(address) is None:
        steps.append(Step("bind-did", key=did_key))
    if (issuer if issuer is not None else kind in ISSUER_KINDS) and not ledger.is_issuer(address):
        steps.append(Step("set-issuer", flag=True))
    if kind == "custodian" and not Consent(ledger).is_custodian(address):
        steps.append(Step("set-custodian", flag=True))
    return steps


def decide(gov: Governance, voters: Sequence[LocalAccount], step: Step, account: str,
           say: Say = lambda _m: None) -> int:  # fmt: skip
    """Carry ``step`` on ``account`` through the council: the pending proposal for it if
    there is one, else a new one, approved by ``voters`` in turn until it executes;
    answers the proposal's id. Fewer willing voters than the threshold: it stays pending
    and this says so."""
    pid = _pending(gov, step, account)
    if pid is None:
        pid = gov.propose(voters[0], step.action, account, **step.as_kwargs())
        say(f"  #{pid} {step.action}: proposed by {voters[0].address}")
    for voter in voters:
        if gov.proposal(pid).state == "executed":
            break
        if gov.has_approved(pid, voter.address):
            continue
        gov.approve(voter, pid)
        say(f"  #{pid} {step.action}: approved by {voter.address}")
    state = gov.proposal(pid)
    if state.state != "executed":
        raise Conflict(f"proposal #{pid} ({step.action} {account}) has {state.approvals} of "
                       f"the {state.threshold} approvals it needs: the other council members "
                       f"approve it with `healthnft governance approve {pid}`")  # fmt: skip
    return pid


def _pending(gov: Governance, step: Step, account: str) -> int | None:
    for p in gov.proposals("pending"):
        if (p.action == step.action and p.account.lower() == account.lower()
                and p.number == step.number()
                and (step.key is None or p.key == step.key)):  # fmt: skip
            return p.proposal_id
    return None


def admit_by_council(gov: Governance, voters: Sequence[LocalAccount], address: str, kind: str,
                     enc_key: bytes, did_key: bytes, issuer: bool | None = None,
                     say: Say = lambda _m: None) -> list[int]:  # fmt: skip
    """Every missing step of ``address``'s admission, each decided by the council;
    the proposals' ids (none when everything was done already)."""
    if len(voters) < gov.threshold():
        raise InvalidInput(f"the council needs {gov.threshold()} approvals; only "
                           f"{len(voters)} member key(s) given")  # fmt: skip
    return [decide(gov, voters, step, address, say)
            for step in steps_needed(gov.ledger, address, kind, enc_key, did_key, issuer)]


def hand_over(ledger: Ledger, admin: LocalAccount, council: list[str], threshold: int, *,
              registrar: str | None = None, evm_version: str | None = None) -> Governance:
    """Hand the network to ``council`` (k = ``threshold``); first name ``registrar`` the
    patients' enrolment office, while the admin still may. Once done, a no-op.
    ``evm_version``: the network's (``paris`` on Clique, which has no PUSH0)."""
    from healthnft.ledger.compiler import DEFAULT_EVM_VERSION
    from healthnft.ledger.governance import Governance

    gov = Governance.of(ledger)
    if gov is not None:
        return gov
    if registrar is not None and not ledger.is_registrar(registrar):
        ledger.set_registrar(admin, registrar, True)
    return Governance.install(ledger, admin, council, threshold,
                              evm_version=evm_version or DEFAULT_EVM_VERSION)
