"""The local catalogue: which token is which record, and where its keys are.

One SQLite file (``HOME/index.sqlite``). It holds what a wallet needs to find,
open and verify its records without scanning the chain: the token id, the
record's commitment, the ciphertext's digest, the DEK sealed under the batch
key, the Merkle proof, and private metadata (type, category, date) that never
goes on chain.

It is also the minting journal. A batch is written here as ``prepared`` before
any ciphertext is stored, ``sent`` (with the exact signed transaction) before
it is broadcast, and ``minted`` once the receipt is in. Records of a batch that
is not ``minted`` are invisible to wallets; recovery (in ``minting``) settles
every unfinished batch one way or the other.

Records streamed in chunks (imaging studies, :mod:`healthnft.vault.stream`) have
more blobs than the one ``blob_digest``: table ``record_blobs(token_id, key_ref,
digest)`` journals each chunk's digest *before* the chunk is stored, under the key
that seals it (the batch's ``batch_ref`` at mint, a transfer's ``key_ref`` after
re-encryption). A row is *live* while its key is the record's current key or its
staged transfer's; every other row (a mint that crashed mid-stream, before its batch
was journaled; a transfer that crashed while re-sealing, or after switching keys) is
*stale*, and :meth:`Catalog.stale_blobs` lists it so its blob can be deleted: a chunk
is never stored without a row that leads to it, so there are no orphans. Rolling a
batch back and burning a record delete the chunks with the rest.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from healthnft.vault.blobstore import BlobStore, digest_of

_SCHEMA = """
CREATE TABLE IF NOT EXISTS participants (
    address TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    label TEXT NOT NULL,
    enc_key BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS participants_label ON participants(kind, label);
CREATE TABLE IF NOT EXISTS batches (
    batch_ref BLOB PRIMARY KEY,
    issuer TEXT NOT NULL,
    owner TEXT NOT NULL,
    start_token INTEGER NOT NULL,
    count INTEGER NOT NULL,
    root BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('prepared', 'sent', 'minted')),
    raw_tx BLOB,
    tx_hash BLOB,
    nonce INTEGER,
    chain_batch_id INTEGER,
    gas_used INTEGER,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_keys (
    batch_ref BLOB NOT NULL,
    reader TEXT NOT NULL,
    wrapped BLOB NOT NULL,
    PRIMARY KEY (batch_ref, reader)
);
CREATE TABLE IF NOT EXISTS records (
    token_id INTEGER PRIMARY KEY,
    batch_ref BLOB NOT NULL,
    record_key BLOB NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    issuer TEXT NOT NULL,
    commitment BLOB NOT NULL,
    blob_digest BLOB NOT NULL,
    sealed_dek BLOB NOT NULL,
    proof BLOB NOT NULL,
    resource_type TEXT NOT NULL,
    category TEXT NOT NULL,
    effective_date TEXT,
    status TEXT NOT NULL DEFAULT 'active',
    key_ref BLOB
);
CREATE TABLE IF NOT EXISTS custodian_keys (
    key_ref BLOB NOT NULL,
    custodian TEXT NOT NULL,
    wrapped BLOB NOT NULL,
    PRIMARY KEY (key_ref, custodian)
);
CREATE TABLE IF NOT EXISTS custodian_shares (
    token_id INTEGER NOT NULL,
    custodian TEXT NOT NULL,
    key_ref BLOB NOT NULL,
    sealed_share BLOB NOT NULL,
    PRIMARY KEY (token_id, custodian, key_ref)
);
CREATE TABLE IF NOT EXISTS request_reasons (
    request_id INTEGER PRIMARY KEY,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS staged_transfers (
    token_id INTEGER PRIMARY KEY,
    new_owner TEXT NOT NULL,
    key_ref BLOB NOT NULL,
    blob_digest BLOB NOT NULL,
    sealed_dek BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS record_blobs (
    token_id INTEGER NOT NULL,
    key_ref BLOB NOT NULL,
    digest BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS record_blobs_token ON record_blobs(token_id);
CREATE INDEX IF NOT EXISTS record_blobs_key ON record_blobs(key_ref);
CREATE INDEX IF NOT EXISTS records_owner ON records(owner);
CREATE INDEX IF NOT EXISTS records_batch ON records(batch_ref);
"""


@dataclass(frozen=True)
class Participant:
    address: str
    kind: str
    label: str
    enc_key: bytes


@dataclass(frozen=True)
class BatchRow:
    batch_ref: bytes
    issuer: str
    owner: str
    start_token: int
    count: int
    root: bytes
    state: str
    raw_tx: bytes | None
    tx_hash: bytes | None
    nonce: int | None
    chain_batch_id: int | None
    gas_used: int | None


@dataclass(frozen=True)
class RecordRow:
    token_id: int
    batch_ref: bytes
    record_key: bytes
    owner: str
    issuer: str
    commitment: bytes
    blob_digest: bytes
    sealed_dek: bytes
    proof: bytes
    resource_type: str
    category: str
    effective_date: str | None
    status: str
    key_ref: bytes | None = None  # set when re-keyed (transfer); else the batch's key

    @property
    def key_id(self) -> bytes:
        """Which wrapped key opens this record's DEK (batch_keys.batch_ref)."""
        return self.key_ref or self.batch_ref


_RECORD_COLS = ", ".join(RecordRow.__dataclass_fields__)
_BATCH_COLS = ", ".join(BatchRow.__dataclass_fields__)


class Catalog:
    """The local index and minting journal over one SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA secure_delete=ON")
        self._conn.executescript(_SCHEMA)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()

    # -- participants -----------------------------------------------------

    def add_participant(self, p: Participant) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO participants (address, kind, label, enc_key, created) "
            "VALUES (?, ?, ?, ?, ?)",
            (p.address, p.kind, p.label, p.enc_key, time.time()),
        )

    def participant(self, address: str) -> Participant | None:
        row = self._conn.execute(
            "SELECT address, kind, label, enc_key FROM participants "
            "WHERE lower(address) = lower(?)",
            (address,),
        ).fetchone()
        return Participant(*row) if row else None

    def participant_by_label(self, label: str, kind: str | None = None) -> Participant | None:
        sql = "SELECT address, kind, label, enc_key FROM participants WHERE label = ?"
        args: tuple = (label,)
        if kind:
            sql += " AND kind = ?"
            args += (kind,)
        row = self._conn.execute(sql, args).fetchone()
        return Participant(*row) if row else None

    def participants(self, kind: str | None = None) -> list[Participant]:
        sql = "SELECT address, kind, label, enc_key FROM participants"
        rows = (
            self._conn.execute(sql + " WHERE kind = ? ORDER BY created", (kind,))
            if kind
            else self._conn.execute(sql + " ORDER BY created")
        )
        return [Participant(*r) for r in rows]

    # -- minting journal ----------------------------------------------------

    def token_with_record_key(self, record_key: bytes) -> int | None:
        """The token catalogued for ``record_key`` (the minter's de-duplication key)."""
        row = self._conn.execute(
            "SELECT token_id FROM records WHERE record_key = ?", (record_key,)
        ).fetchone()
        return int(row[0]) if row else None

    def known_record_keys(self, keys: Iterable[bytes]) -> set[bytes]:
        """Which of ``keys`` belong to records already catalogued (any batch state)."""
        keys = list(keys)
        found: set[bytes] = set()
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            q = ",".join("?" * len(chunk))
            found.update(
                r[0]
                for r in self._conn.execute(
                    f"SELECT record_key FROM records WHERE record_key IN ({q})", chunk
                )
            )
        return found

    def prepare_batch(
        self, batch: BatchRow, keys: dict[str, bytes], records: list[RecordRow]
    ) -> None:
        """Journal a batch and its records as ``prepared`` in one transaction."""
        with self.transaction() as c:
            c.execute(
                f"INSERT INTO batches ({_BATCH_COLS}, created) VALUES "
                f"({','.join('?' * len(BatchRow.__dataclass_fields__))}, ?)",
                (*_astuple(batch), time.time()),
            )
            c.executemany(
                "INSERT INTO batch_keys (batch_ref, reader, wrapped) VALUES (?, ?, ?)",
                [(batch.batch_ref, reader, wrapped) for reader, wrapped in keys.items()],
            )
            c.executemany(
                f"INSERT INTO records ({_RECORD_COLS}) VALUES "
                f"({','.join('?' * len(RecordRow.__dataclass_fields__))})",
                [_astuple(r) for r in records],
            )

    def add_custody(self, key_ref: bytes, keys: dict[str, bytes],
                    shares: list[tuple[int, str, bytes]]) -> None:  # fmt: skip
        """Custodians' wrapped batch keys and their sealed shares (token, custodian, share)."""
        with self.transaction() as c:
            c.executemany(
                "INSERT OR REPLACE INTO custodian_keys (key_ref, custodian, wrapped) "
                "VALUES (?, ?, ?)",
                [(key_ref, who, w) for who, w in keys.items()],
            )
            c.executemany(
                "INSERT OR REPLACE INTO custodian_shares (token_id, custodian, key_ref, "
                "sealed_share) VALUES (?, ?, ?, ?)",
                [(t, who, key_ref, s) for t, who, s in shares],
            )

    def custodian_share(self, token_id: int, custodian: str) -> tuple[bytes, bytes, bytes] | None:
        """(key ref, wrapped custodian key, sealed share) for the record's *current* DEK."""
        row = self._conn.execute(
            "SELECT s.key_ref, k.wrapped, s.sealed_share FROM custodian_shares s "
            "JOIN custodian_keys k ON k.key_ref = s.key_ref AND k.custodian = s.custodian "
            "JOIN records r ON r.token_id = s.token_id "
            "AND s.key_ref = coalesce(r.key_ref, r.batch_ref) "
            "WHERE s.token_id = ? AND lower(s.custodian) = lower(?)",
            (token_id, custodian),
        ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def drop_custody(self, token_id: int) -> None:
        """Delete every custodian share of a record (burn)."""
        self._conn.execute("DELETE FROM custodian_shares WHERE token_id = ?", (token_id,))

    def set_status(self, token_id: int, status: str) -> None:
        self._conn.execute("UPDATE records SET status = ? WHERE token_id = ?", (status, token_id))

    def retired_before(self, token_id: int) -> list[int]:
        """Ids below ``token_id`` whose records are no longer active (superseded or burned).

        The candidates a correction ``token_id`` may supersede: the chain links
        old to new only, and these few rows spare a scan of its event log.
        """
        return [
            r[0]
            for r in self._conn.execute(
                "SELECT token_id FROM records WHERE token_id < ? AND status != 'active' "
                "ORDER BY token_id DESC",
                (token_id,),
            )
        ]

    def note_request_reason(self, request_id: int, reason: str) -> None:
        """A request's free-text reason, kept here and never on chain."""
        self._conn.execute(
            "INSERT OR REPLACE INTO request_reasons (request_id, reason) VALUES (?, ?)",
            (request_id, reason),
        )

    def request_reason(self, request_id: int) -> str | None:
        row = self._conn.execute(
            "SELECT reason FROM request_reasons WHERE request_id = ?", (request_id,)
        ).fetchone()
        return row[0] if row else None

    def mark_sent(self, batch_ref: bytes, raw_tx: bytes, tx_hash: bytes, nonce: int) -> None:
        self._conn.execute(
            "UPDATE batches SET state = 'sent', raw_tx = ?, tx_hash = ?, nonce = ? "
            "WHERE batch_ref = ?",
            (raw_tx, tx_hash, nonce, batch_ref),
        )

    def mark_minted(self, batch_ref: bytes, chain_batch_id: int, gas_used: int | None) -> None:
        self._conn.execute(
            "UPDATE batches SET state = 'minted', chain_batch_id = ?, gas_used = ?, raw_tx = NULL "
            "WHERE batch_ref = ?",
            (chain_batch_id, gas_used, batch_ref),
        )

    def batch_digests(self, batch_ref: bytes) -> list[bytes]:
        """Blob digests of a batch's records, journaled stream chunks included."""
        return [
            r[0]
            for r in self._conn.execute(
                "SELECT blob_digest FROM records WHERE batch_ref = ? "
                "UNION ALL SELECT digest FROM record_blobs WHERE key_ref = ?",
                (batch_ref, batch_ref),
            )
        ]

    def drop_batch(self, batch_ref: bytes) -> None:
        """Forget an unminted batch. Delete its blobs *first* (see ``minting``)."""
        with self.transaction() as c:
            c.execute(
                "DELETE FROM custodian_shares WHERE token_id IN "
                "(SELECT token_id FROM records WHERE batch_ref = ?)",
                (batch_ref,),
            )
            c.execute("DELETE FROM custodian_keys WHERE key_ref = ?", (batch_ref,))
            c.execute("DELETE FROM records WHERE batch_ref = ?", (batch_ref,))
            c.execute("DELETE FROM record_blobs WHERE key_ref = ?", (batch_ref,))
            c.execute("DELETE FROM batch_keys WHERE batch_ref = ?", (batch_ref,))
            c.execute("DELETE FROM batches WHERE batch_ref = ? AND state != 'minted'", (batch_ref,))

    # -- stream chunks (record_blobs) ------------------------------------------

    def journal_blob(self, token_id: int, key_ref: bytes, digest: bytes) -> None:
        """Note a blob of ``token_id`` sealed under ``key_ref``, *before* it is stored."""
        self._conn.execute(
            "INSERT INTO record_blobs (token_id, key_ref, digest) VALUES (?, ?, ?)",
            (token_id, key_ref, digest),
        )

    def record_blobs(self, token_id: int, key_ref: bytes | None = None) -> list[bytes]:
        """Journaled blob digests of a record: under ``key_ref``, or under every key."""
        sql, args = "SELECT digest FROM record_blobs WHERE token_id = ?", (token_id,)
        if key_ref is not None:
            sql, args = sql + " AND key_ref = ?", (token_id, key_ref)
        return [r[0] for r in self._conn.execute(sql + " ORDER BY rowid", args)]

    def forget_blobs(self, token_id: int, digests: Iterable[bytes] | None = None) -> None:
        """Drop journal rows of a record (all of them, or these digests) once deleted."""
        if digests is None:
            self._conn.execute("DELETE FROM record_blobs WHERE token_id = ?", (token_id,))
            return
        with self.transaction() as c:
            c.executemany(
                "DELETE FROM record_blobs WHERE token_id = ? AND digest = ?",
                [(token_id, d) for d in digests],
            )

    def stale_blobs(self, token_id: int | None = None) -> list[bytes]:
        """Digests journaled under a key that is neither the record's current key nor its
        staged transfer's (see the module docstring): blobs to delete, then forget."""
        sql = (
            "SELECT b.digest FROM record_blobs b WHERE NOT EXISTS ("
            " SELECT 1 FROM records r WHERE r.token_id = b.token_id"
            " AND coalesce(r.key_ref, r.batch_ref) = b.key_ref AND r.status != 'burned')"
            " AND NOT EXISTS (SELECT 1 FROM staged_transfers s"
            " WHERE s.token_id = b.token_id AND s.key_ref = b.key_ref)"
        )
        if token_id is None:
            return [r[0] for r in self._conn.execute(sql)]
        return [r[0] for r in self._conn.execute(sql + " AND b.token_id = ?", (token_id,))]

    def forget_stale_blobs(self, digests: Iterable[bytes]) -> None:
        """Drop the stale rows of these digests (after their blobs were deleted)."""
        with self.transaction() as c:
            c.executemany(
                "DELETE FROM record_blobs WHERE digest = ? AND NOT EXISTS ("
                " SELECT 1 FROM records r WHERE r.token_id = record_blobs.token_id"
                " AND coalesce(r.key_ref, r.batch_ref) = record_blobs.key_ref"
                " AND r.status != 'burned')"
                " AND NOT EXISTS (SELECT 1 FROM staged_transfers s"
                " WHERE s.token_id = record_blobs.token_id AND s.key_ref = record_blobs.key_ref)",
                [(d,) for d in digests],
            )

    def referenced_digests(self) -> set[bytes]:
        """Every blob digest the catalogue leads to (records, staged transfers, journal)."""
        q = self._conn.execute
        return {
            r[0]
            for r in q(
                "SELECT blob_digest FROM records WHERE status != 'burned' "
                "UNION SELECT blob_digest FROM staged_transfers "
                "UNION SELECT digest FROM record_blobs"
            )
        }

    def unfinished_batches(self) -> list[BatchRow]:
        return [
            BatchRow(*r)
            for r in self._conn.execute(
                f"SELECT {_BATCH_COLS} FROM batches WHERE state != 'minted' ORDER BY created"
            )
        ]

    def batch(self, batch_ref: bytes) -> BatchRow | None:
        row = self._conn.execute(
            f"SELECT {_BATCH_COLS} FROM batches WHERE batch_ref = ?", (batch_ref,)
        ).fetchone()
        return BatchRow(*row) if row else None

    def batch_key(self, batch_ref: bytes, reader: str) -> bytes | None:
        row = self._conn.execute(
            "SELECT wrapped FROM batch_keys WHERE batch_ref = ? AND lower(reader) = lower(?)",
            (batch_ref, reader),
        ).fetchone()
        return row[0] if row else None

    # -- records ------------------------------------------------------------

    def record(self, token_id: int) -> RecordRow | None:
        """A minted record by token id (unminted batches are invisible)."""
        row = self._conn.execute(
            f"SELECT {', '.join('r.' + c for c in RecordRow.__dataclass_fields__)} "
            "FROM records r JOIN batches b ON b.batch_ref = r.batch_ref "
            "WHERE r.token_id = ? AND b.state = 'minted'",
            (token_id,),
        ).fetchone()
        return RecordRow(*row) if row else None

    def records_of(self, owner: str) -> list[RecordRow]:
        rows = self._conn.execute(
            f"SELECT {', '.join('r.' + c for c in RecordRow.__dataclass_fields__)} "
            "FROM records r JOIN batches b ON b.batch_ref = r.batch_ref "
            "WHERE lower(r.owner) = lower(?) AND b.state = 'minted' ORDER BY r.token_id",
            (owner,),
        )
        return [RecordRow(*r) for r in rows]

    def minted_batches_of(self, owner: str) -> list[BatchRow]:
        rows = self._conn.execute(
            f"SELECT {_BATCH_COLS} FROM batches WHERE lower(owner) = lower(?) "
            "AND state = 'minted' ORDER BY start_token",
            (owner,),
        )
        return [BatchRow(*r) for r in rows]

    # -- owner actions: burn and transfer ------------------------------------

    def shred(self, token_id: int) -> bytes | None:
        """Forget a burned record's sealed DEK; returns its blob digest to delete."""
        row = self._conn.execute(
            "SELECT blob_digest FROM records WHERE token_id = ?", (token_id,)
        ).fetchone()
        if row is None:
            return None
        with self.transaction() as c:
            c.execute(
                "UPDATE records SET sealed_dek = x'', status = 'burned' WHERE token_id = ?",
                (token_id,),
            )
            c.execute("DELETE FROM custodian_shares WHERE token_id = ?", (token_id,))
            c.execute("DELETE FROM staged_transfers WHERE token_id = ?", (token_id,))
        return row[0]

    def stage_transfer(self, token_id: int, new_owner: str, key_ref: bytes,
                       keys: dict[str, bytes], blob_digest: bytes,
                       sealed_dek: bytes) -> None:  # fmt: skip
        """Journal a re-encrypted copy before the on-chain transfer."""
        with self.transaction() as c:
            c.execute("DELETE FROM staged_transfers WHERE token_id = ?", (token_id,))
            c.execute(
                "INSERT INTO staged_transfers VALUES (?, ?, ?, ?, ?)",
                (token_id, new_owner, key_ref, blob_digest, sealed_dek),
            )
            c.executemany(
                "INSERT OR REPLACE INTO batch_keys (batch_ref, reader, wrapped) VALUES (?, ?, ?)",
                [(key_ref, reader, wrapped) for reader, wrapped in keys.items()],
            )

    def staged_transfer(self, token_id: int) -> tuple[str, bytes, bytes, bytes] | None:
        row = self._conn.execute(
            "SELECT new_owner, key_ref, blob_digest, sealed_dek FROM staged_transfers "
            "WHERE token_id = ?",
            (token_id,),
        ).fetchone()
        return tuple(row) if row else None  # type: ignore[return-value]

    def complete_transfer(self, token_id: int) -> bytes | None:
        """Switch the record to its re-encrypted copy; returns the old blob digest."""
        staged = self.staged_transfer(token_id)
        if staged is None:
            return None
        new_owner, key_ref, digest, sealed_dek = staged
        with self.transaction() as c:
            (old_digest,) = c.execute(
                "SELECT blob_digest FROM records WHERE token_id = ?", (token_id,)
            ).fetchone()
            c.execute(
                "UPDATE records SET owner = ?, key_ref = ?, blob_digest = ?, sealed_dek = ? "
                "WHERE token_id = ?",
                (new_owner, key_ref, digest, sealed_dek, token_id),
            )
            # Shares of the old DEK are now useless; keep only the re-split ones.
            c.execute(
                "DELETE FROM custodian_shares WHERE token_id = ? AND key_ref != ?",
                (token_id, key_ref),
            )
            c.execute("DELETE FROM staged_transfers WHERE token_id = ?", (token_id,))
        return old_digest

    def drop_staged_transfer(self, token_id: int) -> bytes | None:
        staged = self.staged_transfer(token_id)
        if staged is None:
            return None
        with self.transaction() as c:
            c.execute("DELETE FROM staged_transfers WHERE token_id = ?", (token_id,))
            c.execute("DELETE FROM batch_keys WHERE batch_ref = ?", (staged[1],))
            c.execute("DELETE FROM custodian_shares WHERE key_ref = ?", (staged[1],))
            c.execute("DELETE FROM custodian_keys WHERE key_ref = ?", (staged[1],))
        return staged[2]

    def checkpoint(self) -> None:
        """Fold the WAL into the database so deleted pages do not linger in it."""
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def counts(self) -> dict[str, int]:
        """Totals for summaries: minted records and batches, unfinished batches."""
        q = self._conn.execute
        return {
            "records": q(
                "SELECT count(*) FROM records r JOIN batches b ON b.batch_ref = r.batch_ref "
                "WHERE b.state = 'minted'"
            ).fetchone()[0],
            "batches": q("SELECT count(*) FROM batches WHERE state = 'minted'").fetchone()[0],
            "unfinished": q("SELECT count(*) FROM batches WHERE state != 'minted'").fetchone()[0],
            "all_record_rows": q("SELECT count(*) FROM records").fetchone()[0],
        }


def _astuple(obj: object) -> tuple:
    return tuple(getattr(obj, f) for f in obj.__dataclass_fields__)  # type: ignore[attr-defined]


class JournaledStore:
    """A blob store that journals each blob's digest in the catalogue *before* storing it.

    What :func:`healthnft.vault.stream.seal_stream` writes through: a crash at any point
    of a stream leaves only chunks that ``record_blobs`` leads to, which rollback, burn
    and :meth:`Catalog.stale_blobs` then find and delete. ``after_put`` is called with
    the number of blobs stored so far (the minter's crash hook). ``put_many`` runs in the
    stream's helper thread while the caller does not use the catalogue.
    """

    def __init__(self, store: BlobStore, catalog: Catalog, token_id: int, key_ref: bytes,
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
