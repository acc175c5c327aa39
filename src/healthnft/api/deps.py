"""What every route shares: the opened home (the service handle) and the caller's session.

One process serves one home (the same ledger, vault and catalogue the CLI
uses). Everything that touches the home runs under one lock: the embedded
chain is a single writer, and a pilot's load is far below what one core does.
The service is the home's only writer while it serves, so it memoizes contract
views until the next transaction and keeps per-wallet answers until then.

The service is the hosted wallet of the participants whose keystores live in
its home: it unlocks a keystore with the home's passphrase when its owner acts,
and forgets every key when it stops. A patient whose key lives on their own device
signs in all the same and signs their transactions there; the node prepares and
relays them (:mod:`.routes.relay`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi import Path as PathParam
from pydantic import Field

from healthnft.api.sessions import Session, SessionStore
from healthnft.api.uploads import sweep
from healthnft.errors import AccessDenied, CredentialRejected
from healthnft.services.access import MAX_ID

COOKIE = "healthnft_session"

#: An id in a path (token, grant, request, policy): 0 … MAX_ID, else a 400 naming the
#: field (a negative or huge id used to reach the ledger or the index and fail as a 500).
PathId = Annotated[int, PathParam(ge=0, le=MAX_ID)]
#: The same, in a body.
Id = Annotated[int, Field(ge=0, le=MAX_ID)]
#: A token id in a path: any integer. One no record can have (0, negative, 2^63 and up)
#: is answered by the services exactly like one never minted (404 ``not_found``), as
#: every door answers a record the caller may not open.
TokenId = int


class Service:
    """The opened home, its lock, and what the service remembers between requests."""

    def __init__(self, home: Path, passphrase: str | None, exclusive: bool = True) -> None:
        from healthnft.services.node import open_network, staging_folder, writer_lock

        # The home's only writer while it serves (what makes memoizing views safe): a
        # CLI command that would change the home meanwhile is refused, naming us.
        self.writer = writer_lock(home, "healthnft serve", wait_s=0).acquire() \
            if exclusive else None
        try:
            self.net = open_network(home)
        except BaseException:
            if self.writer is not None:
                self.writer.release()
            raise
        self.net.remember_keys = True
        # The service never acts as a demo patient: the page holds that key
        # (GET /api/demo/patients/{address}/keystore hands it over), as a device does.
        self.net.act_as_demo_patients = False
        # Uploads are staged inside the home; a killed server's leftovers go now (only
        # by the home's writer: a second, read-only view must not sweep live uploads).
        self.uploads = staging_folder(home)
        if exclusive:
            sweep(self.uploads)
        # On its own embedded chain this process is the only writer while it serves:
        # views can be memoized. On a shared node other members write too (a grant
        # revoked elsewhere must stop counting at once): no memo there.
        self.reads = (self.net.ledger.enable_read_cache(ttl_s=300)
                      if self.net.config.get("backend", "embedded") == "embedded" else None)
        self.passphrase = passphrase
        self.lock = threading.RLock()
        self.summaries: dict[int, tuple[str, str | None]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.lists: dict[str, tuple[int, bytes]] = {}
        self.checks: dict[tuple[int, int], tuple[float, Any]] = {}

    def read_version(self) -> int:
        """Changes whenever the chain may have: the memo's write count on the embedded
        chain, else the node's head block (other members' transactions move it)."""
        if self.reads is not None:
            return int(self.reads.version)
        return int(self.net.ledger.w3.eth.block_number)

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(net, *args, **kwargs)`` under the home's lock (one service call)."""
        with self.lock:
            return fn(self.net, *args, **kwargs)

    def close(self) -> None:
        with self.lock:
            self.net.forget_keys()
            self.net.close()
            if self.writer is not None:
                self.writer.release()


def service(request: Request) -> Service:
    return request.app.state.service


def bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


async def session(request: Request) -> Session:
    """The caller's live session (cookie or bearer token), else 401."""
    store: SessionStore = request.app.state.sessions
    found = store.get(bearer(request) or request.cookies.get(COOKIE))
    if found is None:
        raise CredentialRejected("sign in first (no session, or it expired)")
    return found


Me = Annotated[Session, Depends(session)]
Svc = Annotated[Service, Depends(service)]


def require_kind(me: Session, *kinds: str) -> None:
    """Refuse (403) a caller whose kind of participant may not do this."""
    if me.kind not in kinds:
        words = {"patient": "a patient's wallet", "hospital": "a hospital"}
        raise AccessDenied(f"only {' or '.join(words.get(k, k) for k in kinds)} can do this")
