"""The patient's view: list, open and verify the records a wallet holds.

Listing trusts the chain, not the catalogue: a record is listed only when the
chain says the wallet owns its token. Opening checks, in order, that the
ciphertext's digest matches, that the DEK and record authenticate against the
commitment, and that the commitment opens to the plaintext; any failure is
:class:`~healthnft.errors.Tampered` and nothing is shown.

An imaging study opens like any record — to its manifest (the canonical bytes the
commitment is over) and its metadata — without reading its payload; the payload is
streamed on request (:meth:`Wallet.stream_payload`) from the chunks whose index is in
the sealed metadata, every chunk authenticated and every instance checked against the
manifest. The index holds the stream key, so it never leaves this module: opened
records carry their metadata without it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from healthnft.credentials.trust import ChainTrust
from healthnft.errors import BURNED, AccessDenied, Tampered
from healthnft.keys import Identity
from healthnft.ledger import merkle
from healthnft.ledger.client import Ledger
from healthnft.minting.pipeline import IMAGING_META, STREAM_META
from healthnft.records import exact_json
from healthnft.store import RecordRow, Repositories
from healthnft.vault import (
    BatchKey,
    BlobStore,
    RecordPlaintext,
    StreamIndex,
    open_sealed,
    open_stream,
)
from healthnft.vault.stream import SupportsWrite

_NOBODY = "0x0000000000000000000000000000000000000000"  # a burn's Transfer receiver
#: Why a token that is not in this home's catalogue (or cannot be a token) is not valid.
UNKNOWN_TOKEN = "unknown token: not in this catalogue"


@dataclass(frozen=True)
class OpenedRecord:
    """A decrypted record. ``resource`` holds its decimals as ``Decimal``, digits as the
    hospital sent them: show it with :meth:`resource_json`, never through a float."""

    token_id: int
    meta: dict[str, Any]
    resource: dict[str, Any]

    @classmethod
    def from_plaintext(cls, token_id: int, meta: dict[str, Any],
                       canonical: bytes) -> OpenedRecord:  # fmt: skip
        """The record whose canonical bytes were just authenticated (``Tampered`` if they
        are not JSON). Records of every age read alike: decimals committed as floats
        (before exact decimals) are read as the digits they were committed with."""
        try:
            resource = exact_json.loads(canonical)
        except exact_json.NotJSON:
            raise Tampered(f"token {token_id}: record content is not valid JSON") from None
        return cls(token_id, meta, resource)

    def resource_json(self, *, indent: bool = True) -> bytes:
        """The resource as JSON, each decimal written exactly as committed."""
        return exact_json.dumps(self.resource, indent=indent)

    def __post_init__(self) -> None:
        # Whoever builds one (the owner's wallet, a grantee's custodian path), an opened
        # record never carries the stream index: it holds the stream key.
        if STREAM_META in self.meta:
            object.__setattr__(self, "meta", public_meta(self.meta))

    @property
    def is_study(self) -> bool:
        """Whether this is an imaging study (``resource`` is then its manifest)."""
        return IMAGING_META in self.meta


def recovered(ledger: Ledger, recorded: str, owner: str) -> bool:
    """Whether ``owner`` holds ``recorded``'s tokens because guardians recovered
    ``recorded``'s account into it (the chain's registry says so): a catalogue row
    still under the lost address is then the recovered account's, not a stale one."""
    from healthnft.ledger.recovery import successor_of

    if ledger.registry.functions.recovery_depth(owner).call() == 0:
        return False  # one read for every owner never recovered into
    new = successor_of(ledger, recorded)
    return new is not None and new.lower() == owner.lower()


def public_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """A record's metadata without its stream index (which holds the stream key)."""
    return {k: v for k, v in meta.items() if k != STREAM_META}


@dataclass(frozen=True)
class Verification:
    token_id: int
    valid: bool
    reason: str
    checked_content: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "token_id": self.token_id,
            "valid": self.valid,
            "reason": self.reason,
            "checked_content": self.checked_content,
        }


