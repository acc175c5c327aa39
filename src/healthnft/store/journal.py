"""The mint journal: batches on their way to the chain, and every blob they stored.

Tables ``batches``, ``batch_keys``, ``records`` (written here, read through
:mod:`healthnft.store.catalogue`) and ``record_blobs`` of ``index.sqlite``.

A batch is written here as ``prepared`` before any ciphertext is stored, ``sent``
(with the exact signed transaction) before it is broadcast, and ``minted`` once the
receipt is in. Records of a batch that is not ``minted`` are invisible to wallets;
recovery (in ``minting``) settles every unfinished batch one way or the other.

Records streamed in chunks (imaging studies) have more blobs than the one
``blob_digest``: ``record_blobs(token_id, key_ref, digest)`` journals each chunk's
digest *before* the chunk is stored, under the key that seals it (the batch's
``batch_ref`` at mint, a transfer's ``key_ref`` after re-encryption). A row is *live*
while its key is the record's current key or its staged transfer's; every other row (a
mint that crashed mid-stream, a transfer that crashed while re-sealing, or after
switching keys) is *stale*, and :meth:`MintJournal.stale_blobs` lists it so its blob can
be deleted: a chunk is never stored without a row that leads to it, so there are no
orphans. Rolling a batch back and burning a record delete the chunks with the rest.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from healthnft.store.catalogue import RECORD_FIELDS, RecordRow
from healthnft.store.connection import Database


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


BATCH_FIELDS: tuple[str, ...] = tuple(BatchRow.__dataclass_fields__)
_B_COLS = ", ".join(BATCH_FIELDS)

# A journal row is live while a record (not burned) is sealed under its key, or a staged
# transfer is; ``{t}`` is the record_blobs alias of the enclosing query.
_LIVE = (
    "EXISTS (SELECT 1 FROM records r WHERE r.token_id = {t}.token_id"
    " AND coalesce(r.key_ref, r.batch_ref) = {t}.key_ref AND r.status != 'burned')"
    " OR EXISTS (SELECT 1 FROM staged_transfers s"
    " WHERE s.token_id = {t}.token_id AND s.key_ref = {t}.key_ref)"
)


class MintJournal:
    """Batches, their readers' wrapped keys, and the blob journal of one home."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- batches --------------------------------------------------------------

    def prepare_batch(
        self, batch: BatchRow, keys: dict[str, bytes], records: list[RecordRow]
    ) -> None:
        """Journal a batch and its records as ``prepared`` in one transaction."""
        with self._db.write() as c:
            c.execute(
                f"INSERT INTO batches ({_B_COLS}, created) VALUES "
                f"({','.join('?' * len(BATCH_FIELDS))}, ?)",
                (*_row(batch, BATCH_FIELDS), time.time()),
            )
            c.executemany(
                "INSERT INTO batch_keys (batch_ref, reader, wrapped) VALUES (?, ?, ?)",
                [(batch.batch_ref, reader, wrapped) for reader, wrapped in keys.items()],
            )
            c.executemany(
                f"INSERT INTO records ({', '.join(RECORD_FIELDS)}) VALUES "
                f"({','.join('?' * len(RECORD_FIELDS))})",
                [_row(r, RECORD_FIELDS) for r in records],
            )

    def mark_sent(self, batch_ref: bytes, raw_tx: bytes, tx_hash: bytes, nonce: int) -> None:
        with self._db.write() as c:
            c.execute(
                "UPDATE batches SET state = 'sent', raw_tx = ?, tx_hash = ?, nonce = ? "
                "WHERE batch_ref = ?",
                (raw_tx, tx_hash, nonce, batch_ref),
            )

    def mark_minted(self, batch_ref: bytes, chain_batch_id: int, gas_used: int | None) -> None:
        with self._db.write() as c:
            c.execute(
                "UPDATE batches SET state = 'minted', chain_batch_id = ?, gas_used = ?, "
                "raw_tx = NULL WHERE batch_ref = ?",
                (chain_batch_id, gas_used, batch_ref),
            )

    def batch(self, batch_ref: bytes) -> BatchRow | None:
        row = self._db.one(f"SELECT {_B_COLS} FROM batches WHERE batch_ref = ?", (batch_ref,))
        return BatchRow(*row) if row else None

    def unfinished_batches(self) -> list[BatchRow]:
        rows = self._db.query(
            f"SELECT {_B_COLS} FROM batches WHERE state != 'minted' ORDER BY created"
        )
        return [BatchRow(*r) for r in rows]

    def minted_batches_of(self, owner: str) -> list[BatchRow]:
        rows = self._db.query(
            f"SELECT {_B_COLS} FROM batches WHERE lower(owner) = lower(?) "
            "AND state = 'minted' ORDER BY start_token",
            (owner,),
        )
        return [BatchRow(*r) for r in rows]

    def batch_key(self, batch_ref: bytes, reader: str) -> bytes | None:
        """The batch (or transfer) key wrapped for ``reader``."""
        return self._db.scalar(
            "SELECT wrapped FROM batch_keys WHERE batch_ref = ? AND lower(reader) = lower(?)",
            (batch_ref, reader),
        )

    def minted_gas(self) -> tuple[int, int]:
        """(gas used, records) summed over every minted batch of this home."""
        row = self._db.one(
            "SELECT coalesce(sum(gas_used), 0), coalesce(sum(count), 0) FROM batches "
            "WHERE state = 'minted'"
        )
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def batch_digests(self, batch_ref: bytes) -> list[bytes]:
        """Blob digests of a batch's records, journaled stream chunks included."""
        rows = self._db.query(
            "SELECT blob_digest FROM records WHERE batch_ref = ? "
            "UNION ALL SELECT digest FROM record_blobs WHERE key_ref = ?",
            (batch_ref, batch_ref),
        )
        return [r[0] for r in rows]

    def drop_batch(self, batch_ref: bytes) -> None:
        """Forget an unminted batch. Delete its blobs *first* (see ``minting``)."""
        with self._db.write() as c:
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
        with self._db.write() as c:
            c.execute(
                "INSERT INTO record_blobs (token_id, key_ref, digest) VALUES (?, ?, ?)",
                (token_id, key_ref, digest),
            )

    def record_blobs(self, token_id: int, key_ref: bytes | None = None) -> list[bytes]:
        """Journaled blob digests of a record: under ``key_ref``, or under every key."""
        sql, args = "SELECT digest FROM record_blobs WHERE token_id = ?", (token_id,)
        if key_ref is not None:
            sql, args = sql + " AND key_ref = ?", (token_id, key_ref)
        return [r[0] for r in self._db.query(sql + " ORDER BY rowid", args)]

    def forget_blobs(self, token_id: int, digests: Iterable[bytes] | None = None) -> None:
        """Drop journal rows of a record (all of them, or these digests) once deleted."""
        with self._db.write() as c:
            if digests is None:
                c.execute("DELETE FROM record_blobs WHERE token_id = ?", (token_id,))
            else:
                c.executemany(
                    "DELETE FROM record_blobs WHERE token_id = ? AND digest = ?",
                    [(token_id, d) for d in digests],
                )

    def stale_blobs(self, token_id: int | None = None) -> list[bytes]:
        """Digests journaled under a key that is neither the record's current key nor its
        staged transfer's (see the module docstring): blobs to delete, then forget."""
        sql = f"SELECT b.digest FROM record_blobs b WHERE NOT ({_LIVE.format(t='b')})"
        if token_id is None:
            return [r[0] for r in self._db.query(sql)]
        return [r[0] for r in self._db.query(sql + " AND b.token_id = ?", (token_id,))]

    def forget_stale_blobs(self, digests: Iterable[bytes]) -> None:
        """Drop the stale rows of these digests (after their blobs were deleted)."""
        with self._db.write() as c:
            c.executemany(
                "DELETE FROM record_blobs WHERE digest = ? "
                f"AND NOT ({_LIVE.format(t='record_blobs')})",
                [(d,) for d in digests],
            )

    def restore_record(self, row: RecordRow, readers: dict[str, bytes],
                       custodians: dict[str, tuple[bytes, bytes]], chunks: Iterable[bytes],
                       batch: BatchRow | None) -> None:  # fmt: skip
        """Put one record back as the chain and its key card say it is (``doctor``), in
        one transaction: its row, its readers' wrapped keys, its custodians' keys and
        shares (those of any other key dropped), its stream chunks' journal rows, its
        batch (when the index lost that too), and no staged transfer left."""
        key_id = row.key_id
        with self._db.write() as c:
            if batch is not None:
                c.execute(
                    f"INSERT OR IGNORE INTO batches ({_B_COLS}, created) VALUES "
                    f"({','.join('?' * len(BATCH_FIELDS))}, ?)",
                    (*_row(batch, BATCH_FIELDS), time.time()),
                )
            c.execute(
                f"INSERT OR REPLACE INTO records ({', '.join(RECORD_FIELDS)}) VALUES "
                f"({','.join('?' * len(RECORD_FIELDS))})",
                _row(row, RECORD_FIELDS),
            )
            c.executemany(
                "INSERT OR REPLACE INTO batch_keys (batch_ref, reader, wrapped) VALUES (?, ?, ?)",
                [(key_id, reader, wrapped) for reader, wrapped in readers.items()],
            )
            c.execute("DELETE FROM custodian_shares WHERE token_id = ?", (row.token_id,))
            c.executemany(
                "INSERT OR REPLACE INTO custodian_keys (key_ref, custodian, wrapped) "
                "VALUES (?, ?, ?)",
                [(key_id, who, k) for who, (k, _s) in custodians.items()],
            )
            c.executemany(
                "INSERT OR REPLACE INTO custodian_shares (token_id, custodian, key_ref, "
                "sealed_share) VALUES (?, ?, ?, ?)",
                [(row.token_id, who, key_id, s) for who, (_k, s) in custodians.items()],
            )
            c.execute("DELETE FROM record_blobs WHERE token_id = ? AND key_ref = ?",
                      (row.token_id, key_id))  # fmt: skip
            c.executemany(
                "INSERT INTO record_blobs (token_id, key_ref, digest) VALUES (?, ?, ?)",
                [(row.token_id, key_id, d) for d in chunks],
            )
            c.execute("DELETE FROM staged_transfers WHERE token_id = ?", (row.token_id,))

    def referenced_digests(self) -> set[bytes]:
        """Every blob digest the index leads to (records, staged transfers, journal)."""
        rows = self._db.query(
            "SELECT blob_digest FROM records WHERE status != 'burned' "
            "UNION SELECT blob_digest FROM staged_transfers "
            "UNION SELECT digest FROM record_blobs"
        )
        return {r[0] for r in rows}


def _row(obj: object, fields: tuple[str, ...]) -> tuple:
    """A dataclass's values in column order (``dataclasses.astuple`` deep-copies: slow)."""
    return tuple(getattr(obj, f) for f in fields)
