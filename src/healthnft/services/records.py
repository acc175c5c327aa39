"""Records in wallets: list, open, write as files, verify, transfer, burn, de-identify.

Every read goes through :func:`open_record` or :func:`save_record`: the owner
opens with their own key after the chain checks (proof, root, owner); anyone
else opens through the key custodians, which release only under a live grant. An owner
whose home does not hold the record (a patient's own home on a network of nodes) opens
it through :mod:`healthnft.services.own_records`: fetched from the issuer's node,
checked and decrypted on the device.
A burned record is reported as burned only to its last owner and to grantees
who could open it then; anyone else gets the refusal a stranger gets.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from healthnft.errors import (
    AccessDenied,
    Conflict,
    HealthNFTError,
    InvalidInput,
    NotFound,
    UnknownParticipant,
)
from healthnft.services import custody, own_records
from healthnft.services.access import (
    BURNED,
    NOT_VISIBLE,
    TOKEN_IDS,
    catalogued,
    check_token_ids,
    current_owner,
    require_owner,
    same,
    unlock,
)

if TYPE_CHECKING:
    from healthnft.network import Network
    from healthnft.store.catalogue import Participant, RecordRow
    from healthnft.wallet.wallet import OpenedRecord, Verification

#: Said on every transfer: re-encryption protects the future, not the past.
TRANSFER_NOTE = "transfer stops future access; it cannot take back what was already read"
#: How de-identified copies are made, as recorded with each link.
SAFE_HARBOR = "HIPAA Safe Harbor (45 CFR 164.514(b)(2))"
DICOM_BASIC_PROFILE = "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile"


@dataclass(frozen=True)
class ListedRecord:
    """One line of a wallet's listing (coarse metadata only; the content stays sealed)."""

    token_id: int
    category: str
    resource_type: str
    status: str
    effective_date: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SavedFile:
    """A record written as a file (or a study as a folder of files)."""

    token_id: int
    out: str
    details: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"token_id": self.token_id, "out": self.out, **self.details}


@dataclass(frozen=True)
class Transferred:
    token_id: int
    owner: str
    note: str = TRANSFER_NOTE
    #: Remote custodians not reached with the record's re-split shares (sent again later).
    custody_pending: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DerivedCopy:
    """A de-identified copy minted as its own token, linked to its original off chain."""

    token_id: int
    derived_from: int
    method: str
    category: str
    resource_type: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The status of a token the chain says a wallet owns whose record this home does not
#: hold: on a network of separate nodes, the ciphertext stays at the node that minted it.
AT_ISSUER = "at-issuer"


def list_records(net: Network, owner: str) -> list[ListedRecord]:
    """The records ``owner`` holds, each confirmed against its owner on chain.

    Those this home holds come with their coarse metadata; a token the chain says the
    owner holds but this home does not (a patient's own home, when a hospital's node
    minted into its wallet) is listed too, as :data:`AT_ISSUER`, with what the chain
    tells and nothing else: a wallet must not miss a record because it lives elsewhere.
    """
    net.participant(owner)
    rows = [ListedRecord(r["token_id"], r["category"], r["resource_type"], r["status"],
                         r["effective_date"]) for r in net.wallet().list(owner)]  # fmt: skip
    listed, catalogue = {r.token_id for r in rows}, net.catalog.catalogue
    rows += [ListedRecord(t, "unknown", "", AT_ISSUER, None) for t in _owned_on_chain(net, owner)
             if t not in listed and catalogue.record(t) is None]  # fmt: skip
    return sorted(rows, key=lambda r: r.token_id)


def _owned_on_chain(net: Network, owner: str) -> list[int]:
    """Token ids ``owner`` owns now: those minted into its wallet (ERC-2309 ranges) or
    transferred to it (from the event index, synced by block range), confirmed against
    the chain's current owners (a token given away or burned since drops out)."""
    ledger = net.ledger
    received: set[int] = set()
    for address in _lineage(net, owner):
        for ev in ledger.logs("ConsecutiveTransfer", toAddress=address):
            received.update(range(int(ev["args"]["fromTokenId"]),
                                  int(ev["args"]["toTokenId"]) + 1))  # fmt: skip
        received.update(int(ev["args"]["token_id"])
                        for ev in ledger.logs("Transfer", receiver=address))  # fmt: skip
    ids = sorted(received)
    return [t for t, now in zip(ids, ledger.owners_of(ids), strict=True)
            if now is not None and same(now, owner)]  # fmt: skip


