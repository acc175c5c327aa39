"""A hospital mints records into a patient's wallet: files in, tokens out.

The one minting door for the CLI (files and folders) and the web (uploads):
read and validate everything first (FHIR, notes, DICOM studies; one record per
study), refuse the whole input on the first bad file, then attest, encrypt and
mint in batches, one transaction per batch. Progress is reported through
callbacks so each door can draw it its own way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from healthnft.errors import InvalidInput

if TYPE_CHECKING:
    from healthnft.network import Network


@dataclass(frozen=True)
class Minted:
    records_minted: int
    already_minted: int
    attestations_verified: int
    batches: int
    token_ids: list[int]
    gas_per_record: float
    patient: str
    #: Codes outside an extensible binding's value set (minted all the same): where, never
    #: what ("input file 1 of 2 entry 3: Patient.identifier[2].type has no code from ...").
    warnings: list[str] = field(default_factory=list)
    #: Remote custodians that have not received this (or an earlier) batch's key shares:
    #: the records open for grantees once `healthnft custodian deliver` reaches them.
    custody_pending: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MintProgress:
    """Callbacks a door may pass to watch a mint (each optional)."""

    on_total: Callable[[int, int], None] | None = None  # records, imaging bytes
    on_records: Callable[[int], None] | None = None
    on_bytes: Callable[[int], None] | None = None
    on_warnings: Callable[[list[str]], None] | None = None  # once validated, if any


def mint_files(net: Network, issuer: str, patient: str, files: Sequence[Path],
               passphrase: str | None = None,
               progress: MintProgress | None = None) -> Minted:  # fmt: skip
    """Validate ``files`` (FHIR JSON, .txt/.pdf notes, DICOM files or folders) and mint them.

    ``issuer`` is the hospital's name in this home; ``patient`` the wallet address.
    Records already minted for this patient by this issuer are skipped, so a retry
    after any failure mints nothing twice.
    """
    from healthnft.ingest import ingest, single_patient

    watch = progress or MintProgress()
    hospital = net.issuer_by_name(issuer)
    owner = net.patient(patient)
    read = ingest(list(files))
    records = single_patient(read)
    if not records:
        raise InvalidInput("no patient records in the input (only reference data)")
    warnings = read.warnings
    if warnings and watch.on_warnings:
        watch.on_warnings(warnings)
    ident = net.identity(hospital.address, passphrase)
    imaging = sum(r.manifest.payload_size for r in records if hasattr(r, "manifest"))
    if watch.on_total:
        watch.on_total(len(records), imaging)
    res = net.minter().mint(ident, owner.address, owner.enc_key, records,
                            progress=watch.on_records, on_bytes=watch.on_bytes)  # fmt: skip
    from healthnft.services.custodians import deliver_if_remote

    pending = deliver_if_remote(net, passphrase)
    return Minted(res.minted, res.skipped, res.attested, res.batches, res.token_ids,
                  round(res.gas_used / res.minted, 1) if res.minted else 0,
                  owner.address, warnings, pending)  # fmt: skip
