"""A custodian on another host, reached over HTTP: the client side of ``custodian serve``.

:class:`RemoteCustodian` has the interface a grantee uses for an in-process
:class:`~healthnft.consent.custodian.CustodianService` (``address``, ``domain``,
``challenge()``, ``release()``), plus ``deliver()`` for an issuer's mint-time shares
and ``replace()`` for a record's shares re-split after a transfer or a recovery.
Every call is bounded in time (connect and read timeouts); a custodian that does not
answer is :class:`~healthnft.errors.Unavailable` naming its URL, and a refusal it
answers (problem+json) is raised as the same class of the error tree, with its detail.
A custodian that answers for another address than the chain registered is refused.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import requests

from healthnft.errors import (
    AccessDenied,
    Conflict,
    CredentialRejected,
    HealthNFTError,
    InvalidInput,
    NotFound,
    Tampered,
    Unavailable,
)

_BY_CODE: dict[str, type[HealthNFTError]] = {
    cls.code: cls
    for cls in (InvalidInput, NotFound, CredentialRejected, AccessDenied, Tampered, Conflict,
                Unavailable)
}  # fmt: skip


_SESSIONS: dict[str, requests.Session] = {}
_SESSIONS_LOCK = threading.Lock()


def _session(url: str) -> requests.Session:
    """The process's one keep-alive session to the custodian at ``url``.

    A grantee's home makes its custodian objects anew for every open; a session each
    time was a new TCP connection per challenge and per release (five per open at k=2
    of 3), each a handshake and a new connection for the custodian's server to accept.
    ``requests`` sessions are shared across the grantee's threads (urllib3's pool is
    thread-safe; the pool holds as many connections as threads ask at once)."""
    base = url.rstrip("/")
    with _SESSIONS_LOCK:
        found = _SESSIONS.get(base)
        if found is None:
            found = _SESSIONS[base] = requests.Session()
        return found


@dataclass
class RemoteCustodian:
    """One custodian service at ``url``, registered on chain as ``address``."""

    address: str
    url: str
    #: (connect, read) seconds: a custodian down costs at most the first.
    timeout_s: tuple[float, float] = (2.0, 20.0)
    _session: requests.Session = field(init=False, repr=False)
    #: A grantee may ask it in a thread beside the others (each call is its own request).
    concurrent = True

    def __post_init__(self) -> None:
        self._session = _session(self.url)

    @property
    def domain(self) -> str:
        return f"healthnft-custodian:{self.address.lower()}"

    def challenge(self) -> str:
        doc = self._call("GET", "/challenge")
        if str(doc.get("domain", "")).lower() != self.domain:
            raise Tampered(f"the custodian at {self.url} answers for another custodian")
        return str(doc["challenge"])

    def release(self, token_id: int, grant_id: int, requester: str, presentation: str) -> bytes:
        doc = self._call("POST", "/release", {"token_id": token_id, "grant_id": grant_id,
                                              "requester": requester,
                                              "presentation": presentation})  # fmt: skip
        try:
            return bytes.fromhex(str(doc["share"]))
        except (KeyError, ValueError):
            raise Tampered(f"the custodian at {self.url} answered something not a share") from None

    def deliver(self, delivery: dict[str, Any]) -> int:
        """Push a signed share delivery; how many shares the custodian now holds of it."""
        return int(self._call("POST", "/shares", delivery).get("accepted", 0))

    def replace(self, replacement: dict[str, Any]) -> None:
        """Push a signed share replacement (a record re-split for its new owner)."""
        self._call("POST", "/shares/replace", replacement)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            resp = self._session.request(method, self.url.rstrip("/") + path, json=body,
                                         timeout=self.timeout_s)  # fmt: skip
        except requests.RequestException:
            raise Unavailable(f"the custodian at {self.url} did not answer") from None
        try:
            doc = resp.json()
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise Unavailable(f"the custodian at {self.url} answered HTTP {resp.status_code} "
                              "without a JSON document")  # fmt: skip
        if resp.status_code >= 400:
            cls = _BY_CODE.get(str(doc.get("code")), Unavailable)
            raise cls(f"custodian at {self.url}: {doc.get('detail', resp.status_code)}")
        return doc