def _lineage(net: Network, owner: str) -> list[str]:
    """``owner`` and every account guardians recovered into it (the chain's
    ``OwnerRecovered`` events): the tokens those received are ``owner``'s now."""
    out, todo = [owner], [owner]
    while todo and len(out) <= 8:  # the registry's MAX_RECOVERIES
        for ev in net.ledger.logs("OwnerRecovered", new_owner=todo.pop()):
            old = str(ev["args"]["old_owner"])
            if not any(same(old, a) for a in out):
                out.append(old)
                todo.append(old)
    return out


def open_record(net: Network, reader: str | None, token_id: int, passphrase: str | None = None,
                *, check_imaging: bool = True) -> OpenedRecord:  # fmt: skip
    """Open a record as ``reader`` (default: its owner, with the owner's key in this home).

    The owner decrypts after the chain checks; a grantee reads through the
    custodians. An imaging study opened by its owner is authenticated chunk by
    chunk first, so nothing is shown of a tampered study (``check_imaging=False``
    skips that for a caller that shows only the study's description, such as a
    listing, and reads no image).
    """
    check_token_ids(token_id)
    if reader is None:
        reader = current_owner(net, token_id)
    ident = unlock(net, reader, passphrase)
    try:
        owner = net.ledger.owner_of(token_id)
        if same(owner, ident.address) and own_records.held_elsewhere(net, token_id):
            return own_records.open_own(net, ident, token_id, check_imaging=check_imaging)
        if same(owner, ident.address):
            wallet = net.wallet()
            rec = wallet.open(token_id, ident)
            if rec.is_study and check_imaging:
                wallet.check_stream(token_id, ident)
            return rec
        return custody.open_shared(net, ident, token_id)
    except HealthNFTError as exc:
        raise _burned_or(net, token_id, ident.address, exc) from None


def _burned_or(net: Network, token_id: int, reader: str, exc: HealthNFTError) -> HealthNFTError:
    """Why ``reader`` cannot open ``token_id``, told only as far as they may know.

    A former owner or grantee learns that a record was burned; anyone else who may
    not open it gets :data:`NOT_VISIBLE`, exactly as for a token that never existed.
    Reached only after the reader's keystore opened: they are who they claim.
    """
    if not isinstance(exc, AccessDenied | UnknownParticipant | NotFound):
        return exc  # tampered data, an unavailable custodian: said as it is
    if net.wallet().could_see_burned(token_id, reader):
        return AccessDenied(f"token {token_id}: {BURNED}")
    return NotFound(NOT_VISIBLE)


def describe_study(rec: OpenedRecord) -> tuple[str, list[tuple[str, str, str, str]]]:
    """A study's headline and its series (number, modality, description, instances)."""
    from healthnft.wallet.files import study_listing

    return study_listing(rec.meta)


def save_record(net: Network, reader: str | None, token_id: int, out: Path | str,
                passphrase: str | None = None) -> SavedFile:  # fmt: skip
    """Write a record as a file for its owner (default) or a grantee.

    A note as text or its original PDF, a picture as PNG, a study as its first
    image (.png), its DICOM files (a folder) or .dcm; anything as .json. A grantee
    reads through the custodians (each release logged on chain); a study's chunks
    are then streamed with the released key, which never leaves this call.
    """
    from healthnft.wallet.files import record_file, write_private, write_study
    from healthnft.wallet.wallet import OpenedRecord

    check_token_ids(token_id)
    out = Path(out)
    if reader is None:
        reader = current_owner(net, token_id)
    ident = unlock(net, reader, passphrase)
    wallet = net.wallet()
    source: Any
    try:
        if same(net.ledger.owner_of(token_id), ident.address) and own_records.held_elsewhere(
                net, token_id):  # a patient's own home: opened here, fetched from the issuer
            got = own_records.fetch_own(net, ident, token_id)
            rec = OpenedRecord.from_plaintext(token_id, got.plain.meta, got.plain.canonical)
            source, wallet = (got.row, got.plain), net.wallet(got.chunks)
        elif same(net.ledger.owner_of(token_id), ident.address):
            rec = wallet.open(token_id, ident)
            source = ident
        else:
            row, plain, chunks = custody.release_shared(net, ident, token_id)
            rec = OpenedRecord.from_plaintext(token_id, plain.meta, plain.canonical)
            source = (row, plain)
            wallet = net.wallet(chunks)  # a study held by another node: streamed from it
    except HealthNFTError as exc:
        raise _burned_or(net, token_id, ident.address, exc) from None
    if rec.is_study:
        return SavedFile(token_id, str(out), write_study(wallet, token_id, source, out,
                                                         rec.resource))  # fmt: skip
    data = record_file(rec.resource, out.suffix)
    write_private(out, data)
    return SavedFile(token_id, str(out), {"bytes": len(data)})