class Wallet:
    """Read-side operations over one home's ledger, catalogue and blob store."""

    def __init__(self, ledger: Ledger, catalog: Repositories, blobs: BlobStore) -> None:
        self.ledger = ledger
        self.catalog = catalog
        self.catalogue = catalog.catalogue
        self.journal = catalog.journal
        self.blobs = blobs

    def list(self, owner: str) -> list[dict[str, Any]]:
        """The owner's records, each confirmed against its on-chain owner."""
        rows = self.catalogue.records_of(owner)
        on_chain = self.ledger.owners_of([r.token_id for r in rows])
        return [
            {
                "token_id": row.token_id,
                "category": row.category,
                "resource_type": row.resource_type,
                "status": row.status,
                "effective_date": row.effective_date,
            }
            for row, chain_owner in zip(rows, on_chain, strict=True)
            if chain_owner is not None and chain_owner.lower() == owner.lower()
        ]

    def _row(self, token_id: int) -> RecordRow:
        row = self.catalogue.record(token_id)
        if row is None:
            raise AccessDenied(f"token {token_id}: no such record in this wallet")
        return row

    def open(self, token_id: int, reader: Identity) -> OpenedRecord:
        """Decrypt a record for its owner or issuer; refuses tampered data.

        The chain is checked first (proof against the on-chain root, owner), so
        a record whose catalogue entry was altered is never shown.
        """
        row, plain = self._open_checked(token_id, reader)
        return OpenedRecord.from_plaintext(token_id, public_meta(plain.meta), plain.canonical)

    def _open_checked(self, token_id: int, reader: Identity) -> tuple[RecordRow, RecordPlaintext]:
        row = self._row(token_id)
        if row.status == "burned" or self.ledger.is_burned(token_id):
            raise AccessDenied(f"token {token_id}: {BURNED}")
        problem = self.chain_problem(row)
        if problem:
            raise Tampered(f"token {token_id}: {problem}")
        return row, self.decrypt_row(row, reader)

    def stream_payload(self, token_id: int, reader: Identity,
                       make_sink: Callable[[Any], SupportsWrite]) -> Any:  # fmt: skip
        """Decrypt a study's payload into ``make_sink(manifest)``; returns the manifest.

        Refused like :meth:`open` (burned, tampered, no key). The sink receives only
        chunks that authenticate, but on :class:`Tampered` it may hold a verified
        prefix: make a :class:`~healthnft.records.dicom.StudyWriter`, which keeps only
        instances whose SHA-256 matches the manifest, and discard its folder on error.
        """
        row, plain = self._open_checked(token_id, reader)
        return self.stream_row(row, plain, make_sink)

    def stream_row(self, row: RecordRow, plain: RecordPlaintext,
                   make_sink: Callable[[Any], SupportsWrite]) -> Any:  # fmt: skip
        """Decrypt a study's chunks (of a row already opened and checked) into a sink."""
        from healthnft.records.dicom import StudyManifest

        if STREAM_META not in plain.meta:
            raise AccessDenied(f"token {row.token_id}: not an imaging study")
        try:
            manifest = StudyManifest.from_canonical(plain.canonical)
            index = StreamIndex.from_meta(plain.meta[STREAM_META])
            open_stream(index, row.commitment, self.blobs, make_sink(manifest))
        except Tampered as exc:
            raise Tampered(f"token {row.token_id}: {exc}") from None
        return manifest

    def _check_stream(self, row: RecordRow, plain: RecordPlaintext) -> None:
        """Authenticate every chunk and check every instance against the manifest."""
        from healthnft.records.dicom import StudyWriter

        checkers: list[StudyWriter] = []

        def checker(manifest: Any) -> StudyWriter:  # verifies, writes nothing
            checkers.append(StudyWriter(manifest, None))
            return checkers[0]

        self.stream_row(row, plain, checker)
        try:
            checkers[0].finish()
        except Tampered as exc:
            raise Tampered(f"token {row.token_id}: {exc}") from None

    def check_stream(self, token_id: int, reader: Identity) -> None:
        """Refuse (``Tampered``) a study any chunk or instance of which does not verify."""
        row, plain = self._open_checked(token_id, reader)
        if STREAM_META in plain.meta:
            self._check_stream(row, plain)

    def _stored_blobs_problem(self, row: RecordRow) -> str | None:
        """Without a key: are the record's journaled chunks all there, bytes intact?"""
        digests = self.journal.record_blobs(row.token_id, row.key_id)
        for k, digest in enumerate(digests, 1):
            blob = self.blobs.get(digest)
            if blob is None or hashlib.sha256(blob).digest() != digest:
                return f"tampered: stored blob {k} of {len(digests)} was altered or is missing"
        return None

    def chain_problem(self, row: RecordRow) -> str | None:
        """Why the catalogue entry disagrees with the chain, or None when it agrees."""
        info = self.ledger.batch_of(row.token_id)
        if info is None:
            return "token does not exist on chain"
        try:
            proof = merkle.unpack_proof(row.proof)
        except ValueError:
            return "tampered: Merkle proof is malformed"
        if not merkle.verify(merkle.leaf_hash(row.token_id, row.commitment), proof, info.root):
            return "tampered: commitment or proof does not match the on-chain root"
        owner = self.ledger.owner_of(row.token_id)
        if owner is None or owner.lower() != row.owner.lower():
            if owner is not None and recovered(self.ledger, row.owner, owner):
                return None  # guardians moved the owner's account; its records follow it
            return "owner on chain differs from the wallet"
        return None

    def decrypt_row(self, row: RecordRow, reader: Identity) -> RecordPlaintext:
        """Decrypt a catalogued record with ``reader``'s key: AES-GCM under the commitment.

        No chain check here: a caller checks the chain first (:meth:`open`, :meth:`verify`,
        or an owner's transfer, which re-encrypts what the owner could already open).
        """
        if row.status == "burned" or not row.sealed_dek:
            raise AccessDenied(f"token {row.token_id}: burned; its record was crypto-shredded")
        wrapped = self.journal.batch_key(row.key_id, reader.address)
        if wrapped is None:
            raise AccessDenied(f"token {row.token_id}: {reader.address} holds no key for it")
        ciphertext = self.blobs.get(row.blob_digest)
        if ciphertext is None:
            raise Tampered(f"token {row.token_id}: ciphertext is missing from the vault")
        if hashlib.sha256(ciphertext).digest() != row.blob_digest:
            raise Tampered(f"token {row.token_id}: ciphertext was altered in the vault")
        batch_key = BatchKey.unwrap(reader.enc_private, wrapped, row.key_id)
        try:
            return open_sealed(ciphertext, row.sealed_dek, row.commitment, batch_key)
        except Tampered as exc:
            raise Tampered(f"token {row.token_id}: {exc}") from None

    def verify(self, token_id: int, reader: Identity | None = None) -> Verification:
        """Check a record against the chain: proof, root, owner, and content if a key is given."""
        row = self.catalogue.record(token_id)
        if row is None:
            return Verification(token_id, False, UNKNOWN_TOKEN, False)
        if row.status == "burned" or self.ledger.is_burned(token_id):
            return Verification(token_id, False, BURNED, False)
        newer = self.ledger.superseded_by(token_id)
        if newer:
            return Verification(
                token_id, False, f"superseded: corrected by token {newer}", False
            )
        problem = self.chain_problem(row)
        if problem:
            return Verification(token_id, False, problem, False)
        ciphertext = self.blobs.get(row.blob_digest)
        if ciphertext is None or hashlib.sha256(ciphertext).digest() != row.blob_digest:
            return Verification(token_id, False, "tampered: ciphertext was altered or is missing",
                                False)  # fmt: skip
        older = self.supersedes(token_id)
        corrects = f"; corrects token {older}" if older else ""
        if reader is None:
            problem = self._stored_blobs_problem(row)
            if problem:
                return Verification(token_id, False, problem, False)
            return Verification(
                token_id, True,
                f"authentic: proof, root, owner and ciphertext digest match{corrects}", False,
            )  # fmt: skip
        try:
            plain = self.decrypt_row(row, reader)
        except Tampered as exc:
            return Verification(token_id, False, f"tampered: {exc}", True)
        problem = self.attestation_problem(row, plain.meta)
        if problem:
            return Verification(token_id, False, problem, True)
        imaging = ""
        if STREAM_META in plain.meta:
            try:
                self._check_stream(row, plain)
            except Tampered as exc:
                return Verification(token_id, False, f"tampered: {exc}", True)
            imaging = ", every imaging chunk authenticates and every instance matches the manifest"
        return Verification(
            token_id, True,
            "authentic: commitment recomputed from the record, Merkle proof, root and owner "
            f"match, and the issuer's attestation verifies{imaging}{corrects}",
            True,
        )  # fmt: skip

    def could_see_burned(self, token_id: int, reader: str) -> bool:
        """Whether ``reader`` may be told that ``token_id`` was burned, not just refused.

        Only someone who could have opened it when it was burned: its last owner,
        or a grantee of that owner whose grant covered the token just before the
        burn (the contract's own ``can_access``, asked of the state one block
        earlier; a category grant also needs the record's category). Anyone else
        gets the refusal a stranger gets, so a burn tells nobody new that the
        token was this patient's. A node that keeps no historical state answers
        no for grantees: the safe side.
        """
        from healthnft.ledger.consent import CATEGORIES, Consent

        if not self.ledger.is_burned(token_id):
            return False
        burns = self.ledger.logs("Transfer", token_id=token_id, receiver=_NOBODY)
        if not burns:
            return False
        last_owner, block = burns[-1]["args"]["sender"], int(burns[-1]["blockNumber"])
        if last_owner.lower() == reader.lower():
            return True
        row = self.catalogue.record(token_id)
        if self.ledger.consent is None or row is None or block == 0:
            return False
        consent = Consent(self.ledger)
        reader = self.ledger.w3.to_checksum_address(reader)
        for ev in self.ledger.logs("GrantCreated", owner=last_owner, grantee=reader):
            gid = int(ev["args"]["grant_id"])
            category = int(ev["args"]["category"])
            if category and category != CATEGORIES.get(row.category):
                continue  # the contract leaves categories to the custodians
            try:
                held = consent.contract.functions.can_access(gid, reader, token_id).call(
                    block_identifier=block - 1
                )
            except Exception:  # noqa: BLE001 - no archive state: each node raises its own
                return False
            if held:
                return True
        return False

    def supersedes(self, token_id: int, *, from_log: bool = False) -> int | None:
        """The older token that ``token_id`` corrects, as the chain says; None if none.

        The contract stores only old -> new (``superseded_by``); new -> old is in
        its ``Superseded`` event, whose ``new_token`` is indexed. Filtering that log
        still walks every block on the embedded chain (~6 ms a block), too slow for
        ``verify`` on every record of a wallet, so by default the candidates are the
        catalogue's few retired records below ``token_id``, each confirmed on chain.
        ``from_log=True`` reads the event log instead: for a home whose catalogue did
        not see the correction (another home amended it, or a crash came in between).
        """
        if from_log:
            events = self.ledger.logs("Superseded", new_token=token_id)
            candidates = [int(ev["args"]["old_token"]) for ev in events]
        else:
            candidates = self.catalogue.retired_before(token_id)
        for old in candidates:  # an event or a catalogue row is a claim; the chain decides
            if self.ledger.superseded_by(old) == token_id:
                return old
        return None

    def attestation_problem(self, row: RecordRow, meta: dict[str, Any]) -> str | None:
        """Why the record's issuer attestation does not hold now, or None."""
        vc = meta.get("attestation")
        if not isinstance(vc, str):
            return "missing issuer attestation"
        # The attestation names the patient the record was minted to (the batch's
        # owner on chain), who may since have transferred it.
        info = self.ledger.batch_of(row.token_id)
        minted_to = info.owner if info else row.owner
        (problem,) = ChainTrust(self.ledger).check_batch(
            [vc], [row.commitment], row.issuer, minted_to, require_current_issuer=False
        )
        if problem == "revoked":
            return "attestation revoked by its issuer"
        return f"issuer attestation refused: {problem}" if problem else None
