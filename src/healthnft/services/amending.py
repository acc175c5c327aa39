"""Correcting a record: the owner approves, the issuer mints the corrected version.

Interim: two transactions (mint, then supersede); being replaced by one atomic
transaction with crash recovery.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from healthnft.errors import Conflict, InvalidInput
from healthnft.services.access import catalogued, current_owner, unlock

if TYPE_CHECKING:
    from healthnft.network import Network


@dataclass(frozen=True)
class AmendmentApproved:
    token_id: int
    issuer: str
    approved: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AmendResult:
    token_id: int
    supersedes: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def approve_amendment(net: Network, owner: str, token_id: int, issuer_name: str,
                      passphrase: str | None = None) -> AmendmentApproved:  # fmt: skip
    """The owner lets hospital ``issuer_name`` supersede ``token_id`` with a correction."""
    ident = unlock(net, owner, passphrase)
    hospital = net.issuer_by_name(issuer_name)
    net.ledger.approve_amendment(ident.account, token_id, hospital.address)
    return AmendmentApproved(token_id, hospital.address)


def amend(net: Network, token_id: int, file: Path, issuer_name: str,
          passphrase: str | None = None) -> AmendResult:  # fmt: skip
    """Mint a corrected version of ``token_id`` (with its owner's approval)."""
    from healthnft.ingest import ingest, single_patient

    hospital = net.issuer_by_name(issuer_name)
    owner = current_owner(net, token_id)
    row = catalogued(net, token_id)
    approved = net.ledger.token.functions.amendment_approved(token_id).call()
    if approved.lower() != hospital.address.lower():
        raise Conflict(
            f"the owner has not approved this correction: they run `healthnft "
            f"approve-amendment {token_id} --owner {owner} --issuer {issuer_name}`"
        )
    records = single_patient(ingest([file]))
    if len(records) != 1 or records[0].resource_type != row.resource_type:
        raise InvalidInput(f"give exactly one corrected {row.resource_type} resource")
    ident = net.identity(hospital.address, passphrase)
    holder = net.participant(owner)
    res = net.minter().mint(ident, holder.address, holder.enc_key, records)
    if not res.token_ids:
        raise Conflict("the corrected record is identical to one already minted")
    new = res.token_ids[0]
    net.ledger.supersede(ident.account, token_id, new)
    net.catalog.set_status(token_id, "superseded")
    return AmendResult(new, token_id)
