"""State-changing calls remembered by their idempotency key, so a retry is not a second call.

Table ``operations`` of ``index.sqlite`` (schema version 3). A caller that gives a
request id (``--request-id`` in the CLI, ``Idempotency-Key`` on the API) has its
signed transaction kept here *before* it is sent, and the call's result once the
chain has it. A retry with the same key then re-sends the very same bytes (a
transaction cannot be mined twice) or answers the kept result; the same key with
different arguments is refused. Without this, a ``share`` killed after its grant was
committed created a second live grant when retried, and revoking the one the patient
saw left the other live.
"""

from __future__ import annotations

import json
import time
from typing import Any, NamedTuple

from healthnft.store.connection import Database


class Operation(NamedTuple):
    action: str
    fingerprint: bytes
    raw_tx: bytes
    tx_hash: bytes
    nonce: int
    result: dict[str, Any] | None


class Operations:
    """The remembered operations of one home."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, key: str) -> Operation | None:
        row = self._db.one(
            "SELECT action, fingerprint, raw_tx, tx_hash, nonce, result FROM operations "
            "WHERE key = ?",
            (key,),
        )
        if row is None:
            return None
        return Operation(row[0], bytes(row[1]), bytes(row[2]), bytes(row[3]), int(row[4]),
                         json.loads(row[5]) if row[5] is not None else None)  # fmt: skip

    def sent(self, key: str, action: str, fingerprint: bytes, raw_tx: bytes, tx_hash: bytes,
             nonce: int) -> None:  # fmt: skip
        """Keep the signed transaction before it is broadcast (replacing a dropped one)."""
        with self._db.write() as c:
            c.execute(
                "INSERT INTO operations (key, action, fingerprint, raw_tx, tx_hash, nonce, "
                "created) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                "raw_tx = excluded.raw_tx, tx_hash = excluded.tx_hash, nonce = excluded.nonce",
                (key, action, fingerprint, raw_tx, tx_hash, nonce, time.time()),
            )

    def done(self, key: str, result: dict[str, Any]) -> None:
        with self._db.write() as c:
            c.execute("UPDATE operations SET result = ? WHERE key = ?",
                      (json.dumps(result, sort_keys=True), key))  # fmt: skip
