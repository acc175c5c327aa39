"""Why a request was made: its free-text reason, kept off chain.

Table ``request_reasons(request_id, reason)`` of ``index.sqlite``. A request for
records is on chain (who asks whom, for what purpose); the reason a person typed may
say more than anyone should read on a public ledger, so it stays in the home.
"""

from __future__ import annotations

from healthnft.store.connection import Database


class RequestReasons:
    """The off-chain reasons of this home's requests."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def note(self, request_id: int, reason: str) -> None:
        """Keep ``reason`` for ``request_id`` (replacing an earlier one)."""
        with self._db.write() as c:
            c.execute(
                "INSERT OR REPLACE INTO request_reasons (request_id, reason) VALUES (?, ?)",
                (request_id, reason),
            )

    def reason(self, request_id: int) -> str | None:
        return self._db.scalar(
            "SELECT reason FROM request_reasons WHERE request_id = ?", (request_id,)
        )
