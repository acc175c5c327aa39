"""One-time challenges for presentations: issued for a domain, consumed at most once.

A verifier hands a holder a fresh challenge; the holder's presentation carries it as
its ``nonce`` (:mod:`healthnft.credentials.presentation`), and the verifier consumes it
when the presentation holds, so a replayed presentation is refused. Backed by memory or
by an SQLite file shared by every process of a home.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from healthnft.errors import CredentialRejected

__all__ = ["ChallengeStore"]


class ChallengeStore:
    """One-time presentation challenges: issued for a domain, consumed at most once.

    In memory by default; with ``path``, in an SQLite table
    ``challenges(challenge TEXT PRIMARY KEY, domain TEXT, expires REAL, used INTEGER)``
    shared by every process that opens the same file. :meth:`consume` is a single
    ``UPDATE … WHERE used = 0`` whose row count decides, so of two concurrent consumers
    (threads or processes) exactly one succeeds.
    """

    _PURGE_EVERY = 256

    def __init__(self, path: Path | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._memory: dict[str, tuple[str, float, bool]] = {}
        self._issued = 0
        self._db: sqlite3.Connection | None = None
        if path is not None:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                str(path), timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS challenges (challenge TEXT PRIMARY KEY, "
                "domain TEXT NOT NULL, expires REAL NOT NULL, used INTEGER NOT NULL DEFAULT 0)"
            )

    def issue(self, domain: str, ttl_s: float = 300) -> str:
        """A fresh 128-bit url-safe challenge for ``domain``, valid ``ttl_s`` seconds."""
        if not isinstance(domain, str) or not domain:
            raise ValueError("domain must be a non-empty string")
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        challenge = secrets.token_urlsafe(16)
        now = self._clock()
        with self._lock:
            self._issued += 1
            purge = self._issued % self._PURGE_EVERY == 0
            if self._db is not None:
                if purge:
                    self._db.execute("DELETE FROM challenges WHERE expires < ?", (now,))
                self._db.execute(
                    "INSERT INTO challenges (challenge, domain, expires, used) VALUES (?, ?, ?, 0)",
                    (challenge, domain, now + ttl_s),
                )
            else:
                if purge:
                    self._memory = {c: e for c, e in self._memory.items() if e[1] >= now}
                self._memory[challenge] = (domain, now + ttl_s, False)
        return challenge

    def consume(self, challenge: str, domain: str) -> None:
        """Use ``challenge`` once; refuse it if unknown, used, expired or for another domain."""
        refused = CredentialRejected("unknown or replayed challenge")
        if not isinstance(challenge, str) or not isinstance(domain, str):
            raise refused
        now = self._clock()
        with self._lock:
            if self._db is not None:
                cursor = self._db.execute(
                    "UPDATE challenges SET used = 1 "
                    "WHERE challenge = ? AND domain = ? AND used = 0 AND expires > ?",
                    (challenge, domain, now),
                )
                if cursor.rowcount != 1:
                    raise refused
                return
            entry = self._memory.get(challenge)
            if entry is None or entry[0] != domain or entry[2] or entry[1] <= now:
                raise refused
            self._memory[challenge] = (entry[0], entry[1], True)

    def close(self) -> None:
        """Close the SQLite connection (a no-op in memory)."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> ChallengeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
