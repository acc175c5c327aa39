"""records → vault → Merkle batch → one mint transaction, atomically and idempotently.

The order of effects is what makes a crash harmless:

1. journal the batch as ``prepared`` (catalogue), *then* store ciphertexts;
2. sign the mint transaction and journal it as ``sent`` with its raw bytes;
3. broadcast, wait for the receipt, mark ``minted``.

Steps 1-2 of batch n+1 overlap step 3 of batch n: a batch is *submitted* (handed to
the node) and the next one prepared while the node seals it; receipts are then
*settled* in order, with at most :data:`MAX_IN_FLIGHT` batches submitted and not yet
settled. On a network with a block period this hides the wait for blocks behind the
CPU work of preparing (on the embedded chain, which mines on submit, nothing changes).
Batch n+1's token range is computed from batch n's, not read from the chain (where n
may not be mined yet): the contract mints at ``expected_start`` or reverts, so a batch
whose predecessor reverted reverts too, and is rolled back like it. When a batch fails,
every later batch already sent is settled (minted and marked, or rolled back) before
the error surfaces; only a chain that stops answering leaves them ``sent``, for the next
run's recovery. A crash anywhere leaves each batch ``prepared`` or ``sent`` in the
journal, which recovery settles in the order the batches were prepared.

:meth:`Minter.recover` settles any batch a crash left behind: a ``prepared``
one is rolled back (its ciphertexts deleted: no orphans); a ``sent`` one is
looked up on chain — minted already, it is marked so; not minted and its nonce
unused, the very same signed transaction is re-sent; otherwise rolled back.
Records are keyed by an HMAC of (issuer, owner, canonical bytes), so feeding
the same input again mints nothing twice.

A correction (``mint(..., supersedes=old)``) is a batch of one whose transaction is the
contract's ``amend``: it mints the corrected record *and* supersedes the old token, so the
journal above makes the whole correction crash-safe with no step of its own. Whoever
completes the batch (this run, or the next run's recovery, from the receipt of the
journaled transaction) marks the old catalogue row ``superseded`` *before* the batch
``minted``: a crash in between leaves a ``sent`` batch, whose settling does it again.

An imaging study (:class:`~healthnft.records.dicom.StudyRecord`) is committed like any
record — over its manifest — but its payload is too large for one AES-GCM call: once
the batch's attestations verify, the payload is stream-sealed (1 MiB chunks, bound to
the commitment) into the blob store *before* the batch is journaled, because the
stream's index (its key and chunk digests) must travel inside the record's sealed
plaintext. Each chunk's digest is journaled (``record_blobs``, under the batch's ref)
just before the chunk is stored, so a crash mid-stream, a rollback and a burn all find
every chunk: recovery deletes chunks whose batch never reached the journal. The
payload is read once, chunk by chunk: memory stays flat whatever the study's size.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from healthnft.credentials.trust import ChainTrust, bound_did
from healthnft.errors import (
    Conflict,
    CredentialRejected,
    InvalidInput,
    LedgerError,
    MintInterrupted,
    NotAnIssuer,
    Unavailable,
    UnknownParticipant,
)
from healthnft.keys import Identity
from healthnft.ledger import merkle
from healthnft.ledger.client import Ledger, SentTransaction
from healthnft.minting.attestation import Attestor, issuer_attestor
from healthnft.records import Record, commit, new_salt
from healthnft.vault import BatchKey, RecordPlaintext, Vault, seal, seal_stream
from healthnft.vault.catalog import BatchRow, Catalog, JournaledStore, RecordRow
from healthnft.vault.custody import Custodians
from healthnft.vault.keycards import KeyCard

DEFAULT_BATCH_SIZE = 1000
#: Gas limit of a mint: ~94k whatever the batch size (~128k for an owner's first), so
#: a fixed limit replaces an eth_estimateGas per batch (measured: 29 ms -> 5 ms to sign).
MINT_GAS = 300_000
#: Batches submitted and not yet settled, at most, once the next one is sent. Two would
#: hide one block of waiting behind the next batch's preparation; three leave room for a
#: block that comes late, or a confirmation depth above one. More would only hold more
#: records unsettled when something fails (and more to roll back).
MAX_IN_FLIGHT = 3
#: Set to one of :data:`CRASH_POINTS` to kill the process there (crash tests).
CRASH_ENV = "HEALTHNFT_CRASH_AT"
#: Where a batch can be killed, in the order a run passes them: ``mid-stream`` (after the
#: first chunk of a stream-sealed record is stored, with more to come), ``after-encrypt``
#: (journaled ``prepared``, ciphertexts stored), ``before-broadcast`` (journaled ``sent``
#: with its signed transaction, not broadcast), ``after-submit`` (handed to the node, its
#: receipt not awaited: the next batch is prepared next), ``after-send`` (mined, still
#: ``sent``), ``after-retire`` (a correction's old row marked ``superseded``, batch still
#: ``sent``), ``after-minted`` (journaled ``minted``, nothing returned yet). A point
#: names the first batch that passes it; ``POINT@N`` names the N-th batch of the run
#: (from 1), e.g. ``after-encrypt@2``: batch 1 sent, batch 2 prepared.
CRASH_POINTS = ("mid-stream", "after-encrypt", "before-broadcast", "after-submit",
                "after-send", "after-retire", "after-minted")  # fmt: skip
#: Private-metadata keys of a stream-sealed record: its characterization and its stream
#: index (secret: it holds the stream key; it never leaves the sealed plaintext).
IMAGING_META = "imaging"
STREAM_META = "stream"


@dataclass
class MintResult:
    """What one call to :meth:`Minter.mint` did."""

    minted: int = 0
    skipped: int = 0
    attested: int = 0
    batches: int = 0
    gas_used: int = 0
    token_ids: list[int] = field(default_factory=list)


def _out_of_space(exc: BaseException) -> bool:
    """Whether storing failed for lack of room: SQLite's 'full', or ENOSPC/EFBIG/EDQUOT."""
    import errno
    import sqlite3

    if isinstance(exc, sqlite3.OperationalError):
        return "full" in str(exc) or "disk I/O error" in str(exc)
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def crash_point(name: str, batch: int | None = None) -> None:
    """Kill this process here when ``$HEALTHNFT_CRASH_AT`` names ``name`` (crash tests),
    or ``name@batch`` (the ``batch``-th batch of a mint, from 1)."""
    wanted = os.environ.get(CRASH_ENV)
    if wanted == name or (batch is not None and wanted == f"{name}@{batch}"):
        os.kill(os.getpid(), signal.SIGKILL)