def verify_record(net: Network, token_id: int, passphrase: str | None = None, *,
                  content: bool = True) -> Verification:  # fmt: skip
    """Check a record against the chain; with the owner's key in the home, its content too.

    ``content=False`` checks only what needs no key (proof, root, owner, stored
    bytes): what a grantee's page shows beside a record it opened. An id that cannot
    name a record is checked as any id not in the catalogue: not valid, unknown token.
    """
    if token_id not in TOKEN_IDS:
        from healthnft.wallet.wallet import UNKNOWN_TOKEN, Verification

        return Verification(token_id, False, UNKNOWN_TOKEN, False)
    owner = net.ledger.owner_of(token_id)
    reader = None
    if content and owner is not None and net.has_key(owner):
        try:
            reader = net.identity(owner, passphrase)
        except HealthNFTError:
            reader = None
    if reader is not None and own_records.held_elsewhere(net, token_id):
        return own_records.verify_own(net, reader, token_id)  # a patient's own home
    return net.wallet().verify(token_id, reader)


def verify_shared(net: Network, token_id: int) -> Verification:
    """What a grantee's page shows beside a shared record it has just opened.

    Call it right after :func:`open_record` succeeded for the grantee. A record this home
    holds is checked as :func:`verify_record` checks it without a key. A record fetched
    from the node that minted it is not held here, so the catalogue cannot vouch for it;
    it was checked on arrival instead (its row's proof, batch root and owner against the
    chain, its ciphertext against its digest, its content by decryption: the commitment
    is the AEAD's associated data), so only what can have changed since is asked of the
    chain again: burned, or superseded by a correction.
    """
    from healthnft.wallet.wallet import Verification

    if token_id not in TOKEN_IDS or net.catalog.catalogue.record(token_id) is not None:
        return verify_record(net, token_id, content=False)
    if net.ledger.is_burned(token_id):
        return Verification(token_id, False, BURNED, False)
    newer = net.ledger.superseded_by(token_id)
    if newer:
        return Verification(token_id, False, f"superseded: corrected by token {newer}", True)
    return Verification(token_id, True, "authentic: fetched from the issuer's node; proof, "
                        "root, owner, ciphertext digest and content match", True)  # fmt: skip


def transfer(net: Network, owner: str, token_id: int, to: str,
             passphrase: str | None = None) -> Transferred:  # fmt: skip
    """Give a record to a registered participant, re-encrypted so only they can open it."""
    from healthnft.wallet.actions import OwnerActions

    ident = unlock(net, owner, passphrase)
    row = catalogued(net, token_id)
    resuming = net.catalog.staged_transfer(token_id) is not None and same(row.owner, owner)
    # (a crash after the on-chain transfer is completed by its sender)
    row, recipient = check_transfer(net, ident.address, token_id, to, resuming=resuming)
    _, _, issuer_key = net.ledger.participant(row.issuer)
    OwnerActions(net.ledger, net.catalog, net.blobs, net.custodians()).transfer(
        ident, token_id, recipient.address, recipient.enc_key, issuer_key
    )
    from healthnft.services.custodians import deliver_if_remote

    pending = deliver_if_remote(net, passphrase)  # the re-split shares, as a mint's
    return Transferred(token_id, recipient.address, custody_pending=pending)


def check_transfer(net: Network, owner: str, token_id: int, to: str, *,
                   resuming: bool = False) -> tuple[RecordRow, Participant]:  # fmt: skip
    """Every check of :func:`transfer` for ``owner`` (an address; no key needed): the
    record's catalogue row (this node holds it) and its registered recipient, once the
    record is the owner's on chain (unless ``resuming`` a transfer already mined)."""
    row = catalogued(net, token_id)
    if not resuming:
        require_owner(net, token_id, owner)
    recipient = net.participant(to)
    if same(recipient.address, owner):
        raise InvalidInput("the record is already yours")
    return row, recipient


def burn(net: Network, owner: str, token_id: int, passphrase: str | None = None,
         *, confirm: bool) -> None:  # fmt: skip
    """Burn the token and crypto-shred its record (irreversible; ``confirm`` must say so)."""
    from healthnft.wallet.actions import OwnerActions

    if not confirm:
        raise InvalidInput("burning is irreversible: confirm it (--yes)")
    ident = unlock(net, owner, passphrase)
    row = catalogued(net, token_id)
    if not (net.ledger.is_burned(token_id) and same(row.owner, ident.address)):
        require_owner(net, token_id, ident.address)  # burning again is a no-op for its owner
    OwnerActions(net.ledger, net.catalog, net.blobs, net.custodians()).burn(ident, token_id)


