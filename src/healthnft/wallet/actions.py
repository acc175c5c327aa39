"""What an owner does to a record: transfer it to another participant, or burn it.

Both are ordered so that a crash leaves nothing lost and a retry finishes the job.

- **Transfer re-encrypts.** The record gets a fresh DEK, sealed under a fresh
  key that only the new owner (and the issuer) can unwrap, so a key the old owner
  kept opens nothing. The re-encrypted copy is stored and journaled *before* the
  on-chain transfer; after it, the catalogue switches to the copy and the old
  ciphertext is deleted. A retry completes a journaled transfer.
  What a reader already saw cannot be taken back: transfer stops future access.
- **Burn is crypto-shredding.** The token is burned on chain first (so nothing is
  destroyed for a transfer that then fails), then the ciphertext and its sealed
  DEK are deleted and the SQLite WAL files checkpointed so no copy lingers. The
  commitment and proof stay: the chain keeps only that a token existed. A retry
  on an already-burned token finishes the shredding.

An imaging study's payload lives in stream chunks beside its ciphertext. Transfer
re-seals the stream too — a fresh stream key, fresh chunks, each journaled
(``record_blobs``, under the transfer's key) before it is stored — by piping the
decrypted old stream into the new one chunk by chunk (memory stays flat), and deletes
the old chunks once the switch is done. Burn deletes every chunk the journal lists for
the token. Chunks journaled under no live key (a transfer that crashed while
re-sealing) are swept whenever the token is next transferred or burned, and by every
mint's recovery.

The re-encrypted copy's key card (:mod:`~healthnft.vault.keycards`) is kept in the vault
beside it before the chain moves the token, so the new owner's key survives an index
restored from before the transfer; burn deletes every card of the token with its blobs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import queue
import threading
from collections.abc import Iterable

from healthnft.errors import AccessDenied, UnknownParticipant
from healthnft.keys import Identity
from healthnft.ledger.client import Ledger
from healthnft.minting.pipeline import STREAM_META, crash_point
from healthnft.store import RecordRow, Repositories
from healthnft.vault import BatchKey, BlobStore, KeyCard, RecordPlaintext, StreamIndex, Vault, seal
from healthnft.vault.catalog import BlobJournal, JournaledStore
from healthnft.vault.custody import Custodians
from healthnft.vault.stream import open_stream, seal_stream
from healthnft.wallet.wallet import Wallet


class OwnerActions:
    """Transfer and burn, for the owner of a record."""

    def __init__(self, ledger: Ledger, catalog: Repositories, blobs: Vault,
                 custodians: Custodians | None = None) -> None:  # fmt: skip
        self.custodians = custodians
        self.ledger = ledger
        self.catalog = catalog
        self.catalogue = catalog.catalogue
        self.journal = catalog.journal
        self.custody = catalog.custody
        self.transfers = catalog.transfers
        self.blobs = blobs
        self.wallet = Wallet(ledger, catalog, blobs)

    def burn(self, owner: Identity, token_id: int) -> None:
        """Burn ``token_id`` on chain and shred its record (idempotent)."""
        row = self.catalogue.record(token_id)
        if row is None:
            raise UnknownParticipant(f"token {token_id} is not in this home's catalogue")
        if not self.ledger.is_burned(token_id):
            chain_owner = self.ledger.owner_of(token_id)
            if chain_owner is None or chain_owner.lower() != owner.address.lower():
                raise AccessDenied(f"token {token_id}: only its owner can burn it")
            self.ledger.burn(owner.account, token_id)
            crash_point("burn:after-send")
        self.shred(token_id)

    def shred(self, token_id: int) -> None:
        """Crypto-shred a burned token's record: its ciphertext, sealed DEK, key cards and
        stream chunks (idempotent). Call it once the chain says the token is burned (the
        owner's transaction, sent here or signed on their device and relayed)."""
        digest = self.catalogue.shred(token_id)
        staged = self.transfers.drop_staged_transfer(token_id)
        chunks = self.journal.record_blobs(token_id)  # stream chunks, staged copies
        self.blobs.delete_many([d for d in (digest, staged, *chunks) if d])
        self.blobs.shred_token(token_id)  # every copy a key card names, whatever the index says
        if chunks:
            self.journal.forget_blobs(token_id)
        self.catalog.checkpoint()
        self.blobs.checkpoint()

    def _sweep(self, token_id: int) -> None:
        """Delete the token's blobs journaled under no live key (blobs, then rows)."""
        stale = self.journal.stale_blobs(token_id)
        if stale:
            self.blobs.delete_many(stale)
            self.journal.forget_stale_blobs(stale)

    def transfer(self, owner: Identity, token_id: int, to: str, to_enc_key: bytes,
                 issuer_enc_key: bytes) -> None:  # fmt: skip
        """Give ``token_id`` to ``to`` (a registered participant), re-encrypted for them."""
        row = self.catalogue.record(token_id)
        if row is None:
            raise UnknownParticipant(f"token {token_id} is not in this home's catalogue")
        staged = self.transfers.staged_transfer(token_id)
        chain_owner = self.ledger.owner_of(token_id)
        if staged and chain_owner and chain_owner.lower() == staged[0].lower():
            self._finish(token_id)  # a crash after the on-chain transfer: complete it
            return
        if chain_owner is None or chain_owner.lower() != owner.address.lower():
            raise AccessDenied(f"token {token_id}: only its owner can transfer it")
        self.stage_transfer(owner, token_id, to, to_enc_key, issuer_enc_key)
        call = self.ledger.transfer_call(owner.address, to, token_id)
        try:
            self.ledger.transact(owner.account, call)
        except Exception:
            self._drop_staged(token_id)
            raise
        crash_point("transfer:after-send")
        self._finish(token_id)

    def stage_transfer(self, reader: Identity, token_id: int, to: str, to_enc_key: bytes,
                       issuer_enc_key: bytes) -> None:  # fmt: skip
        """Re-encrypt ``token_id`` for ``to`` and keep the copy staged (journaled, key card
        kept) before the chain moves the token; :meth:`finish_transfer` switches to it
        once it has, :meth:`drop_staged` discards it if it never does. ``reader`` is whoever
        can open the record here: its owner, or its issuer (the hospital node, when the
        owner signs the transfer on their own device and the node relays it)."""
        row = self.catalogue.record(token_id)
        if row is None:
            raise UnknownParticipant(f"token {token_id} is not in this home's catalogue")
        if not self.ledger.is_member(to):
            raise UnknownParticipant(f"{to} is not a registered participant of this network")
        if self.transfers.staged_transfer(token_id):
            self._drop_staged(token_id)  # an earlier attempt that never reached the chain
        self._sweep(token_id)
        plain = self.wallet.decrypt_row(row, reader)
        self._stage_copy(row, plain, to, to_enc_key, issuer_enc_key)
        crash_point("transfer:after-stage")

    def drop_staged(self, token_id: int) -> None:
        """Discard a staged transfer's copy (its transaction was refused or reverted)."""
        self._drop_staged(token_id)

    def finish_transfer(self, token_id: int) -> None:
        """Switch to the staged copy once the chain has moved the token."""
        self._finish(token_id)

    def adopt(self, token_id: int, new_owner: str, new_enc_key: bytes, issuer_enc_key: bytes,
              plain: RecordPlaintext, *, checkpoint: bool = True) -> bool:  # fmt: skip
        """Re-key a record whose owner's account guardians recovered into ``new_owner``
        (the chain already says it owns the token): re-sealed as a transfer re-seals it,
        for the new key, from ``plain`` (released by the custodians to the recovered
        account), without an on-chain step. Answers False when it was already done;
        a retry after a crash finishes or redoes it. ``checkpoint=False`` leaves the WAL
        checkpoint to a caller that adopts many records (it checkpoints once after)."""
        row = self.catalogue.record(token_id)
        if row is None:
            raise UnknownParticipant(f"token {token_id} is not in this home's catalogue")
        if row.owner.lower() == new_owner.lower():
            return False
        chain_owner = self.ledger.owner_of(token_id)
        if chain_owner is None or chain_owner.lower() != new_owner.lower():
            raise AccessDenied(f"token {token_id}: the chain does not give it to {new_owner}")
        staged = self.transfers.staged_transfer(token_id)
        if staged and staged.new_owner.lower() == new_owner.lower():
            self._finish(token_id, checkpoint)
            return True
        if staged:
            self._drop_staged(token_id)
        self._sweep(token_id)
        self._stage_copy(row, plain, new_owner, new_enc_key, issuer_enc_key)
        crash_point("adopt:after-stage")
        self._finish(token_id, checkpoint)
        return True

    def _stage_copy(self, row: RecordRow, plain: RecordPlaintext, to: str, to_enc_key: bytes,
                    issuer_enc_key: bytes) -> None:  # fmt: skip
        """Re-encrypt ``row``'s record under a fresh DEK and a fresh key only ``to`` (and
        the issuer) can unwrap, re-split for the custodians, and stage it (journaled and
        carded before anything switches to it)."""
        token_id = row.token_id
        key_ref = os.urandom(16)
        journaled = JournaledStore(self.blobs, self.journal, token_id, key_ref)
        if STREAM_META in plain.meta:
            try:
                index = _reseal_stream(plain, row.commitment, self.blobs, self.journal,
                                       token_id, key_ref)  # fmt: skip
            except BaseException:
                self._drop_journaled(token_id, key_ref)
                raise
            plain = RecordPlaintext(plain.salt, {**plain.meta, STREAM_META: index.to_meta()},
                                    plain.canonical)  # fmt: skip
        new_key = BatchKey.new()
        cust = self.custodians
        custody_keys = {addr: BatchKey.new() for addr, _ in cust.members} if cust else {}
        custody = (token_id, cust.threshold, custody_keys) if cust else None
        sealed = seal(plain, row.commitment, new_key, custody)
        journaled.put_many([sealed.ciphertext])  # journaled first: a crash leaves no orphan
        custody_wrapped = {a: custody_keys[a].wrap_for(pub, key_ref)
                           for a, pub in cust.members} if cust else {}  # fmt: skip
        shares = sealed.custodian_shares or {}
        if cust:  # the new DEK is re-split; the switch happens with the record's
            self.custody.add_custody(key_ref, custody_wrapped,
                                     [(token_id, a, s) for a, s in shares.items()])  # fmt: skip
        readers = {to: new_key.wrap_for(to_enc_key, key_ref),
                   row.issuer: new_key.wrap_for(issuer_enc_key, key_ref)}  # fmt: skip
        digest = hashlib.sha256(sealed.ciphertext).digest()
        self.transfers.stage_transfer(token_id, to, key_ref, readers, digest, sealed.sealed_dek)
        batch = self.journal.batch(row.batch_ref)
        self.blobs.keep_cards([KeyCard(
            dataclasses.replace(row, owner=to, key_ref=key_ref, blob_digest=digest,
                                sealed_dek=sealed.sealed_dek, status="active"),
            readers, {a: (custody_wrapped[a], s) for a, s in shares.items()},
            tuple(self.journal.record_blobs(token_id, key_ref)),
            None if batch is None else (batch.issuer, batch.owner, batch.start_token,
                                        batch.count, batch.root),
        )])  # fmt: skip

    def _drop_staged(self, token_id: int) -> None:
        """Discard a staged copy: its ciphertext and its stream chunks."""
        staged = self.transfers.staged_transfer(token_id)
        old = self.transfers.drop_staged_transfer(token_id)
        if old:
            self.blobs.delete_many([old])
        if staged:
            self._drop_journaled(token_id, staged[1])

    def _drop_journaled(self, token_id: int, key_ref: bytes) -> None:
        digests = self.journal.record_blobs(token_id, key_ref)
        if digests:
            self.blobs.delete_many(digests)
            self.journal.forget_blobs(token_id, digests)

    def _finish(self, token_id: int, checkpoint: bool = True) -> None:
        old_digest = self.transfers.complete_transfer(token_id)
        if old_digest:
            self.blobs.delete_many([old_digest])
        self._sweep(token_id)  # the old stream's chunks: their key is no longer the record's
        if checkpoint:
            self.catalog.checkpoint()
            self.blobs.checkpoint()


# -- re-sealing a stream: the old one decrypted straight into the new one ----------------

_PIPE_DEPTH = 4  # decrypted chunks in flight between the two streams (~4 MiB)


class _LockedStore:
    """One blob store shared by the two streams' helper threads, one call at a time
    (a single SQLite connection must not interleave statements of two threads)."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self._lock = threading.Lock()

    def put_many(self, blobs: Iterable[bytes]) -> list[bytes]:
        with self._lock:
            return self._store.put_many(blobs)

    def get(self, digest: bytes) -> bytes | None:
        with self._lock:
            return self._store.get(digest)

    def delete_many(self, digests: Iterable[bytes]) -> None:
        with self._lock:
            self._store.delete_many(list(digests))


class _Pipe:
    """A bounded byte pipe: ``open_stream`` writes into it from a helper thread while
    ``seal_stream`` reads from it, so the plaintext never accumulates."""

    def __init__(self) -> None:
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(_PIPE_DEPTH)
        self._stop = threading.Event()
        self._buffer = b""
        self._offset = 0
        self._done = False

    # writer side (helper thread)
    def _put(self, item: bytes | BaseException | None) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(queue.Full):
                self._queue.put(item, timeout=0.1)
                return
        raise _Stopped

    def write(self, data: bytes) -> int:
        self._put(bytes(data))
        return len(data)

    def finish(self, error: BaseException | None = None) -> None:
        with contextlib.suppress(_Stopped):
            self._put(error)

    # reader side (caller)
    def read(self, size: int = -1) -> bytes:
        while self._offset >= len(self._buffer):
            if self._done:
                return b""
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._done = True
                raise item
            if item is None:
                self._done = True
                return b""
            self._buffer, self._offset = item, 0
        end = len(self._buffer) if size < 0 else self._offset + size
        data = self._buffer[self._offset : end]
        self._offset += len(data)
        return data

    def stop(self) -> None:
        self._stop.set()


class _Stopped(Exception):
    """The reader gave up: the writer stops too."""


def _reseal_stream(plain: RecordPlaintext, commitment: bytes, blobs: BlobStore,
                   catalog: BlobJournal, token_id: int, key_ref: bytes) -> StreamIndex:  # fmt: skip
    """The record's stream, decrypted (every chunk authenticated) and sealed afresh under
    a new stream key, each new chunk journaled under ``key_ref``; returns the new index."""
    old = StreamIndex.from_meta(plain.meta[STREAM_META])
    shared = _LockedStore(blobs)
    pipe = _Pipe()

    def pump() -> None:
        try:
            open_stream(old, commitment, shared, pipe)
        except BaseException as exc:  # handed to the reader, which raises it
            pipe.finish(exc)
        else:
            pipe.finish()

    thread = threading.Thread(target=pump, name="stream-reseal", daemon=True)
    thread.start()
    try:
        return seal_stream(pipe, commitment, JournaledStore(shared, catalog, token_id, key_ref))
    finally:
        pipe.stop()
        thread.join()
