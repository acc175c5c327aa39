"""Which token is the de-identified copy of which: the link between a record and its copy.

A de-identified copy is minted as a token of its own (so it can be shared, logged
and burned on its own). The link lives off chain, in the home's index, in its own
table: on chain a copy is just another token, so the chain does not tell which of a
patient's tokens are research copies. Custodians read the link to release only
copies under a grant that allows de-identified data only.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS derivatives (
    derived   INTEGER PRIMARY KEY,   -- the copy's token id
    original  INTEGER NOT NULL,      -- the record it was made from
    method    TEXT NOT NULL          -- e.g. 'HIPAA Safe Harbor'
);
CREATE INDEX IF NOT EXISTS derivatives_original ON derivatives (original);
"""


class Derivatives:
    """The derivative links of one home (``HOME/index.sqlite``, table ``derivatives``)."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                                     timeout=30.0)  # fmt: skip
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def add(self, original: int, derived: int, method: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO derivatives (derived, original, method) VALUES (?, ?, ?)",
                (derived, original, method),
            )

    def copies_of(self, original: int) -> list[int]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT derived FROM derivatives WHERE original = ? ORDER BY derived", (original,)
            ).fetchall()
        return [int(r[0]) for r in rows]

    def original_of(self, derived: int) -> int | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT original FROM derivatives WHERE derived = ?", (derived,)
            ).fetchone()
        return int(row[0]) if row else None