def _deidentify_study(net: Network, token_id: int, owner: Any, issuer: Any, rec: Any,
                      key: bytes, minter: Any, patient: Any) -> tuple[Any, Any]:  # fmt: skip
    """Decrypt a study into a private folder, de-identify every instance, mint the copy.

    UIDs are remapped with one key for the whole study (the same record always gives
    the same copy); an image that may carry burned-in text is refused, not copied.
    The decrypted and de-identified files live only in a 0700 folder inside the home
    and are deleted whatever happens.
    """
    import os
    import shutil
    import tempfile

    from healthnft.records.deid.dicom import DicomDeidentifier
    from healthnft.records.dicom import prepare_study, read_studies
    from healthnft.wallet.files import write_study

    work = Path(tempfile.mkdtemp(prefix=".deid-", dir=net.home))
    try:
        os.chmod(work, 0o700)
        source, target = work / "source", work / "copy"
        write_study(net.wallet(), token_id, owner, source, rec.resource)
        target.mkdir(mode=0o700)
        deid = DicomDeidentifier(key=key)
        files = sorted(p for p in source.iterdir() if p.is_file())
        for n, path in enumerate(files, 1):
            deid.file(path, target / path.name, label=f"instance {n} of {len(files)}")
        studies = read_studies([target])
        if len(studies) != 1:
            raise Conflict(f"token {token_id}: the de-identified copy is not one study")
        record = prepare_study(studies[0])
        return minter.mint(issuer, patient.address, patient.enc_key, [record]), record
    finally:
        shutil.rmtree(work, ignore_errors=True)


def deidentify(net: Network, token_id: int, passphrase: str | None = None) -> DerivedCopy:
    """Mint a de-identified copy of a record into its owner's wallet, linked to it.

    The copy is made per HIPAA Safe Harbor (:mod:`healthnft.records.deid.fhir`; a
    note's text is scrubbed with every identifier the patient's own Patient
    records hold), attested and minted by the hospital that issued the original,
    as a token of its own. Its pseudonyms come from a key derived from the home's
    secret and the token id, so the same record always gives the same copy: a
    retry after a crash finds the copy already minted instead of minting a second.
    """
    from healthnft.records import SourceResource, prepare
    from healthnft.records.deid.fhir import deidentify_resource, known_identifiers

    holder = current_owner(net, token_id)
    row = catalogued(net, token_id)
    links = net.derivatives()
    if links.original_of(token_id) is not None:
        raise Conflict(f"token {token_id} is itself a de-identified copy")
    owner = net.identity(holder, passphrase)
    if not net.has_key(row.issuer):
        raise AccessDenied(f"token {token_id}: its issuing hospital's key is not in this "
                           "home, and only the issuer may mint the copy")  # fmt: skip
    issuer = net.identity(row.issuer, passphrase)
    wallet = net.wallet()
    rec = wallet.open(token_id, owner)
    secret = net.files.secret_key_path.read_bytes()
    key = hmac.new(secret, b"healthnft/deid/v1|%d" % token_id, hashlib.sha256).digest()
    method = SAFE_HARBOR
    minter = net.minter()
    patient = net.participant(holder)
    if rec.is_study:
        method = DICOM_BASIC_PROFILE
        res, record = _deidentify_study(net, token_id, owner, issuer, rec, key, minter, patient)
    else:
        if not str(rec.meta.get("format", "")).startswith("application/fhir+json"):
            raise InvalidInput(f"token {token_id}: de-identifying {rec.meta.get('format')} "
                               "records is not supported")  # fmt: skip
        patients = [wallet.open(r["token_id"], owner).resource for r in wallet.list(holder)
                    if r["resource_type"] == "Patient"]  # fmt: skip
        copy = deidentify_resource(rec.resource, key=key, known=known_identifiers(patients))
        record = prepare(SourceResource(copy, f"de-identified copy of token {token_id}"))
        res = minter.mint(issuer, holder, patient.enc_key, [record])
    new = res.token_ids[0] if res.token_ids else net.catalog.token_with_record_key(
        minter.record_key(issuer.address, holder, record.canonical))
    if new is None:
        raise Conflict(f"token {token_id}: the de-identified copy was not minted")
    links.add(token_id, new, method)
    from healthnft.services.custodians import deliver_if_remote

    deliver_if_remote(net, passphrase)  # after the link: custodians learn the original
    return DerivedCopy(new, token_id, method, record.category, record.resource_type)
