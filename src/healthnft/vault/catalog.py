"""The local catalogue as one object: a facade over the repositories of ``index.sqlite``.

The index used to be one class with nine tables; it is now split by concern in
:mod:`healthnft.store` (catalogue, mint journal, custody, transfers, derivative links,
request reasons, challenges), each over the same versioned file. :class:`Catalog` keeps
the old surface for the callers that have not moved yet: every method delegates to one
repository, and new code should use the repositories (``catalog.catalogue``,
``catalog.journal``...) directly.

:class:`JournaledStore` stays here: it joins the vault's blob store and the journal (a
chunk's digest is journaled *before* the chunk is stored, so there are no orphans; see
:mod:`healthnft.store.journal`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from healthnft.store import (
    BatchRow,
    Catalogue,
    Custody,
    DerivativeLinks,
    Index,
    MintJournal,
    Participant,
    RecordRow,
    RequestReasons,
    StagedTransfer,
    Transfers,
)
from healthnft.vault.blobstore import BlobStore, digest_of

__all__ = ["BatchRow", "Catalog", "JournaledStore", "Participant", "RecordRow"]


class Catalog:
    """The home's index (``HOME/index.sqlite``): the old single-object surface."""

    def __init__(self, path: Path) -> None:
        self.index = Index.open(path)
        self.catalogue: Catalogue = self.index.catalogue
        self.journal: MintJournal = self.index.journal
        self.custody: Custody = self.index.custody
        self.transfers: Transfers = self.index.transfers
        self.derivatives: DerivativeLinks = self.index.derivatives
        self.requests: RequestReasons = self.index.requests

    @property
    def _conn(self) -> sqlite3.Connection:
        """The raw connection (tests inspect tables through it)."""
        return self.index.db.connection

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on the index (see :meth:`healthnft.store.Database.write`)."""
        with self.index.db.write() as conn:
            yield conn

    def close(self) -> None:
        self.index.close()

    def checkpoint(self) -> None:
        """Fold the WAL into the database so deleted pages do not linger in it."""
        self.index.checkpoint()

    # -- participants and records (store.catalogue) ---------------------------

    def add_participant(self, p: Participant) -> None:
        self.catalogue.add_participant(p)

    def participant(self, address: str) -> Participant | None:
        return self.catalogue.participant(address)

    def participant_by_label(self, label: str, kind: str | None = None) -> Participant | None:
        return self.catalogue.participant_by_label(label, kind)

    def participants(self, kind: str | None = None) -> list[Participant]:
        return self.catalogue.participants(kind)

    def record(self, token_id: int) -> RecordRow | None:
        return self.catalogue.record(token_id)

    def records_of(self, owner: str) -> list[RecordRow]:
        return self.catalogue.records_of(owner)

    def token_with_record_key(self, record_key: bytes) -> int | None:
        return self.catalogue.token_with_record_key(record_key)

    def known_record_keys(self, keys: Iterable[bytes]) -> set[bytes]:
        return self.catalogue.known_record_keys(keys)

    def set_status(self, token_id: int, status: str) -> None:
        self.catalogue.set_status(token_id, status)

    def retired_before(self, token_id: int) -> list[int]:
        return self.catalogue.retired_before(token_id)

    def shred(self, token_id: int) -> bytes | None:
        return self.catalogue.shred(token_id)

    def counts(self) -> dict[str, int]:
        return self.catalogue.counts()

    # -- the mint journal (store.journal) ---------------------------------------

    def prepare_batch(
        self, batch: BatchRow, keys: dict[str, bytes], records: list[RecordRow]
    ) -> None:
        self.journal.prepare_batch(batch, keys, records)

    def mark_sent(self, batch_ref: bytes, raw_tx: bytes, tx_hash: bytes, nonce: int) -> None:
        self.journal.mark_sent(batch_ref, raw_tx, tx_hash, nonce)

    def mark_minted(self, batch_ref: bytes, chain_batch_id: int, gas_used: int | None) -> None:
        self.journal.mark_minted(batch_ref, chain_batch_id, gas_used)

    def batch(self, batch_ref: bytes) -> BatchRow | None:
        return self.journal.batch(batch_ref)

    def unfinished_batches(self) -> list[BatchRow]:
        return self.journal.unfinished_batches()

    def minted_batches_of(self, owner: str) -> list[BatchRow]:
        return self.journal.minted_batches_of(owner)

    def batch_key(self, batch_ref: bytes, reader: str) -> bytes | None:
        return self.journal.batch_key(batch_ref, reader)

    def batch_digests(self, batch_ref: bytes) -> list[bytes]:
        return self.journal.batch_digests(batch_ref)

    def drop_batch(self, batch_ref: bytes) -> None:
        self.journal.drop_batch(batch_ref)

    def journal_blob(self, token_id: int, key_ref: bytes, digest: bytes) -> None:
        self.journal.journal_blob(token_id, key_ref, digest)

    def record_blobs(self, token_id: int, key_ref: bytes | None = None) -> list[bytes]:
        return self.journal.record_blobs(token_id, key_ref)

    def forget_blobs(self, token_id: int, digests: Iterable[bytes] | None = None) -> None:
        self.journal.forget_blobs(token_id, digests)

    def stale_blobs(self, token_id: int | None = None) -> list[bytes]:
        return self.journal.stale_blobs(token_id)

    def forget_stale_blobs(self, digests: Iterable[bytes]) -> None:
        self.journal.forget_stale_blobs(digests)

    def referenced_digests(self) -> set[bytes]:
        return self.journal.referenced_digests()

    # -- custody, transfers, request reasons -------------------------------------

    def add_custody(self, key_ref: bytes, keys: dict[str, bytes],
                    shares: list[tuple[int, str, bytes]]) -> None:  # fmt: skip
        self.custody.add_custody(key_ref, keys, shares)

    def custodian_share(self, token_id: int, custodian: str) -> tuple[bytes, bytes, bytes] | None:
        return self.custody.custodian_share(token_id, custodian)

    def drop_custody(self, token_id: int) -> None:
        self.custody.drop_custody(token_id)

    def stage_transfer(self, token_id: int, new_owner: str, key_ref: bytes,
                       keys: dict[str, bytes], blob_digest: bytes,
                       sealed_dek: bytes) -> None:  # fmt: skip
        self.transfers.stage_transfer(token_id, new_owner, key_ref, keys, blob_digest,
                                      sealed_dek)  # fmt: skip

    def staged_transfer(self, token_id: int) -> StagedTransfer | None:
        return self.transfers.staged_transfer(token_id)

    def complete_transfer(self, token_id: int) -> bytes | None:
        return self.transfers.complete_transfer(token_id)

    def drop_staged_transfer(self, token_id: int) -> bytes | None:
        return self.transfers.drop_staged_transfer(token_id)

    def note_request_reason(self, request_id: int, reason: str) -> None:
        self.requests.note(request_id, reason)

    def request_reason(self, request_id: int) -> str | None:
        return self.requests.reason(request_id)


class BlobJournal(Protocol):
    """Where :class:`JournaledStore` notes a blob before storing it."""

    def journal_blob(self, token_id: int, key_ref: bytes, digest: bytes) -> None: ...


class JournaledStore:
    """A blob store that journals each blob's digest in the catalogue *before* storing it.

    What :func:`healthnft.vault.stream.seal_stream` writes through: a crash at any point
    of a stream leaves only chunks that ``record_blobs`` leads to, which rollback, burn
    and :meth:`MintJournal.stale_blobs` then find and delete. ``after_put`` is called with
    the number of blobs stored so far (the minter's crash hook). ``put_many`` runs in the
    stream's helper thread while the caller does not use the catalogue.
    """

    def __init__(self, store: BlobStore, catalog: BlobJournal, token_id: int, key_ref: bytes,
                 after_put: Callable[[int], None] | None = None) -> None:  # fmt: skip
        self._store = store
        self._catalog = catalog
        self._token_id = token_id
        self._key_ref = key_ref
        self._after_put = after_put
        self.stored = 0

    def put_many(self, blobs: Iterable[bytes]) -> list[bytes]:
        blobs = list(blobs)
        for blob in blobs:
            self._catalog.journal_blob(self._token_id, self._key_ref, digest_of(blob))
        digests = self._store.put_many(blobs)
        self.stored += len(digests)
        if self._after_put is not None:
            self._after_put(self.stored)
        return digests

    def get(self, digest: bytes) -> bytes | None:
        return self._store.get(digest)

    def delete_many(self, digests: Iterable[bytes]) -> None:
        self._store.delete_many(digests)
