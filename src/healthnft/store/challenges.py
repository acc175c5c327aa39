"""One-time presentation challenges, kept in the home's index.

A verifier issues a random challenge for its domain; the holder signs a presentation
over it; the verifier consumes it. A challenge is good once, for one domain, until it
expires: a replayed presentation is refused. Table ``challenges`` of ``index.sqlite``
(schema version 2), shared by every process that opens the home: :meth:`Challenges.consume`
is one ``UPDATE … WHERE used = 0`` whose row count decides, so of two concurrent
consumers (threads or processes) exactly one succeeds.

Same public surface as ``healthnft.credentials.vc.ChallengeStore`` (which kept them in
``challenges.sqlite``), so it can replace it as is.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path

from healthnft.errors import CredentialRejected
from healthnft.store.connection import MEMORY, Database
from healthnft.store.migrations import open_database
from healthnft.store.schema import INDEX


class Challenges:
    """Issue and consume one-time challenges.

    ``where``: an open index :class:`Database` (shared, not closed here), the path of a
    home's ``index.sqlite`` (opened and migrated, closed by :meth:`close`), or None for
    a private in-memory store.
    """

    _PURGE_EVERY = 256

    def __init__(self, where: Database | Path | str | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self._clock = clock
        self._issued = 0
        self._owned = not isinstance(where, Database)
        if isinstance(where, Database):
            self._db: Database | None = where
        else:
            self._db = open_database(MEMORY if where is None else Path(where), INDEX)

    def issue(self, domain: str, ttl_s: float = 300) -> str:
        """A fresh 128-bit challenge (hex: fits an EIP-4361 nonce too) for ``domain``."""
        if not isinstance(domain, str) or not domain:
            raise ValueError("domain must be a non-empty string")
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        challenge = secrets.token_hex(16)
        now = self._clock()
        with self._open().write() as c:
            self._issued += 1
            if self._issued % self._PURGE_EVERY == 0:
                c.execute("DELETE FROM challenges WHERE expires < ?", (now,))
            c.execute(
                "INSERT INTO challenges (challenge, domain, expires, used) VALUES (?, ?, ?, 0)",
                (challenge, domain, now + ttl_s),
            )
        return challenge

    def consume(self, challenge: str, domain: str) -> None:
        """Use ``challenge`` once; refuse it if unknown, used, expired or for another domain."""
        refused = CredentialRejected("unknown or replayed challenge")
        if not isinstance(challenge, str) or not isinstance(domain, str):
            raise refused
        now = self._clock()
        with self._open().write() as c:
            cursor = c.execute(
                "UPDATE challenges SET used = 1 "
                "WHERE challenge = ? AND domain = ? AND used = 0 AND expires > ?",
                (challenge, domain, now),
            )
            if cursor.rowcount != 1:
                raise refused

    def live(self) -> int:
        """How many challenges are issued, unused and unexpired (what a cap counts)."""
        rows = self._open().query(
            "SELECT count(*) FROM challenges WHERE used = 0 AND expires > ?", (self._clock(),)
        )
        return int(rows[0][0])

    def close(self) -> None:
        """Close the database if this store opened it."""
        if self._db is not None and self._owned:
            self._db.close()
        self._db = None

    def __enter__(self) -> Challenges:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> Database:
        if self._db is None:
            raise ValueError("the challenge store is closed")
        return self._db
