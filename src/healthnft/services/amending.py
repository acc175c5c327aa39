"""Correcting a record: the owner approves an issuer, the issuer amends.

Why a module of its own: a correction is the one state change that spans two tokens,
and it must never be left half done. The contract's ``amend`` mints the corrected
record *and* supersedes the old token in one transaction, and the minting journal
(prepared → sent with its signed transaction → minted) makes that transaction
crash-safe: a run killed at any moment leaves either nothing (rolled back by the next
run) or a journaled transaction that the next run re-sends or finds mined. So the one
rule here is what a *retry* means:

* the same corrected record, already minted and already superseding the old token
  (a crash came after the transaction): the same :class:`AmendResult`, not an error;
* a different correction once the approval is spent: :class:`~healthnft.errors.Conflict`
  saying so (the old token is already corrected; the next correction amends the new
  one, with a new approval);
* the same record as one minted for another reason: a duplicate, also a ``Conflict``.

Both functions take an open :class:`~healthnft.network.Network` and raise only
:mod:`healthnft.errors` classes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from healthnft.errors import Conflict, InvalidInput, NotFound
from healthnft.services.access import TOKEN_IDS, require_owner

if TYPE_CHECKING:
    from healthnft.network import Network
    from healthnft.store.catalogue import Participant
    from healthnft.vault.catalog import RecordRow


@dataclass(frozen=True)
class ApprovalResult:
    """The owner allowed ``issuer`` (an address) to correct ``token_id`` once."""

    token_id: int
    issuer: str
    approved: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AmendResult:
    """``token_id`` is the corrected record; it supersedes token ``supersedes``.

    ``resumed``: the correction was finished by an earlier run (this one only
    completed its bookkeeping), so nothing new was minted.
    """

    token_id: int
    supersedes: int
    resumed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"token_id": self.token_id, "supersedes": self.supersedes}


def _live_owner(net: Network, token_id: int) -> tuple[str, RecordRow]:
    """The token's owner on chain and its catalogue row; NotFound, or Conflict if burned."""
    if token_id not in TOKEN_IDS:  # no token can have it: not a SQLite INTEGER, nor an ABI uint
        raise NotFound(f"token {token_id} does not exist in this home")
    owner = net.ledger.owner_of(token_id)
    row = net.catalog.record(token_id)
    if owner is not None and row is not None:
        return owner, row
    if owner is None and 0 < token_id < net.ledger.next_token_id():
        raise Conflict(f"token {token_id} was burned: there is nothing left to correct")
    raise NotFound(f"token {token_id} does not exist in this home")


def approve_amendment(net: Network, owner: str, token_id: int, issuer_name: str,
                      passphrase: str | None = None) -> ApprovalResult:  # fmt: skip
    """As ``owner``, allow the hospital ``issuer_name`` to correct ``token_id`` once.

    The approval is spent by the correction it allows, and dropped if the token is
    transferred or burned first.
    """
    ident = net.identity(net.participant(owner).address, passphrase)
    hospital = check_approve_amendment(net, ident.address, token_id, issuer_name)
    net.ledger.approve_amendment(ident.account, token_id, hospital.address)
    return ApprovalResult(token_id, hospital.address)


def check_approve_amendment(net: Network, owner: str, token_id: int,
                            issuer_name: str) -> Participant:  # fmt: skip
    """Every check of :func:`approve_amendment` for ``owner`` (an address; no key
    needed): the hospital it names, once the token is the owner's, live and not yet
    corrected."""
    hospital = net.issuer_by_name(issuer_name)
    require_owner(net, token_id, owner)  # anyone else: as if it did not exist
    _live_owner(net, token_id)
    newer = net.ledger.superseded_by(token_id)
    if newer:
        raise Conflict(f"token {token_id} is already corrected by token {newer}; "
                       f"approve a correction of token {newer} instead")  # fmt: skip
    return hospital


def amend(net: Network, token_id: int, file: Path, issuer_name: str,
          passphrase: str | None = None) -> AmendResult:  # fmt: skip
    """As the hospital ``issuer_name``, mint ``file`` (one corrected FHIR resource of the
    same type) as the new version of ``token_id``, which it supersedes, in one transaction.

    Safe to run again after a crash: see the module's docstring.
    """
    from healthnft.ingest import ingest, single_patient

    hospital = net.issuer_by_name(issuer_name)
    owner, row = _live_owner(net, token_id)
    records = single_patient(ingest([file]))
    if len(records) != 1 or records[0].resource_type != row.resource_type:
        raise InvalidInput(f"give exactly one corrected {row.resource_type} resource")
    minter = net.minter()
    minter.recover()  # finishes (or rolls back) a correction a crash interrupted
    key = minter.record_key(hospital.address, owner, records[0].canonical)
    newer = net.ledger.superseded_by(token_id)
    if newer:
        if net.catalog.token_with_record_key(key) == newer:
            if row.status == "active":  # the chain says superseded; so does the catalogue now
                net.catalog.set_status(token_id, "superseded")
            return AmendResult(newer, token_id, resumed=True)
        raise Conflict(
            f"token {token_id} is already corrected by token {newer}: the owner's approval "
            f"was spent on that correction; to correct it again, amend token {newer} with "
            "the owner's new approval"
        )
    approved = net.ledger.amendment_approved(token_id)
    if approved is None or approved.lower() != hospital.address.lower():
        # Said without the owner's address: any hospital may guess token ids.
        raise Conflict(f"the owner has not approved a correction of token {token_id} by "
                       f"{issuer_name} (the owner allows it first: `healthnft "
                       "approve-amendment`, or Allow a correction in the web wallet)")
    ident = net.identity(hospital.address, passphrase)
    holder = net.participant(owner)
    res = minter.mint(ident, holder.address, holder.enc_key, records, supersedes=token_id)
    if not res.token_ids:
        same = net.catalog.token_with_record_key(key)
        raise Conflict(f"the corrected record is identical to token {same}, already minted: "
                       "nothing was corrected")  # fmt: skip
    from healthnft.services.custodians import deliver_if_remote

    deliver_if_remote(net, passphrase)  # pending ones are retried by `custodian deliver`
    return AmendResult(res.token_ids[0], token_id)
