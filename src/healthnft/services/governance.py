"""Governance: the founding institutions' council decides membership, k of n.

A home's admin key registers members alone only while no council is installed (the
embedded default). ``install`` hands the network's registry and consent manager over
to a council of registered institutions; from then on a change to the membership
(register, suspend, reactivate, rekey, issuer and custodian roles, the council itself)
is a proposal that executes on its ``threshold``-th approval. Each council member acts
with its own key, held in its own home (here: any participant key this home holds).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from healthnft.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from healthnft.ledger.governance import Governance, Proposal
    from healthnft.network import Network


@dataclass(frozen=True)
class CouncilView:
    address: str
    council: list[str]
    threshold: int
    voting_period_s: int
    installed: bool
    pending: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ProposalView:
    proposal: dict[str, Any]
    text: str
    executed: bool = False
    gas_used: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _address(value: str, what: str) -> str:
    from web3 import Web3

    if not Web3.is_address(value):
        raise InvalidInput(f"{what} must be a 0x… Ethereum address")
    return Web3.to_checksum_address(value)


def _council(net: Network) -> Governance:
    from healthnft.ledger.governance import Governance

    gov = Governance.of(net.ledger)
    if gov is None:
        raise NotFound("this network has no governance council: its admin key registers "
                       "members (install one with `governance install`)")  # fmt: skip
    return gov


def _view(gov: Governance, p: Proposal, executed: bool = False) -> ProposalView:
    gas = int(gov.last_receipt["gasUsed"]) if gov.last_receipt else None
    return ProposalView(p.to_json(), p.describe(), executed, gas)


def install(net: Network, council: list[str], threshold: int, voting_period_s: int | None = None,
            passphrase: str | None = None) -> CouncilView:  # fmt: skip
    """Hand the network over to ``council`` (registered institutions' addresses), of which
    ``threshold`` must approve each change. Final: the admin key decides nothing after."""
    from healthnft.ledger.governance import DEFAULT_VOTING_PERIOD_S, Governance

    members = [_address(a, "a council member") for a in council]
    if Governance.of(net.ledger) is not None:
        raise InvalidInput("this network already has a governance council")
    evm = net.config.get("evm_version") or None
    admin = net.admin(passphrase)
    Governance.install(net.ledger, admin.account, members, threshold,
                       voting_period_s or DEFAULT_VOTING_PERIOD_S,
                       **({"evm_version": evm} if evm else {}))  # fmt: skip
    return status(net)


def status(net: Network) -> CouncilView:
    """The council, its threshold and voting period, and how many proposals are pending."""
    gov = _council(net)
    pending = len(gov.proposals("pending"))
    return CouncilView(gov.address, gov.council(), gov.threshold(), gov.voting_period(),
                       gov.installed(), pending)  # fmt: skip


def list_proposals(net: Network, state: str | None = None) -> list[ProposalView]:
    """Every proposal, newest first (``state``: pending, executed, expired or void)."""
    from healthnft.ledger.governance import STATES

    if state is not None and state not in STATES.values():
        known = ", ".join(s for s in STATES.values() if s != "unknown")
        raise InvalidInput(f"unknown state {state!r}; use one of {known}")
    gov = _council(net)
    return [ProposalView(p.to_json(), p.describe()) for p in gov.proposals(state)]


def propose(net: Network, member: str, action: str, account: str, *, kind: str | None = None,
            key_hex: str | None = None, flag: bool | None = None, number: int | None = None,
            new_account: str | None = None,
            passphrase: str | None = None) -> ProposalView:  # fmt: skip
    """Council ``member`` (a key this home holds) proposes ``action`` on ``account``; the
    proposal counts as its approval."""
    from healthnft.ledger.governance import ACTIONS

    if action not in ACTIONS:
        raise InvalidInput(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
    key = None
    if key_hex is not None:
        try:
            key = bytes.fromhex(key_hex.removeprefix("0x"))
        except ValueError:
            raise InvalidInput("--key must be 32 bytes in hex") from None
        if len(key) != 32:
            raise InvalidInput("--key must be 32 bytes in hex")
    gov = _council(net)
    signer = net.identity(_address(member, "--member"), passphrase).account
    incoming = _address(new_account, "--new-account") if new_account else None
    pid = gov.propose(signer, action, _address(account, "the account"), kind=kind, key=key,
                      flag=flag, number=number, new_account=incoming)  # fmt: skip
    p = gov.proposal(pid)
    return _view(gov, p, p.state == "executed")


def approve(net: Network, member: str, proposal_id: int,
            passphrase: str | None = None) -> ProposalView:  # fmt: skip
    """Council ``member`` approves; the approval that reaches the threshold executes it."""
    gov = _council(net)
    signer = net.identity(_address(member, "--member"), passphrase).account
    executed = gov.approve(signer, proposal_id)
    return _view(gov, gov.proposal(proposal_id), executed)


def decide(net: Network, members: list[str], action: str, account: str, *,
           kind: str | None = None, key: bytes | None = None, flag: bool | None = None,
           number: int | None = None, new_account: str | None = None,
           passphrase: str | None = None) -> ProposalView:  # fmt: skip
    """Propose with the first of ``members`` and approve with the next until executed: for a
    home (a demo, a test, a consortium's set-up) that holds enough council keys itself.
    Raises :class:`InvalidInput` when the keys given fall short of the threshold."""
    gov = _council(net)
    if len(members) < gov.threshold():
        raise InvalidInput(f"{len(members)} council key(s) given; {gov.threshold()} must "
                           "approve")  # fmt: skip
    signers = [net.identity(_address(m, "a council member"), passphrase).account
               for m in members]  # fmt: skip
    pid = gov.propose(signers[0], action, _address(account, "the account"), kind=kind, key=key,
                      flag=flag, number=number, new_account=new_account)  # fmt: skip
    executed = gov.proposal(pid).state == "executed"
    for signer in signers[1:]:
        if executed:
            break
        executed = gov.approve(signer, pid)
    return _view(gov, gov.proposal(pid), executed)
