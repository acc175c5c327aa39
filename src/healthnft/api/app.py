"""The HTTP service: a JSON API over one home, and the web wallet that uses it.

:func:`create_app` assembles the pieces: the service handle and sessions
(:mod:`.deps`), errors as problem documents (:mod:`.problems`), one router per
resource (:mod:`.routes`), security headers, and the single-page wallet under
``/``. Routes are thin: parse, call one :mod:`healthnft.services` function,
answer its result.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from healthnft.api import problems
from healthnft.api.deps import Service
from healthnft.api.ratelimit import WindowLimiter
from healthnft.api.routes import (
    auth,
    consent,
    credentials,
    device,
    minting,
    node,
    own,
    records,
    relay,
)
from healthnft.api.routes import drugs as drug_routes
from healthnft.api.sessions import SessionStore
from healthnft.api.site import parse_origin
from healthnft.errors import InvalidInput
from healthnft.services import credentials as credentials_service

STATIC = Path(__file__).parent / "static"
#: Only this origin's own files run; /docs loads Swagger UI from its CDN, so it is exempt.
_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def create_app(home: Path, *, origin: str = "http://127.0.0.1:8000",
               passphrase: str | None = None, session_ttl_s: float = 1800,
               clock: Callable[[], float] = time.time,
               challenges_per_minute: int = 30, exclusive: bool = True) -> FastAPI:  # fmt: skip
    """The service over ``home``, reached at ``origin`` (the address people open: sign-in
    messages name it and requests for another host are refused, see :mod:`.site`);
    ``passphrase`` unlocks its keystores (demo: none needed); a client may ask for
    ``challenges_per_minute`` sign-in challenges a minute. ``exclusive``: hold the home's
    writer lock while serving (the default; a second, read-only view passes False)."""
    site = parse_origin(origin)
    service = Service(home, passphrase, exclusive)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        service.close()

    # Swagger UI and ReDoc served from the package, not a CDN (this runs offline).
    app = FastAPIOffline(
        lifespan=lifespan,
        title="healthnft",
        version="0.1.0",
        description="Patient-owned health records as NFTs: the health wallet's API. "
        "Sign in with /api/auth/challenge and /api/auth/verify (EIP-4361). Errors are "
        "RFC 9457 problem documents (application/problem+json) with a stable `code`.",
    )
    app.state.service = service
    app.state.sessions = SessionStore(ttl_s=session_ttl_s, clock=clock,
                                      nonces=credentials_service.challenge_book(clock))
    app.state.clock = clock
    app.state.site = site
    app.state.challenge_limiter = WindowLimiter(challenges_per_minute, 60.0, clock=clock)
    problems.install(app)

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[..., Any]) -> Response:
        if request.url.hostname != site.hostname:
            # A request naming another host never reaches a route (see .site).
            response: Response = problems.refusal(
                InvalidInput(f"this service answers for {site.domain} only"), request.url.path)
        else:
            response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if not request.url.path.startswith(("/docs", "/redoc", "/static-offline-docs")):
            response.headers.setdefault("Content-Security-Policy", _CSP)
        if request.url.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    # device before records: /api/records/{id}/sealed is its own route
    for module in (auth, device, records, consent, minting, credentials, node, own, relay,
                   drug_routes):
        app.include_router(module.router)
    if service.net.is_demo:  # demo keys for the page exist in a demo home only
        app.include_router(device.demo_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/pharmacy.html", include_in_schema=False)
    def pharmacy() -> FileResponse:
        """The pharmacist's phone page: verify and dispense medicine packs."""
        return FileResponse(STATIC / "pharmacy.html", headers={"Cache-Control": "no-cache"})

    return app
