"""A manufacturer's packs: what it must keep to answer for every serial it commissioned.

``drugs.sqlite`` of the manufacturer's home. The chain holds one Merkle root per batch;
this file holds what lies under it (see :mod:`healthnft.drugs.commitments`):

- ``drug_batches``: one row per batch: GTIN, lot, expiry (YYMMDD), root, pack count,
  manufacturer, and the commissioning transaction once sent;
- ``drug_serials``: one row per pack: (GTIN, serial) -> batch, leaf index, 16-byte salt.
  A serial is unique per GTIN (GS1), whatever the lot;
- ``drug_tree``: every level of each batch's tree, ``CHUNK`` nodes per row, so a proof
  reads one small row per level (17 rows of 2 KiB for a 100,000-pack batch) instead of
  a stored proof per pack (544 bytes each: 54 MB a batch; the levels are 6.4 MB).

Commitments are not stored: ``sha256`` of the row's fields is cheaper than reading them.
This module knows tables, not hashing: the caller gives it the levels.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from healthnft.errors import Conflict
from healthnft.store.connection import Database
from healthnft.store.migrations import open_database
from healthnft.store.schema import DRUGS

#: Nodes per stored row of a tree level.
CHUNK = 64


@dataclass(frozen=True)
class DrugBatchRow:
    """One batch as its manufacturer keeps it."""

    batch_key: bytes
    gtin: str
    lot: str
    expiry: str
    root: bytes
    count: int
    manufacturer: str
    created: float
    commissioned_tx: bytes | None = None


@dataclass(frozen=True)
class SerialRow:
    """One pack: where its leaf is, and the salt of its commitment."""

    gtin: str
    serial: str
    batch_key: bytes
    index: int
    salt: bytes


_BATCH_COLUMNS = ("batch_key, gtin, lot, expiry, root, count, manufacturer, created, "
                  "commissioned_tx")  # fmt: skip


class SerialBook:
    """The batches, salts and trees of one manufacturer's home."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @classmethod
    def open(cls, path: Path | str) -> SerialBook:
        return cls(open_database(path, DRUGS))

    def close(self) -> None:
        self._db.close()

    # -- writing ----------------------------------------------------------------

    def add_batch(self, batch: DrugBatchRow, serials: list[tuple[str, bytes]],
                  levels: list[list[bytes]]) -> None:  # fmt: skip
        """Keep a new batch, its packs (serial, salt) in leaf order and its tree's
        levels, all or nothing. :class:`Conflict` when the GTIN's lot, or one of the
        serials under the GTIN, is kept already."""
        try:
            with self._db.write() as c:
                c.execute(
                    f"INSERT INTO drug_batches ({_BATCH_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (batch.batch_key, batch.gtin, batch.lot, batch.expiry, batch.root,
                     batch.count, batch.manufacturer, batch.created or time.time(), None),
                )  # fmt: skip
                c.executemany(
                    "INSERT INTO drug_serials (gtin, serial, batch_key, idx, salt) "
                    "VALUES (?, ?, ?, ?, ?)",
                    ((batch.gtin, serial, batch.batch_key, i, salt)
                     for i, (serial, salt) in enumerate(serials)),
                )  # fmt: skip
                c.executemany(
                    "INSERT INTO drug_tree (batch_key, level, chunk, nodes) VALUES (?, ?, ?, ?)",
                    ((batch.batch_key, lv, start // CHUNK, b"".join(nodes[start:start + CHUNK]))
                     for lv, nodes in enumerate(levels) for start in range(0, len(nodes), CHUNK)),
                )  # fmt: skip
        except sqlite3.IntegrityError:
            if self.batch_by_lot(batch.gtin, batch.lot) is not None:
                raise Conflict(f"lot {batch.lot} of GTIN {batch.gtin} is kept already") from None
            raise Conflict(f"a serial of this batch is already commissioned under GTIN "
                           f"{batch.gtin} (a serial is unique per GTIN)") from None  # fmt: skip

    def mark_commissioned(self, batch_key: bytes, tx_hash: bytes) -> None:
        with self._db.write() as c:
            c.execute("UPDATE drug_batches SET commissioned_tx = ? WHERE batch_key = ?",
                      (tx_hash, batch_key))  # fmt: skip

    def remove_batch(self, batch_key: bytes) -> None:
        """Forget a batch that was never commissioned (its transaction was refused)."""
        with self._db.write() as c:
            for table in ("drug_tree", "drug_serials", "drug_batches"):
                c.execute(f"DELETE FROM {table} WHERE batch_key = ?", (batch_key,))

    # -- reading ----------------------------------------------------------------

    def batch(self, batch_key: bytes) -> DrugBatchRow | None:
        row = self._db.one(f"SELECT {_BATCH_COLUMNS} FROM drug_batches WHERE batch_key = ?",
                           (batch_key,))  # fmt: skip
        return None if row is None else DrugBatchRow(*row)

    def batch_by_lot(self, gtin: str, lot: str) -> DrugBatchRow | None:
        row = self._db.one(f"SELECT {_BATCH_COLUMNS} FROM drug_batches WHERE gtin = ? AND lot = ?",
                           (gtin, lot))  # fmt: skip
        return None if row is None else DrugBatchRow(*row)

    def batches(self) -> list[DrugBatchRow]:
        rows = self._db.query(f"SELECT {_BATCH_COLUMNS} FROM drug_batches ORDER BY created")
        return [DrugBatchRow(*r) for r in rows]

    def serial(self, gtin: str, serial: str) -> SerialRow | None:
        row = self._db.one("SELECT gtin, serial, batch_key, idx, salt FROM drug_serials "
                           "WHERE gtin = ? AND serial = ?", (gtin, serial))  # fmt: skip
        return None if row is None else SerialRow(*row)

    def salts(self, batch_key: bytes) -> list[tuple[str, bytes]]:
        """Every pack of a batch as (serial, salt), in leaf order."""
        rows = self._db.query("SELECT serial, salt FROM drug_serials WHERE batch_key = ? "
                              "ORDER BY idx", (batch_key,))  # fmt: skip
        return [(str(s), bytes(salt)) for s, salt in rows]

    def nodes(self, batch_key: bytes, positions: list[tuple[int, int]]) -> list[bytes]:
        """The tree nodes at (level, position), in the order asked (one query)."""
        if not positions:
            return []
        wanted = sorted({(lv, pos // CHUNK) for lv, pos in positions})
        chunks: dict[tuple[int, int], bytes] = {}
        with self._db.lock:  # point lookups on the primary key: ~17 for 100,000 packs
            c = self._db.connection
            for lv, ch in wanted:
                row = c.execute("SELECT nodes FROM drug_tree WHERE batch_key = ? AND level = ? "
                                "AND chunk = ?", (batch_key, lv, ch)).fetchone()  # fmt: skip
                if row is not None:
                    chunks[(lv, ch)] = bytes(row[0])
        out = []
        for lv, pos in positions:
            data = chunks.get((lv, pos // CHUNK), b"")
            node = data[(pos % CHUNK) * 32:(pos % CHUNK) * 32 + 32]
            if len(node) != 32:
                raise Conflict(f"drugs.sqlite lacks node {pos} of level {lv} of a batch's tree")
            out.append(node)
        return out
