"""A custodian's access-log transactions, kept from before they are sent until confirmed.

Table ``access_logs`` of the custodian's ``index.sqlite`` (schema version 6). A
custodian releases a key share once its ``log_access`` transaction is *accepted* by the
node, not mined (:mod:`healthnft.consent.accesslog`); this table is what makes that
safe across a crash: the signed transaction is written here *before* it is sent, keyed
by the release (the one-time challenge the grantee answered), and stays ``pending``
until a settler has seen its receipt with enough confirmations. A restarted custodian
sends the very same bytes again (same hash: at most one of them is ever mined), so a
release is never logged twice and never left unlogged without this table saying so.

States: ``pending`` (signed, maybe sent, no confirmed receipt yet), ``confirmed``
(receipt with status 1 and the ledger's confirmations), ``failed`` (reverted on chain,
or could not be sent again: reported by ``custodian status``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from healthnft.store.connection import Database

PENDING, CONFIRMED, FAILED = "pending", "confirmed", "failed"


@dataclass(frozen=True)
class LoggedRelease:
    """One release's log transaction as the custodian keeps it."""

    release_id: str
    grant_id: int
    token_id: int
    raw: bytes
    tx_hash: bytes
    nonce: int
    state: str
    created: float
    sent: float
    attempts: int = 1
    block_number: int | None = None
    error: str | None = None


_COLUMNS = ("release_id, grant_id, token_id, raw, tx_hash, nonce, state, created, sent, "
            "attempts, block_number, error")  # fmt: skip


def _row(r: tuple) -> LoggedRelease:
    return LoggedRelease(str(r[0]), int(r[1]), int(r[2]), bytes(r[3]), bytes(r[4]), int(r[5]),
                         str(r[6]), float(r[7]), float(r[8]), int(r[9]),
                         None if r[10] is None else int(r[10]), r[11])  # fmt: skip


class AccessLogs:
    """The custodian's pending and settled access-log transactions."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def keep(self, release_id: str, grant_id: int, token_id: int, raw: bytes, tx_hash: bytes,
             nonce: int) -> LoggedRelease:  # fmt: skip
        """Write a signed log transaction before it is sent; the release's existing one
        if it was kept already (a retried release is logged once)."""
        now = time.time()
        with self._db.write() as c:
            c.execute(
                "INSERT OR IGNORE INTO access_logs (release_id, grant_id, token_id, raw, "
                "tx_hash, nonce, state, created, sent, attempts) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                (release_id, grant_id, token_id, raw, tx_hash, nonce, PENDING, now, now),
            )
        found = self.get(release_id)
        assert found is not None
        return found

    def get(self, release_id: str) -> LoggedRelease | None:
        row = self._db.one(f"SELECT {_COLUMNS} FROM access_logs WHERE release_id = ?",
                           (release_id,))  # fmt: skip
        return None if row is None else _row(row)

    def pending(self) -> list[LoggedRelease]:
        """Every log not settled yet, in nonce order (the order the node mines them)."""
        rows = self._db.query(f"SELECT {_COLUMNS} FROM access_logs WHERE state = ? "
                              "ORDER BY nonce, created", (PENDING,))  # fmt: skip
        return [_row(r) for r in rows]

    def failed(self) -> list[LoggedRelease]:
        rows = self._db.query(f"SELECT {_COLUMNS} FROM access_logs WHERE state = ? "
                              "ORDER BY created", (FAILED,))  # fmt: skip
        return [_row(r) for r in rows]

    def resigned(self, release_id: str, raw: bytes, tx_hash: bytes, nonce: int) -> None:
        """The release's transaction replaced (its nonce went to another one, so the old
        bytes can never be mined): the new bytes are what is awaited now."""
        with self._db.write() as c:
            c.execute("UPDATE access_logs SET raw = ?, tx_hash = ?, nonce = ?, sent = ?, "
                      "attempts = attempts + 1 WHERE release_id = ? AND state = ?",
                      (raw, tx_hash, nonce, time.time(), release_id, PENDING))  # fmt: skip

    def touched(self, release_id: str) -> None:
        """The same bytes were handed to the node again, now."""
        with self._db.write() as c:
            c.execute("UPDATE access_logs SET sent = ?, error = NULL WHERE release_id = ?",
                      (time.time(), release_id))  # fmt: skip

    def forget(self, release_id: str) -> None:
        """Drop a log the node refused before any share was released (none is owed)."""
        with self._db.write() as c:
            c.execute("DELETE FROM access_logs WHERE release_id = ? AND state = ?",
                      (release_id, PENDING))  # fmt: skip

    def confirmed(self, release_id: str, block_number: int) -> None:
        with self._db.write() as c:
            c.execute("UPDATE access_logs SET state = ?, settled = ?, block_number = ?, "
                      "error = NULL WHERE release_id = ?",
                      (CONFIRMED, time.time(), block_number, release_id))  # fmt: skip

    def fail(self, release_id: str, error: str) -> None:
        with self._db.write() as c:
            c.execute("UPDATE access_logs SET state = ?, settled = ?, error = ? "
                      "WHERE release_id = ?", (FAILED, time.time(), error, release_id))  # fmt: skip

    def note(self, release_id: str, error: str) -> None:
        """Why the last attempt to settle a still-pending log did not (kept for status)."""
        with self._db.write() as c:
            c.execute("UPDATE access_logs SET error = ? WHERE release_id = ?",
                      (error, release_id))  # fmt: skip

    def counts(self) -> dict[str, int]:
        rows = self._db.query("SELECT state, count(*) FROM access_logs GROUP BY state")
        out = {PENDING: 0, CONFIRMED: 0, FAILED: 0}
        out.update({str(s): int(n) for s, n in rows})
        return out
