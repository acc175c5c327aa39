"""A key custodian's HTTP service (``healthnft --home C custodian serve``).

Five routes, each thin over :class:`~healthnft.services.custodians.CustodianNode`:

- ``GET /challenge``: a one-time challenge for this custodian's domain;
- ``POST /shares``: an issuer delivers the sealed shares of a minted batch (signed; the
  custodian checks signer, batch and commitments on chain before keeping any);
- ``POST /shares/replace``: a record's shares re-split for its new owner (after a
  transfer or a guardian recovery), signed by that owner or the token's issuer; kept
  only if the chain gives the token to the owner it names;
- ``POST /release``: a grantee's presentation over a challenge and a grant id; the
  custodian checks both on chain, has the node accept its signed log of the release
  (kept in its store until mined: :mod:`healthnft.consent.accesslog`), and answers its
  share HPKE-wrapped for the grantee (``{"share": hex}``);
- ``GET /status``: shares held and the access logs' settlement (pending, confirmed,
  failed, overdue): no secret, for operators and monitoring.

Errors are problem documents, as in the main API (:mod:`.problems`). Requests are
handled one at a time: a custodian's traffic is a few requests per opened record,
and one writer keeps its transactions' nonces and its store simple.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from healthnft.api import problems
from healthnft.services.custodians import CustodianNode


class ReleaseRequest(BaseModel):
    token_id: int = Field(gt=0)
    grant_id: int = Field(ge=0)
    requester: str = Field(min_length=42, max_length=42)
    presentation: str = Field(min_length=1, max_length=20_000)


def create_custodian_app(home: Path, passphrase: str) -> FastAPI:
    """The service of the custodian whose home is ``home`` (its key unlocked once)."""
    node = CustodianNode.open(home, passphrase)
    one_at_a_time = threading.Lock()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        node.close()

    app = FastAPI(lifespan=lifespan, title="healthnft custodian", version="0.1.0",
                  docs_url=None, redoc_url=None)  # fmt: skip
    app.state.node = node
    problems.install(app)

    @app.get("/challenge")
    def challenge() -> dict[str, str]:
        with one_at_a_time:
            return node.challenge()

    @app.post("/shares")
    def shares(delivery: dict[str, Any]) -> dict[str, int]:
        with one_at_a_time:
            return {"accepted": node.accept(delivery)}

    @app.post("/shares/replace")
    def replace(replacement: dict[str, Any]) -> dict[str, int]:
        with one_at_a_time:
            return {"token_id": node.replace(replacement)}

    @app.get("/status")
    def status() -> dict[str, Any]:
        return node.status()

    @app.post("/release")
    def release(req: ReleaseRequest) -> dict[str, str]:
        with one_at_a_time:
            return {"share": node.release(req.token_id, req.grant_id, req.requester,
                                          req.presentation)}  # fmt: skip

    return app
