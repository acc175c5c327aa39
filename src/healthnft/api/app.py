"""The HTTP service: a JSON API over one home, and the web wallet that uses it.

One process serves one home (the same ledger, vault and catalogue the CLI
uses). Everything that touches the home runs under one lock: the embedded
chain is a single writer, and a pilot's load is far below what one core does.

Who may do what is decided by the session (a fresh EIP-4361 message signed by
the participant's key), then by the same :mod:`healthnft.operations` the CLI
calls, which ask the chain: owners see their records, grantees only what a live
grant covers (through the key custodians). A record the caller may not see is
answered exactly like a record that does not exist — ``404 {"error": "no record
you may open has this id"}`` — so errors leak neither content nor existence.

The service is the hosted wallet of the participants whose keystores live in
its home: it unlocks a keystore with the home's passphrase when its owner signs
in, and forgets the key when the session ends.
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from healthnft import operations as ops
from healthnft.api import describe, siwe
from healthnft.api.sessions import Session, SessionStore
from healthnft.errors import (
    AccessDenied,
    CredentialRejected,
    HealthNFTError,
    LedgerError,
    Tampered,
    UnknownParticipant,
)

COOKIE = "healthnft_session"
STATIC = Path(__file__).parent / "static"
NOT_VISIBLE = "no record you may open has this id"
_MAX_UPLOAD = 64 * 2**20
_UPLOAD_SUFFIXES = frozenset({".json", ".txt", ".text", ".pdf", ".dcm"})
#: Only this origin's own files run; /docs loads Swagger UI from its CDN, so it is exempt.
_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


class Home:
    """The opened home, its lock, and what the service remembers between requests."""

    def __init__(self, home: Path, passphrase: str | None) -> None:
        from healthnft.network import Network

        self.net = Network.open(home)
        self.net.remember_keys = True
        # This process is the home's only writer while it serves: views can be memoized.
        self.reads = self.net.ledger.enable_read_cache(ttl_s=300)
        self.passphrase = passphrase
        self.lock = threading.RLock()
        self.summaries: dict[tuple[int, bytes], tuple[str, str | None]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.lists: dict[str, tuple[int, bytes]] = {}
        self.checks: dict[tuple[int, int], tuple[float, Any]] = {}

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return fn(self.net, *args, **kwargs)


# -- request bodies (they document the API at /docs) --------------------------


class SignIn(BaseModel):
    message: str = Field(description="The EIP-4361 message from /api/auth/challenge.")
    signature: str = Field(description="The wallet's personal_sign signature of it (0x…).")


class ShareBody(BaseModel):
    to: str = Field(description="The grantee's address (a registered participant).")
    purpose: str = Field(description="treatment | research | insurance | public-health")
    days: int = Field(30, ge=1, le=3650)
    token_ids: list[int] | None = None
    category: str | None = None
    deidentified_only: bool = False


class TransferBody(BaseModel):
    to: str


class BurnBody(BaseModel):
    confirm: bool = Field(description="Must be true: burning is irreversible.")


class RequestBody(BaseModel):
    owner: str = Field(description="The patient's wallet address.")
    purpose: str
    days: int = Field(30, ge=1, le=3650)
    token_id: int | None = None
    category: str | None = None
    reason: str = Field("", max_length=500, description="Kept off chain, in this home.")
    reward_wei: int = Field(0, ge=0)


class ApproveBody(BaseModel):
    deidentified_only: bool = False


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


async def _session(request: Request) -> Session:
    """The caller's live session (cookie or bearer token), else 401."""
    store: SessionStore = request.app.state.sessions
    found = store.get(_bearer(request) or request.cookies.get(COOKIE))
    if found is None:
        raise HTTPException(401, "sign in first (no session, or it expired)")
    return found


Me = Annotated[Session, Depends(_session)]


# -- the application ----------------------------------------------------------