def is_streamed(record: Record) -> bool:
    """Whether a record's payload is streamed beside its canonical bytes (a study)."""
    return callable(getattr(record, "open_payload", None))


def _mid_stream(stored: int) -> None:
    if stored == 1:
        crash_point("mid-stream")


@dataclass
class InFlight:
    """A batch journaled ``sent`` and handed to the node, its receipt not read yet."""

    number: int  # its place in this run (1 = first), for crash points
    batch_ref: bytes
    start: int
    count: int
    root: bytes
    sent: SentTransaction
    token_ids: list[int]
    supersedes: int | None = None
    #: Why the node refused the transaction, if it did: settled in turn (see ``_land``).
    refused: LedgerError | None = None

    @property
    def end(self) -> int:
        return self.start + self.count


def _chain_stalled(exc: BaseException) -> bool:
    """A failure after which waiting for more receipts would only wait again: the node
    gave no block in time (or the process is being stopped). Later batches stay
    ``sent``; the next run's recovery settles them."""
    if not isinstance(exc, Exception):
        return True
    return isinstance(exc, Unavailable) and not isinstance(exc, MintInterrupted)


class Minter:
    """Mints batches of prepared records for one home's ledger, vault and catalogue."""

    def __init__(self, ledger: Ledger, catalog: Catalog, blobs: Vault, secret: bytes,
                 custodians: Custodians | None = None) -> None:  # fmt: skip
        self.custodians = custodians
        self.ledger = ledger
        self.catalog = catalog
        self.blobs = blobs
        self._secret = secret

    def record_key(self, issuer: str, owner: str, canonical: bytes) -> bytes:
        msg = issuer.lower().encode() + b"|" + owner.lower().encode() + b"|" + canonical
        return hmac.new(self._secret, msg, hashlib.sha256).digest()

    # -- recovery ---------------------------------------------------------

    def recover(self) -> int:
        """Settle batches a crash left unfinished; returns how many were settled."""
        settled = 0
        for batch in self.catalog.unfinished_batches():
            if batch.state == "sent" and self._settle_sent(batch):
                settled += 1
                continue
            self._roll_back(batch.batch_ref)
            settled += 1
        self.sweep_stale_blobs()
        return settled

    def sweep_stale_blobs(self) -> int:
        """Delete chunks journaled under no live key (a mint or transfer that crashed
        mid-stream); blobs first, then their journal rows. Returns how many."""
        stale = self.catalog.stale_blobs()
        if stale:
            self.blobs.delete_many(stale)
            self.catalog.forget_stale_blobs(stale)
        return len(stale)

    def _roll_back(self, batch_ref: bytes) -> None:
        """Undo an unminted batch: ciphertexts first, then the journal entry.

        In that order a crash in between leaves a journal entry whose blobs are
        partly gone, which the next recovery finishes rolling back; the other
        order could leave blobs no entry points to (orphans).
        """
        self.blobs.delete_many(self.catalog.batch_digests(batch_ref))
        self.catalog.drop_batch(batch_ref)

    def _settle_sent(self, batch: BatchRow) -> bool:
        """True when the batch is (now) minted on chain and marked so."""
        info = self.ledger.batch_of(batch.start_token)
        if info is not None:
            if info.root == batch.root and info.start == batch.start_token:
                if batch.tx_hash:  # a correction's receipt names the token it retired
                    self._retire_superseded(
                        dict(self.ledger.w3.eth.get_transaction_receipt(batch.tx_hash))
                    )
                self.catalog.mark_minted(batch.batch_ref, info.batch_id, None)
                return True
            return False
        if self.ledger.nonce(batch.issuer) > (batch.nonce or 0) or batch.raw_tx is None:
            return False
        try:
            receipt = self.ledger.broadcast(
                SentTransaction(batch.raw_tx, batch.tx_hash or b"", batch.nonce or 0)
            )
        except LedgerError:
            return False
        info = self.ledger.batch_of(batch.start_token)
        if info is None or info.root != batch.root:
            return False
        self._retire_superseded(receipt)
        self.catalog.mark_minted(batch.batch_ref, info.batch_id, receipt.get("gasUsed"))
        return True

    def _retire_superseded(self, receipt: dict) -> None:
        """Mark ``superseded`` every catalogue row a mined ``amend`` superseded (the chain
        already says so; idempotent). Called before the batch is marked ``minted``."""
        for old, _new in self.ledger.superseded_in(receipt):
            self.catalog.set_status(old, "superseded")

    # -- minting ----------------------------------------------------------

    def mint(
        self,
        issuer: Identity,
        owner: str,
        owner_enc_key: bytes,
        records: list[Record],
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: Callable[[int], None] | None = None,
        attestor: Attestor | None = None,
        on_bytes: Callable[[int], None] | None = None,
        supersedes: int | None = None,
    ) -> MintResult:
        """Mint every record not minted before into ``owner``'s wallet.

        ``attestor`` signs each record's HealthRecordAttestation (default: the
        issuer's own DID key); every credential is verified before anything is stored.
        ``on_bytes`` is told the payload bytes of streamed records as they are sealed.

        ``supersedes``: the token that the one record in ``records`` corrects. The batch's
        transaction is then the contract's ``amend`` (mint and supersede at once, so the
        journal makes the correction crash-safe); it needs the owner's approval for the
        issuer (checked by gas estimation, before anything is sent). A record already
        minted is skipped as usual: the caller tells a finished correction from a
        duplicate (see :mod:`healthnft.services.amending`).

        Batches overlap (see the module's docstring): ``progress`` is told each batch's
        count once it is minted, in the batches' order, while later ones may already be
        prepared or sent. On a failure, the batches already sent are settled before the
        error is raised.
        """
        if supersedes is not None:
            if len(records) != 1:
                raise InvalidInput(f"a correction of token {supersedes} is exactly one "
                                   f"record, not {len(records)}")  # fmt: skip
            holder = self.ledger.owner_of(supersedes)
            if holder is None or holder.lower() != owner.lower():
                # The contract mints the correction to the old token's owner: the journal
                # and the wrapped keys must name that same owner.
                raise Conflict(f"token {supersedes} is not held by {owner}: a correction "
                               "goes to the record's current owner")  # fmt: skip
        # Checked up front: mint transactions carry a fixed gas limit and are not
        # simulated, so these are what turn the common mistakes into clear errors.
        if not self.ledger.is_issuer(issuer.address):
            raise NotAnIssuer(f"{issuer.address} is not allowed to mint on this network")
        if not self.ledger.is_member(owner):
            raise UnknownParticipant(f"{owner} is not a registered participant of this network")
        self.recover()
        result = MintResult()
        fresh: list[tuple[bytes, Record]] = []
        seen: set[bytes] = set()
        keyed = [(self.record_key(issuer.address, owner, r.canonical), r) for r in records]
        known = self.catalog.known_record_keys(k for k, _ in keyed)
        for key, rec in keyed:
            if key in known or key in seen:
                result.skipped += 1
                continue
            seen.add(key)
            fresh.append((key, rec))
        if progress and result.skipped:
            progress(result.skipped)
        flight: deque[InFlight] = deque()
        try:
            for number, i in enumerate(range(0, len(fresh), batch_size), start=1):
                while len(flight) >= MAX_IN_FLIGHT:
                    self._land(flight.popleft(), result, progress)
                last = flight[-1] if flight else None
                sent = self._mint_batch(issuer, owner, owner_enc_key,
                                        fresh[i : i + batch_size], attestor, on_bytes,
                                        supersedes, number, last)  # fmt: skip
                flight.append(sent)
                while sent.refused is not None and flight:  # settle all before going on:
                    self._land(flight.popleft(), result, progress)  # it raises, unless mined
            while flight:
                self._land(flight.popleft(), result, progress)
        except Exception as exc:
            if not _chain_stalled(exc):
                self._settle_rest(flight, result, progress)
            raise
        return result

    def _land(self, batch: InFlight, result: MintResult,
              progress: Callable[[int], None] | None) -> None:  # fmt: skip
        """Settle the oldest batch in flight: its receipt, then ``minted``; counted and
        reported (progress follows the batches' order)."""
        token_ids, gas = self._settle(batch)
        result.attested += batch.count
        result.minted += batch.count
        result.batches += 1
        result.gas_used += gas
        result.token_ids.extend(token_ids)
        if progress:
            progress(batch.count)

    def _settle_rest(self, flight: deque[InFlight], result: MintResult,
                     progress: Callable[[int], None] | None) -> None:  # fmt: skip
        """After a failure, settle every batch still in flight, in order, so none is left
        half-done: each is minted and marked, or (reverted: its range moved with the
        failed one) rolled back by ``_settle``. The first failure wins: the caller raises
        it; a stalled chain stops here and leaves the rest ``sent`` for recovery."""
        while flight:
            try:
                self._land(flight.popleft(), result, progress)
            except Exception as exc:
                if _chain_stalled(exc):
                    return

    def _attest(
        self,
        issuer: Identity,
        owner: str,
        chunk: list[tuple[bytes, Record]],
        commitments: list[bytes],
        attestor: Attestor | None,
    ) -> list[str]:
        """Have the issuer attest every record, and refuse the batch if any fails.

        This is the gate: nothing is stored or minted unless every credential is
        signed by the DID bound on chain to a current issuer, names this patient's
        DID and wallet and this commitment, is in force, and is not revoked.
        """
        subject_did = bound_did(self.ledger, owner)
        if subject_did is None:
            raise CredentialRejected(f"{owner} has no DID bound on chain; cannot attest records")
        attest = attestor or issuer_attestor(issuer)
        vcs = [attest(rec, c, subject_did, owner)
               for (_, rec), c in zip(chunk, commitments, strict=True)]  # fmt: skip
        problems = ChainTrust(self.ledger).check_batch(
            vcs, commitments, issuer.address, owner, require_current_issuer=True,
            fresh_ids=attestor is None,
        )  # fmt: skip
        for (_, rec), problem in zip(chunk, problems, strict=True):
            if problem:
                raise CredentialRejected(
                    f"{rec.location}: issuer attestation refused ({problem}); nothing was minted"
                )
        return vcs

    def _mint_batch(
        self,
        issuer: Identity,
        owner: str,
        owner_enc_key: bytes,
        chunk: list[tuple[bytes, Record]],
        attestor: Attestor | None,
        on_bytes: Callable[[int], None] | None = None,
        supersedes: int | None = None,
        number: int = 1,
        after: InFlight | None = None,
    ) -> InFlight:
        """Prepare one batch (attest, commit, seal, store, journal) and submit its mint,
        without waiting for the block. ``after``: the batch sent just before, maybe not
        mined yet; this one's tokens follow its range (the chain's counter, if another
        issuer has minted since, is further on)."""
        start = max(self.ledger.next_token_id(), after.end if after else 0)
        batch_ref = os.urandom(16)
        batch_key = BatchKey.new()
        leaves: list[bytes] = []
        commitments: list[bytes] = []
        salts: list[bytes] = []
        for offset, (_, rec) in enumerate(chunk):
            salts.append(new_salt())
            commitments.append(commit(rec.canonical, salts[-1]))
            leaves.append(merkle.leaf_hash(start + offset, commitments[-1]))
        attestations = self._attest(issuer, owner, chunk, commitments, attestor)
        try:
            return self._seal_and_send(
                issuer, owner, owner_enc_key, chunk, start, batch_ref, batch_key, salts,
                commitments, leaves, attestations, on_bytes, supersedes, number,
            )  # fmt: skip
        except BaseException as exc:
            # Streamed chunks are stored before the batch is journaled: whatever failed,
            # delete them (and anything else of the batch) unless the batch is minted.
            batch = self.catalog.batch(batch_ref)
            left_for_recovery = False
            if batch is None or batch.state == "prepared":
                try:
                    self._roll_back(batch_ref)
                except Exception as undo:
                    # A full disk can refuse even the deletions (they need journal room):
                    # what was stored stays journaled, and the next run's recovery
                    # deletes it before it mints anything.
                    if not _out_of_space(undo):
                        raise
                    left_for_recovery = True
            if _out_of_space(exc):
                tail = ("what it stored is journaled and the next run removes it first"
                        if left_for_recovery else "the batch was rolled back")
                raise MintInterrupted(
                    f"the vault ran out of space (disk full or quota reached): nothing was "
                    f"minted and {tail}; free space and run again"
                ) from None
            raise

    def _seal_and_send(
        self,
        issuer: Identity,
        owner: str,
        owner_enc_key: bytes,
        chunk: list[tuple[bytes, Record]],
        start: int,
        batch_ref: bytes,
        batch_key: BatchKey,
        salts: list[bytes],
        commitments: list[bytes],
        leaves: list[bytes],
        attestations: list[str],
        on_bytes: Callable[[int], None] | None,
        supersedes: int | None = None,
        number: int = 1,
    ) -> InFlight:
        rows: list[RecordRow] = []
        ciphertexts: list[bytes] = []
        plains: list[tuple[RecordPlaintext, bytes]] = []
        for offset, ((_, rec), salt, commitment, vc) in enumerate(
            zip(chunk, salts, commitments, attestations, strict=True)
        ):
            meta = {
                "resource_type": rec.resource_type,
                "category": rec.category,
                "effective_date": rec.effective_date,
                "issuer": issuer.address,
                "format": "application/fhir+json; fhirVersion=4.0",
                "attestation": vc,
            }
            if is_streamed(rec):
                meta.update(self._seal_payload(rec, start + offset, batch_ref, commitment,
                                               on_bytes))  # fmt: skip
            plains.append((RecordPlaintext(salt, meta, rec.canonical), commitment))
        root, proofs = merkle.build(leaves)
        cust = self.custodians
        custody_keys = {addr: BatchKey.new() for addr, _ in cust.members} if cust else {}
        shares: list[tuple[int, str, bytes]] = []
        for offset, ((key, rec), (plain, commitment)) in enumerate(zip(chunk, plains, strict=True)):
            custody = (start + offset, cust.threshold, custody_keys) if cust else None
            sealed = seal(plain, commitment, batch_key, custody)
            for addr, share in (sealed.custodian_shares or {}).items():
                shares.append((start + offset, addr, share))
            ciphertexts.append(sealed.ciphertext)
            rows.append(
                RecordRow(
                    token_id=start + offset,
                    batch_ref=batch_ref,
                    record_key=key,
                    owner=owner,
                    issuer=issuer.address,
                    commitment=commitment,
                    blob_digest=hashlib.sha256(sealed.ciphertext).digest(),
                    sealed_dek=sealed.sealed_dek,
                    proof=merkle.pack_proof(proofs[offset]),
                    resource_type=rec.resource_type,
                    category=rec.category,
                    effective_date=rec.effective_date,
                    status="active",
                )
            )
        wrapped = {
            owner: batch_key.wrap_for(owner_enc_key, batch_ref),
            issuer.address: batch_key.wrap_for(issuer.enc_public, batch_ref),
        }
        batch = BatchRow(
            batch_ref, issuer.address, owner, start, len(chunk), root, "prepared",
            None, None, None, None, None,
        )  # fmt: skip
        self.catalog.prepare_batch(batch, wrapped, rows)
        custody_wrapped = (
            {addr: custody_keys[addr].wrap_for(pub, batch_ref) for addr, pub in cust.members}
            if cust else {}
        )  # fmt: skip
        if cust:  # a crash before this line leaves a prepared batch: recovery drops it
            self.catalog.add_custody(batch_ref, custody_wrapped, shares)
        try:
            self.blobs.put_many(ciphertexts)
            self.blobs.keep_cards(self._cards(rows, wrapped, custody_wrapped, shares, batch))
            crash_point("after-encrypt", number)
            if supersedes is None:
                call = self.ledger.mint_call(owner, len(chunk), start, root)
                sent = self.ledger.sign(issuer.account, call, gas=MINT_GAS)
            else:  # estimated: a refused correction explains itself and sends nothing
                call = self.ledger.amend_call(supersedes, start, root)
                sent = self.ledger.sign(issuer.account, call)
        except BaseException:
            self._roll_back(batch_ref)
            raise
        self.catalog.mark_sent(batch_ref, sent.raw, sent.tx_hash, sent.nonce)
        crash_point("before-broadcast", number)
        flight = InFlight(number, batch_ref, start, len(chunk), root, sent,
                          [r.token_id for r in rows], supersedes)  # fmt: skip
        try:
            self.ledger.submit(sent)
        except LedgerError as exc:  # settled in turn, after the batches sent before it
            flight.refused = exc
        crash_point("after-submit", number)
        return flight

    def _settle(self, batch: InFlight) -> tuple[list[int], int]:
        """Await a submitted batch's receipt and mark it ``minted``: its token ids and gas.

        A refused or reverted transaction is looked up once more (the node may have mined
        it after all); not minted, the batch is rolled back and :class:`MintInterrupted`
        raised."""
        try:
            if batch.refused is not None:
                raise batch.refused
            receipt = self.ledger.confirm(batch.sent)
        except LedgerError as exc:
            if not self._settle_sent(self.catalog.batch(batch.batch_ref)):  # type: ignore[arg-type]
                self._roll_back(batch.batch_ref)
                raise MintInterrupted(f"batch was not minted and was rolled back: {exc}") from None
            receipt = {"gasUsed": 0}
        crash_point("after-send", batch.number)
        # The contract mints exactly at `start` or reverts, so the receipt's event suffices.
        minted = self.ledger.minted_batch(receipt) if receipt.get("logs") else None
        if minted is None:
            info = self.ledger.batch_of(batch.start)
            minted = (info.batch_id, info.root) if info else None
        if minted is None or minted[1] != batch.root:
            raise MintInterrupted("mint transaction succeeded but the batch is not on chain")
        if batch.supersedes is not None and receipt.get("logs"):
            self._retire_superseded(receipt)
            crash_point("after-retire", batch.number)
        self.catalog.mark_minted(batch.batch_ref, minted[0], receipt.get("gasUsed"))
        crash_point("after-minted", batch.number)
        return batch.token_ids, int(receipt.get("gasUsed") or 0)

    def _cards(self, rows: list[RecordRow], wrapped: dict[str, bytes],
               custody_wrapped: dict[str, bytes], shares: list[tuple[int, str, bytes]],
               batch: BatchRow) -> list[KeyCard]:  # fmt: skip
        """The batch's key cards, kept beside its ciphertexts (see :mod:`~healthnft.vault.
        keycards`): what rebuilds its index rows if ``index.sqlite`` is lost or rolled back."""
        by_token: dict[int, dict[str, bytes]] = {}
        for token_id, addr, share in shares:
            by_token.setdefault(token_id, {})[addr] = share
        origin = (batch.issuer, batch.owner, batch.start_token, batch.count, batch.root)
        return [
            KeyCard(row, dict(wrapped),
                    {a: (custody_wrapped[a], s) for a, s in by_token.get(row.token_id, {}).items()},
                    tuple(self.catalog.record_blobs(row.token_id, batch.batch_ref)), origin)
            for row in rows
        ]  # fmt: skip

    def _seal_payload(self, rec: Record, token_id: int, batch_ref: bytes, commitment: bytes,
                      on_bytes: Callable[[int], None] | None) -> dict[str, object]:  # fmt: skip
        """Stream-seal a study's payload; its private metadata (format, characterization,
        the stream index) to seal with the record."""
        store = JournaledStore(self.blobs, self.catalog, token_id, batch_ref, _mid_stream)
        with rec.open_payload() as payload:  # type: ignore[attr-defined]
            index = seal_stream(payload, commitment, store, progress=on_bytes)
        described = dict(rec.meta())  # type: ignore[attr-defined]
        return {
            "format": described.pop("format"),
            IMAGING_META: described,
            STREAM_META: index.to_meta(),
        }
