"""Sign-in nonces and sessions, kept in the server's memory only.

Nothing here is a password: a session is created only from a fresh EIP-4361
message signed by the participant's own key, and lives a fixed time (default
30 minutes). Tokens are 256-bit random strings; the store keeps their SHA-256,
so a memory dump of the map does not hand out live sessions. A restart signs
everybody out, which is the safe default for a health wallet.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from healthnft.errors import CredentialRejected, RateLimited


@dataclass(frozen=True)
class Session:
    address: str
    kind: str
    name: str
    expires: float


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    """One-time sign-in nonces and expiring sessions (thread-safe)."""

    def __init__(self, ttl_s: float = 1800, nonce_ttl_s: float = 300,
                 clock: Callable[[], float] = time.time, *, nonces: Any,
                 max_nonces: int = 1000) -> None:  # fmt: skip
        """``nonces``: the one-time challenge store sign-in nonces live in (in memory);
        at most ``max_nonces`` are outstanding at once (anyone may ask for one)."""
        self.ttl_s = ttl_s
        self.max_nonces = max_nonces
        self.nonce_ttl_s = nonce_ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._nonces = nonces
        self._sessions: dict[str, Session] = {}

    def new_nonce(self, address: str) -> tuple[str, float]:
        """A fresh nonce for ``address`` and when it stops being accepted."""
        expires = self._clock() + self.nonce_ttl_s
        with self._lock:
            self._purge()
            if self._nonces.live() >= self.max_nonces:
                raise RateLimited("too many sign-ins are in progress; try again in a minute",
                                  retry_after_s=60)  # fmt: skip
        return self._nonces.issue(address.lower(), self.nonce_ttl_s), expires

    def take_nonce(self, nonce: str, address: str) -> bool:
        """Consume ``nonce`` if it was issued for ``address`` and is live (once only)."""
        try:
            self._nonces.consume(nonce, address.lower())
        except CredentialRejected:
            return False
        return True

    def open(self, address: str, kind: str, name: str) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        session = Session(address, kind, name, self._clock() + self.ttl_s)
        with self._lock:
            self._sessions[_digest(token)] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        """The live session for ``token``, or None (missing, unknown or expired)."""
        if not token:
            return None
        key = _digest(token)
        with self._lock:
            session = self._sessions.get(key)
            if session is not None and session.expires <= self._clock():
                del self._sessions[key]
                session = None
        return session

    def close(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._sessions.pop(_digest(token), None)

    def _purge(self) -> None:
        now = self._clock()
        for key in [k for k, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[key]