def create_app(home: Path, *, passphrase: str | None = None, session_ttl_s: float = 1800,
               clock: Callable[[], float] = time.time) -> FastAPI:  # fmt: skip
    """The service over ``home``; ``passphrase`` unlocks its keystores (demo: none needed)."""
    state = Home(home, passphrase)
    sessions = SessionStore(ttl_s=session_ttl_s, clock=clock)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        with state.lock:
            state.net.forget_keys()
            state.net.close()

    # Swagger UI and ReDoc served from the package, not a CDN (this runs offline).
    app = FastAPIOffline(
        lifespan=lifespan,
        title="healthnft",
        version="0.1.0",
        description="Patient-owned health records as NFTs: the health wallet's API. "
        "Sign in with /api/auth/challenge and /api/auth/verify (EIP-4361).",
    )
    app.state.home = state
    app.state.sessions = sessions

    @app.exception_handler(HealthNFTError)
    async def _known(_req: Request, exc: HealthNFTError) -> JSONResponse:
        status = 400
        if isinstance(exc, CredentialRejected):
            status = 401
        elif isinstance(exc, (AccessDenied, UnknownParticipant)):
            status = 403
        elif isinstance(exc, (Tampered, LedgerError)):
            status = 409
        return JSONResponse({"error": str(exc)}, status_code=status)

    @app.exception_handler(HTTPException)
    async def _http(_req: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))  # fmt: skip

    @app.exception_handler(Exception)
    async def _internal(_req: Request, exc: Exception) -> JSONResponse:
        # Never the message: it could quote input. The type is enough to report a bug.
        return JSONResponse({"error": f"internal error ({type(exc).__name__})"}, status_code=500)

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[..., Any]) -> Response:
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if not request.url.path.startswith(("/docs", "/redoc", "/static-offline-docs")):
            response.headers.setdefault("Content-Security-Policy", _CSP)
        if request.url.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    def patient_only(me: Session) -> None:
        if me.kind != "patient":
            raise HTTPException(403, "only a patient's wallet can do this")

    # -- sign-in ------------------------------------------------------------

    @app.get("/api/auth/challenge", tags=["sign-in"])
    def challenge(address: str, request: Request) -> dict[str, Any]:
        """An EIP-4361 message for ``address`` to sign; its nonce is good once, for 5 minutes."""
        from web3 import Web3

        if not Web3.is_address(address):
            raise HTTPException(400, "the address given is not a 0x… Ethereum address")
        nonce, expires = sessions.new_nonce(address)
        issued = datetime.fromtimestamp(clock(), UTC)
        message = siwe.SiweMessage(
            domain=request.url.netloc, address=Web3.to_checksum_address(address),
            statement=siwe.STATEMENT, uri=str(request.base_url).rstrip("/"),
            chain_id=state.net.ledger.chain_id, nonce=nonce, issued_at=issued,
            expiration_time=issued + timedelta(seconds=expires - clock()),
        )  # fmt: skip
        return {"message": message.text(), "nonce": nonce}

    @app.post("/api/auth/verify", tags=["sign-in"])
    def verify_sign_in(body: SignIn, request: Request) -> JSONResponse:
        """Check the signed message; on success a session cookie (and a bearer token)."""
        try:
            msg = siwe.parse(body.message)
            signer = siwe.recover(body.message, body.signature)
        except siwe.SiweError as exc:
            raise HTTPException(401, str(exc)) from None
        if signer.lower() != msg.address.lower():
            raise HTTPException(401, "the signature was not made by the address in the message")
        if msg.domain != request.url.netloc or msg.uri != str(request.base_url).rstrip("/"):
            raise HTTPException(401, "the message was made for another site")
        if msg.chain_id != state.net.ledger.chain_id:
            raise HTTPException(401, "the message names another chain")
        if msg.expiration_time.timestamp() <= clock():
            raise HTTPException(401, "the sign-in message expired; ask for a new one")
        if not sessions.take_nonce(msg.nonce, msg.address):
            raise HTTPException(401, "this sign-in message was already used or never issued")
        with state.lock:
            try:
                who = state.net.participant(msg.address)
            except UnknownParticipant:
                raise HTTPException(401, "this address is not a participant of the network") \
                    from None
            if not state.net.has_key(who.address):
                raise HTTPException(401, "this service holds no wallet for this address")
        token, sess = sessions.open(who.address, who.kind, who.label)
        response = JSONResponse({"address": who.address, "kind": who.kind, "name": who.label,
                                 "expires": int(sess.expires), "token": token})  # fmt: skip
        response.set_cookie(COOKIE, token, max_age=int(session_ttl_s), httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")  # fmt: skip
        return response

    @app.post("/api/auth/logout", tags=["sign-in"])
    def logout(request: Request, me: Me) -> JSONResponse:
        sessions.close(request.cookies.get(COOKIE))
        sessions.close(_bearer(request))
        response = JSONResponse({"signed_out": True})
        response.delete_cookie(COOKIE)
        return response

    @app.get("/api/me", tags=["sign-in"])
    def whoami(me: Me) -> dict[str, Any]:
        return {"address": me.address, "kind": me.kind, "name": me.name,
                "expires": int(me.expires)}  # fmt: skip

    @app.get("/api/demo/wallets", tags=["sign-in"])
    def demo_wallets() -> list[dict[str, Any]]:
        """Demo homes only: the demo's keystores (locked with the documented passphrase)."""
        import json

        from healthnft.network import DEMO_PASSPHRASE

        if not state.net.is_demo:
            raise HTTPException(404, "not a demo network")
        with state.lock:
            people = [p for p in state.net.catalog.participants() if p.kind != "custodian"]
        out = []
        for p in people:
            path = state.net.home / "keystore" / f"{p.address}.json"
            if path.exists():
                out.append({"address": p.address, "kind": p.kind, "name": p.label,
                            "passphrase": DEMO_PASSPHRASE,
                            "keystore": json.loads(path.read_text())})  # fmt: skip
        return out

    # -- the network --------------------------------------------------------

    @app.get("/api/participants", tags=["network"])
    def participants(me: Me) -> list[dict[str, Any]]:
        """Institutions a record can be shared with or transferred to (not other patients)."""
        with state.lock:
            rows = state.net.catalog.participants()
        return [{"address": p.address, "kind": p.kind, "name": p.label}
                for p in rows if p.kind not in ("patient", "custodian")
                and p.address.lower() != me.address.lower()]  # fmt: skip

    # -- records ------------------------------------------------------------

    def _summaries(owner: str, rows: list[dict[str, Any]]) -> None:
        """Fill each row's plain-language summary, decrypting only what is not cached."""
        net = state.net
        wallet = net.wallet()
        catalogued = {r.token_id: r for r in net.catalog.records_of(owner)}  # one query
        ident = None
        for row in rows:
            rec = catalogued.get(row["token_id"])
            if rec is None:
                continue
            key = (rec.token_id, rec.blob_digest)
            if key not in state.summaries:
                if ident is None:
                    ident = net.identity(owner, state.passphrase)
                try:
                    plain = wallet._decrypt(rec, ident)
                    resource = orjson.loads(plain.canonical)
                    state.summaries[key] = (describe.summary(resource, rec.category),
                                            describe.record_date(resource))  # fmt: skip
                except HealthNFTError:
                    state.summaries[key] = ("This record failed its integrity check", None)
            row["summary"], row["date"] = state.summaries[key]
            row["date"] = row["date"] or rec.effective_date

    def _list_body(address: str) -> bytes:
        with state.lock:
            version = state.reads.version
            cached = state.lists.get(address)
            if cached is not None and cached[0] == version:
                return cached[1]
            rows = ops.list_records(state.net, address)
            _summaries(address, rows)
            for row in rows:
                row["category_title"] = describe.category_title(row["category"])
            rows.sort(key=lambda r: r.get("date") or "", reverse=True)
            body = orjson.dumps(rows)
            state.lists[address] = (version, body)
            return body

    @app.get("/api/records", tags=["records"])
    async def records(me: Me) -> Response:
        """The caller's records (confirmed on chain), newest first, with a summary each.

        The answer is kept per wallet until the next transaction on the chain (every
        change of ownership, mint or burn is one), so a cached list is never stale and
        a busy wallet page is served without waiting for the chain.
        """
        cached = state.lists.get(me.address)
        if cached is not None and cached[0] == state.reads.version:
            body = cached[1]
        else:
            body = await run_in_threadpool(_list_body, me.address)
        return Response(body, media_type="application/json")

    def _badge(verification: Any) -> str:
        reason = verification.reason
        if verification.valid:
            return "authentic"
        for word in ("burned", "superseded", "revoked"):
            if reason.startswith(word) or word in reason.split(":")[0]:
                return word
        return "tampered"

    @app.get("/api/records/{token_id}", tags=["records"])
    def open_record(token_id: int, me: Me) -> dict[str, Any]:
        """Decrypt a record for its owner, or for a grantee through the custodians."""
        with state.lock:
            owner = state.net.ledger.owner_of(token_id)
            mine = owner is not None and owner.lower() == me.address.lower()
            if mine:
                check = _owner_check(token_id)
                if _badge(check) == "tampered":
                    raise Tampered(f"token {token_id}: {check.reason}")
                rec = _decrypt_for_owner(token_id, me.address)
            else:
                try:
                    rec = ops.open_record(state.net, me.address, token_id, state.passphrase)
                except (AccessDenied, UnknownParticipant):
                    raise HTTPException(404, NOT_VISIBLE) from None
                check = state.net.wallet().verify(token_id)
        category = rec.meta.get("category", "other")
        if rec.is_study:
            return _study_view(token_id, mine, rec, check)
        return {
            "token_id": token_id,
            "owned": mine,
            "category": category,
            "category_title": describe.category_title(category),
            "resource_type": rec.meta.get("resource_type"),
            "date": describe.record_date(rec.resource) or rec.meta.get("effective_date"),
            "summary": describe.summary(rec.resource, category),
            "measurements": describe.measurements(rec.resource),
            "attachments": describe.attachments(rec.resource),
            "resource": rec.resource,
            "verification": {"valid": check.valid, "reason": check.reason,
                             "badge": _badge(check)},  # fmt: skip
        }

    def _study_view(token_id: int, mine: bool, rec: Any, check: Any) -> dict[str, Any]:
        """An imaging study: its characterization, its series and the URL of its picture."""
        from healthnft.wallet.files import study_listing

        headline, series = study_listing(rec.meta)
        date = rec.meta.get("effective_date")
        return {
            "token_id": token_id, "owned": mine, "category": rec.meta.get("category", "imaging"),
            "category_title": describe.category_title("imaging"),
            "resource_type": rec.meta.get("resource_type"), "date": date,
            "summary": " — ".join(p for p in ("Imaging study", headline.split(" · ")[0],
                                              describe.human_date(date)) if p),
            "study": {"headline": headline,
                      "series": [dict(zip(("number", "modality", "description", "instances"),
                                          row, strict=True)) for row in series],
                      "image": f"/api/records/{token_id}/image.png"},
            "measurements": [], "attachments": [], "resource": rec.resource,
            "verification": {"valid": check.valid, "reason": check.reason,
                             "badge": _badge(check)},
        }  # fmt: skip

    @app.get("/api/records/{token_id}/image.png", tags=["records"])
    def study_image(token_id: int, me: Me) -> Response:
        """The first image of an imaging study you own or were granted, as PNG (CT windowed).

        A grantee's image is read through the custodians, like any shared record: each
        view is a logged key release.
        """
        import shutil

        with state.lock:
            row = state.net.catalog.record(token_id)
            if row is None or row.category != "imaging":
                raise HTTPException(404, NOT_VISIBLE)
            folder = Path(tempfile.mkdtemp(prefix=".web-image-", dir=state.net.home))
            try:
                out = folder / "image.png"
                try:
                    ops.write_record_file(state.net, me.address, token_id, out, state.passphrase)
                except (AccessDenied, UnknownParticipant):
                    raise HTTPException(404, NOT_VISIBLE) from None
                data = out.read_bytes()
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})

    def _owner_check(token_id: int) -> Any:
        """The full verification (content and attestation), kept until the next write."""
        key = (token_id, state.reads.version)
        found = state.checks.get(key)
        if found is None or found[0] < time.monotonic():
            check = ops.verify_record(state.net, token_id, state.passphrase)
            # An attestation can expire with time: a minute of reuse at most.
            found = (time.monotonic() + 60, check)
            if len(state.checks) > 100_000:
                state.checks.clear()
            state.checks[key] = found
        return found[1]

    def _decrypt_for_owner(token_id: int, owner: str) -> Any:
        """Decrypt (AES-GCM under the commitment: any change fails) after the chain check."""
        from healthnft.wallet.wallet import OpenedRecord

        row = state.net.catalog.record(token_id)
        if row is None:
            raise HTTPException(404, NOT_VISIBLE)
        plain = state.net.wallet()._decrypt(row, state.net.identity(owner, state.passphrase))
        try:
            resource = orjson.loads(plain.canonical)
        except orjson.JSONDecodeError:
            raise Tampered(f"token {token_id}: record content is not valid JSON") from None
        return OpenedRecord(token_id, plain.meta, resource)

    @app.get("/api/records/{token_id}/verify", tags=["records"])
    def verify(token_id: int, me: Me) -> dict[str, Any]:
        """Authentic, tampered, superseded or burned: the chain's word on one of your records."""
        with state.lock:
            row = state.net.catalog.record(token_id)
            holder = state.net.ledger.owner_of(token_id)
            was_mine = row is not None and row.owner.lower() == me.address.lower()
            if not was_mine and (holder is None or holder.lower() != me.address.lower()):
                raise HTTPException(404, NOT_VISIBLE)
            check = ops.verify_record(state.net, token_id, state.passphrase)
        return {"valid": check.valid, "reason": check.reason, "badge": _badge(check)}

    @app.get("/api/records/{token_id}/health-card", tags=["records"])
    def health_card(token_id: int, me: Me) -> dict[str, Any]:
        """A SMART Health Card of one of your immunization or laboratory records (QR PNGs)."""
        import base64
        import shutil

        _owned_or_404(token_id, me)
        folder = Path(tempfile.mkdtemp(prefix="healthnft-card-"))
        try:
            with state.lock:
                card = ops.health_card(state.net, [token_id], folder, passphrase=state.passphrase,
                                       owner=me.address)  # fmt: skip
            images = ["data:image/png;base64," + base64.b64encode(p.read_bytes()).decode()
                      for p in card.qr_png_files]  # fmt: skip
            return {"iss": card.iss, "resource_types": list(card.resource_types),
                    "qr_png": images, "chunks": len(images)}  # fmt: skip
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @app.post("/api/records/{token_id}/transfer", tags=["records"])
    def transfer(token_id: int, body: TransferBody, me: Me) -> dict[str, Any]:
        """Give a record to a registered participant; it is re-encrypted for them."""
        _owned_or_404(token_id, me)
        with state.lock:
            new_owner = ops.transfer(state.net, me.address, token_id, body.to, state.passphrase)
        return {"token_id": token_id, "owner": new_owner}

    @app.post("/api/records/{token_id}/burn", tags=["records"])
    def burn(token_id: int, body: BurnBody, me: Me) -> dict[str, Any]:
        """Burn the token and crypto-shred the record. Irreversible."""
        if not body.confirm:
            raise HTTPException(400, "burning is irreversible: confirm it")
        _owned_or_404(token_id, me)
        with state.lock:
            ops.burn(state.net, me.address, token_id, state.passphrase)
        return {"token_id": token_id, "burned": True}

    def _owned_or_404(token_id: int, me: Session) -> None:
        with state.lock:
            owner = state.net.ledger.owner_of(token_id)
        if owner is None or owner.lower() != me.address.lower():
            raise HTTPException(404, NOT_VISIBLE)

    # -- consent ------------------------------------------------------------

    @app.get("/api/grants", tags=["consent"])
    def grants(me: Me) -> list[dict[str, Any]]:
        """The grants you made, newest first."""
        with state.lock:
            return ops.grants_of(state.net, me.address)

    @app.post("/api/grants", tags=["consent"])
    def share(body: ShareBody, me: Me) -> dict[str, Any]:
        """Let a participant read records (or a category) for a purpose until an expiry."""
        patient_only(me)
        if body.token_ids:
            for tid in body.token_ids:
                _owned_or_404(tid, me)
        with state.lock:
            return ops.share(state.net, me.address, body.to, body.purpose, body.days,
                             token_ids=body.token_ids or None, category=body.category,
                             deidentified_only=body.deidentified_only,
                             passphrase=state.passphrase)  # fmt: skip

    @app.delete("/api/grants/{grant_id}", tags=["consent"])
    def revoke(grant_id: int, me: Me) -> dict[str, Any]:
        """End a grant: no key is released under it afterwards."""
        with state.lock:
            ops.revoke(state.net, me.address, grant_id, state.passphrase)
        return {"grant_id": grant_id, "revoked": True}

    @app.get("/api/shared", tags=["consent"])
    def shared(me: Me) -> list[dict[str, Any]]:
        """Records others shared with you that a live grant lets you open now."""
        with state.lock:
            rows = ops.shared_with(state.net, me.address)
        for row in rows:
            row["category_title"] = describe.category_title(row["category"])
            row["summary"] = (f"{describe.kind_word(row['category'])} — "
                              f"{describe.human_date(row['effective_date'])}")  # fmt: skip
        return rows

    @app.get("/api/requests", tags=["consent"])
    def requests(me: Me) -> dict[str, Any]:
        """Requests to you (a patient's inbox) and requests you made."""
        with state.lock:
            incoming = ops.requests_for(state.net, me.address) if me.kind == "patient" else []
            outgoing = ops.requests_by(state.net, me.address)
        return {"incoming": incoming, "outgoing": outgoing}

    @app.post("/api/requests", tags=["consent"])
    def ask(body: RequestBody, me: Me) -> dict[str, Any]:
        """Ask a patient for access; a matching consent policy grants it at once."""
        with state.lock:
            try:
                state.net.patient(body.owner)
            except UnknownParticipant:
                raise HTTPException(400, "that address is not a patient of this network") \
                    from None
            return ops.request_access(state.net, me.address, body.owner, body.purpose,
                                      days=body.days, token_id=body.token_id,
                                      category=body.category, reward_wei=body.reward_wei,
                                      reason=body.reason, passphrase=state.passphrase)  # fmt: skip

    @app.post("/api/requests/{request_id}/approve", tags=["consent"])
    def approve(request_id: int, body: ApproveBody, me: Me) -> dict[str, Any]:
        patient_only(me)
        with state.lock:
            gid = ops.approve(state.net, me.address, request_id, body.deidentified_only,
                              state.passphrase)  # fmt: skip
        return {"request_id": request_id, "grant_id": gid}

    @app.post("/api/requests/{request_id}/decline", tags=["consent"])
    def decline(request_id: int, me: Me) -> dict[str, Any]:
        patient_only(me)
        with state.lock:
            ops.decline(state.net, me.address, request_id, state.passphrase)
        return {"request_id": request_id, "declined": True}

    @app.get("/api/access-log", tags=["consent"])
    def access_log(me: Me) -> list[dict[str, Any]]:
        """Every key release for your records: who, which record, purpose, when."""
        with state.lock:
            rows = ops.access_log(state.net, me.address)
            for row in rows:
                p = state.net.catalog.participant(row["grantee"])
                row["grantee_name"] = p.label if p else ""
                row["grantee_kind"] = p.kind if p else ""
        return rows

    # -- minting (hospitals) -----------------------------------------------

    @app.post("/api/mint", tags=["minting"])
    async def mint(me: Me, patient: Annotated[str, Form()],
                   files: Annotated[list[UploadFile], File()]) -> dict[str, Any]:  # fmt: skip
        """Validate uploaded files (FHIR, notes, DICOM) and mint them into a patient's wallet
        (a job to poll for progress)."""
        if me.kind != "hospital":
            raise HTTPException(403, "only a hospital can mint records")
        folder = Path(tempfile.mkdtemp(prefix="healthnft-upload-"))
        total = 0
        for i, upload in enumerate(files, 1):
            data = await upload.read(_MAX_UPLOAD + 1)
            total += len(data)
            if total > _MAX_UPLOAD:
                raise HTTPException(413, "the upload is larger than 64 MiB")
            # Only the kind of file is kept from its name (names often carry the patient's).
            suffix = Path(upload.filename or "").suffix.lower()
            suffix = suffix if suffix in _UPLOAD_SUFFIXES else ""
            (folder / f"upload-{i:04d}{suffix}").write_bytes(data)
        job_id = uuid.uuid4().hex
        job: dict[str, Any] = {"job_id": job_id, "state": "running", "done": 0, "total": 0,
                               "owner": me.address}  # fmt: skip
        state.jobs[job_id] = job
        threading.Thread(target=_mint_job, args=(job, me, patient, folder), daemon=True).start()
        return {k: v for k, v in job.items() if k != "owner"}

    def _mint_job(job: dict[str, Any], me: Session, patient: str, folder: Path) -> None:
        import shutil

        from healthnft.ingest import ingest, single_patient

        try:
            with state.lock:
                net = state.net
                owner = net.patient(patient)
                issuer = net.issuer_by_name(me.name)
                recs = single_patient(ingest(sorted(folder.iterdir())))
                if not recs:
                    raise HealthNFTError("no patient records in the upload (only reference data)")
                job["total"] = len(recs)

                def advance(n: int) -> None:
                    job["done"] += n

                res = net.minter().mint(net.identity(issuer.address, state.passphrase),
                                        owner.address, owner.enc_key, recs,
                                        progress=advance)  # fmt: skip
            job.update(state="done", result={"records_minted": res.minted,
                                             "already_minted": res.skipped,
                                             "batches": res.batches,
                                             "token_ids": res.token_ids})  # fmt: skip
        except HealthNFTError as exc:
            job.update(state="failed", error=str(exc))
        except Exception as exc:  # never the message: it could quote the upload
            job.update(state="failed", error=f"internal error ({type(exc).__name__})")
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @app.get("/api/jobs/{job_id}", tags=["minting"])
    def job_status(job_id: str, me: Me) -> dict[str, Any]:
        job = state.jobs.get(job_id)
        if job is None or job["owner"].lower() != me.address.lower():
            raise HTTPException(404, "no such job of yours")
        return {k: v for k, v in job.items() if k != "owner"}

    # -- the web wallet -----------------------------------------------------

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    return app
