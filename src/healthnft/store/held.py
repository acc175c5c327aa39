"""A custodian home's own shares: what issuers delivered to it, and nothing else.

Table ``held_shares`` of the custodian's ``index.sqlite``. A remote custodian never
reads an issuer's index: each issuer pushes (signed) the custodian's sealed share of
every record it mints, with the batch key HPKE-wrapped for this custodian, the
record's commitment and its category (what a category grant is checked against).
A share is keyed by (token, key ref): a delivery sent again is the same row, and the
newest key ref received for a token is the one released.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from healthnft.store.connection import Database


@dataclass(frozen=True)
class HeldShare:
    """One record's share as a custodian holds it (sealed under ``key_ref``'s key)."""

    token_id: int
    key_ref: bytes
    wrapped_key: bytes
    sealed_share: bytes
    commitment: bytes
    category: str
    issuer: str
    #: For a de-identified copy, the record it was made from (its grants cover the copy).
    original: int | None = None


class HeldShares:
    """The shares delivered to this home's custodian."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def keep(self, shares: list[HeldShare]) -> None:
        """Store delivered shares (all or none); a share received again changes nothing."""
        now = time.time()
        with self._db.write() as c:
            c.executemany(
                "INSERT OR IGNORE INTO held_shares (token_id, key_ref, wrapped_key, "
                "sealed_share, commitment, category, issuer, original, received) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(s.token_id, s.key_ref, s.wrapped_key, s.sealed_share, s.commitment,
                  s.category, s.issuer, s.original, now) for s in shares],
            )  # fmt: skip

    def share(self, token_id: int) -> HeldShare | None:
        """The newest share held for ``token_id``, or None."""
        row = self._db.one(
            "SELECT token_id, key_ref, wrapped_key, sealed_share, commitment, category, issuer, "
            "original FROM held_shares WHERE token_id = ? "
            "ORDER BY received DESC, rowid DESC LIMIT 1",
            (token_id,),
        )
        if row is None:
            return None
        return HeldShare(int(row[0]), bytes(row[1]), bytes(row[2]), bytes(row[3]),
                         bytes(row[4]), str(row[5]), str(row[6]),
                         None if row[7] is None else int(row[7]))  # fmt: skip

    def original_of(self, token_id: int) -> int | None:
        """The record a de-identified copy was made from, as its issuer delivered it."""
        held = self.share(token_id)
        return held.original if held else None

    def count(self) -> int:
        return int(self._db.scalar("SELECT count(*) FROM held_shares"))
