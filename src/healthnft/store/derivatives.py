"""Which token is the de-identified copy of which: the link between a record and its copy.

A de-identified copy is minted as a token of its own (so it can be shared, logged
and burned on its own). The link lives off chain, in the home's index (table
``derivatives``): on chain a copy is just another token, so the chain does not tell
which of a patient's tokens are research copies. Custodians read the link to release
only copies under a grant that allows de-identified data only.
"""

from __future__ import annotations

from healthnft.store.connection import Database


class DerivativeLinks:
    """The derivative links of one home."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, original: int, derived: int, method: str) -> None:
        """Link copy ``derived`` to the record ``original`` it was made from by ``method``."""
        with self._db.write() as c:
            c.execute(
                "INSERT OR REPLACE INTO derivatives (derived, original, method) VALUES (?, ?, ?)",
                (derived, original, method),
            )

    def copies_of(self, original: int) -> list[int]:
        rows = self._db.query(
            "SELECT derived FROM derivatives WHERE original = ? ORDER BY derived", (original,)
        )
        return [int(r[0]) for r in rows]

    def original_of(self, derived: int) -> int | None:
        row = self._db.one("SELECT original FROM derivatives WHERE derived = ?", (derived,))
        return int(row[0]) if row else None

    def method_of(self, derived: int) -> str | None:
        """How the copy was de-identified (e.g. 'HIPAA Safe Harbor'), or None."""
        return self._db.scalar("SELECT method FROM derivatives WHERE derived = ?", (derived,))
