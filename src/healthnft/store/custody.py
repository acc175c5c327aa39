"""Custody: the shares of each record's key held for the custodians, and their keys.

Tables ``custodian_keys(key_ref, custodian, wrapped)`` and
``custodian_shares(token_id, custodian, key_ref, sealed_share)`` of ``index.sqlite``;
``share_deliveries(batch_ref, custodian, delivered)`` says which minted batch's shares
a remote custodian has acknowledged: the rest are pending, and are sent again until
they are (a custodian that was down at mint time gets them when it is back). A record
re-split at a transfer or a recovery has a key ref of its own, acknowledged there the
same way.
A record's DEK is split among the custodians at mint (and re-split at transfer); each
share is sealed for one custodian, under the key ``key_ref`` that seals the record at
that moment, so only the shares of the record's *current* key are ever released.
"""

from __future__ import annotations

from healthnft.store.connection import Database


class Custody:
    """Custodians' wrapped keys and sealed shares of one home."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add_custody(self, key_ref: bytes, keys: dict[str, bytes],
                    shares: list[tuple[int, str, bytes]]) -> None:  # fmt: skip
        """Custodians' wrapped batch keys and their sealed shares (token, custodian, share)."""
        with self._db.write() as c:
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
        row = self._db.one(
            "SELECT s.key_ref, k.wrapped, s.sealed_share FROM custodian_shares s "
            "JOIN custodian_keys k ON k.key_ref = s.key_ref AND k.custodian = s.custodian "
            "JOIN records r ON r.token_id = s.token_id "
            "AND s.key_ref = coalesce(r.key_ref, r.batch_ref) "
            "WHERE s.token_id = ? AND lower(s.custodian) = lower(?)",
            (token_id, custodian),
        )
        return (row[0], row[1], row[2]) if row else None

    def share_count(self, token_id: int) -> int:
        """How many custodian shares of a record are held (any key)."""
        return int(
            self._db.scalar("SELECT count(*) FROM custodian_shares WHERE token_id = ?", (token_id,))
        )

    def drop_custody(self, token_id: int) -> None:
        """Delete every custodian share of a record (burn)."""
        with self._db.write() as c:
            c.execute("DELETE FROM custodian_shares WHERE token_id = ?", (token_id,))

    def delivered(self, batch_ref: bytes, custodian: str) -> bool:
        """Whether ``custodian`` acknowledged the shares of batch ``batch_ref``."""
        return self._db.one(
            "SELECT 1 FROM share_deliveries WHERE batch_ref = ? AND lower(custodian) = lower(?)",
            (batch_ref, custodian),
        ) is not None

    def undelivered(self, custodian: str) -> list[bytes]:
        """Minted batches holding shares for ``custodian`` it has not acknowledged."""
        rows = self._db.query(
            "SELECT DISTINCT s.key_ref FROM custodian_shares s "
            "JOIN batches b ON b.batch_ref = s.key_ref AND b.state = 'minted' "
            "WHERE lower(s.custodian) = lower(?) AND NOT EXISTS (SELECT 1 FROM "
            "share_deliveries d WHERE d.batch_ref = s.key_ref "
            "AND lower(d.custodian) = lower(s.custodian)) ORDER BY b.start_token",
            (custodian,),
        )
        return [bytes(r[0]) for r in rows]

    def rekeyed_undelivered(self, custodian: str) -> list[tuple[bytes, int]]:
        """(key ref, token id) of records re-split since their mint (a transfer or a
        guardian recovery re-sealed them under a fresh key, now their current one)
        whose new share ``custodian`` has not acknowledged, oldest token first. A staged
        copy the chain has not moved to yet is not among them: its owner is not yet the
        one the custodian would check."""
        rows = self._db.query(
            "SELECT s.key_ref, s.token_id FROM custodian_shares s "
            "JOIN records r ON r.token_id = s.token_id AND s.key_ref = r.key_ref "
            "AND r.key_ref != r.batch_ref AND r.status != 'burned' "
            "WHERE lower(s.custodian) = lower(?) AND NOT EXISTS (SELECT 1 FROM "
            "share_deliveries d WHERE d.batch_ref = s.key_ref "
            "AND lower(d.custodian) = lower(s.custodian)) ORDER BY s.token_id",
            (custodian,),
        )
        return [(bytes(r[0]), int(r[1])) for r in rows]

    def batch_shares(self, key_ref: bytes, custodian: str) -> tuple[bytes, list[tuple[int, bytes]]]:
        """(wrapped key, [(token id, sealed share)]) of ``custodian`` under ``key_ref``."""
        wrapped = self._db.scalar(
            "SELECT wrapped FROM custodian_keys WHERE key_ref = ? AND lower(custodian) = lower(?)",
            (key_ref, custodian),
        )
        rows = self._db.query(
            "SELECT token_id, sealed_share FROM custodian_shares WHERE key_ref = ? "
            "AND lower(custodian) = lower(?) ORDER BY token_id",
            (key_ref, custodian),
        )
        return bytes(wrapped or b""), [(int(t), bytes(s)) for t, s in rows]

    def mark_delivered(self, key_ref: bytes, custodian: str, when: float) -> None:
        with self._db.write() as c:
            c.execute(
                "INSERT OR REPLACE INTO share_deliveries (batch_ref, custodian, delivered) "
                "VALUES (?, ?, ?)",
                (key_ref, custodian, when),
            )
