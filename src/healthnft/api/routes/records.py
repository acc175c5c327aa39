"""A wallet's records: list, open, picture, verify, health card, transfer, burn, copies,
corrections.

Who sees what is decided by :mod:`healthnft.services`: owners see their records,
grantees only what a live grant covers (through the key custodians). A record
the caller may not see is answered exactly like one that does not exist.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from healthnft.api.deps import Me, Service, Svc, TokenId, require_kind
from healthnft.api.uploads import receive
from healthnft.errors import HealthNFTError, InvalidInput, NotFound, Tampered
from healthnft.services import amending, describe, records
from healthnft.services.access import NOT_VISIBLE, check_token_ids, same

router = APIRouter(tags=["records"])


class TransferBody(BaseModel):
    to: str


class BurnBody(BaseModel):
    # Strict: "yes", 1 or "true" are not a person confirming an irreversible step.
    confirm: bool = Field(strict=True, description="Must be true: burning is irreversible.")


class ApprovalBody(BaseModel):
    issuer: str = Field(description="The name of the hospital allowed to correct the record.")


def badge(verification: Any) -> str:
    """One word for a verification: authentic, burned, superseded, revoked or tampered."""
    reason = verification.reason
    if verification.valid:
        return "authentic"
    for word in ("burned", "superseded", "revoked"):
        if reason.startswith(word) or word in reason.split(":")[0]:
            return word
    return "tampered"


def _verification(check: Any) -> dict[str, Any]:
    return {"valid": check.valid, "reason": check.reason, "badge": badge(check)}


# -- the list -------------------------------------------------------------------


def _summaries(svc: Service, owner: str, rows: list[dict[str, Any]]) -> None:
    """Fill each row's plain-language summary, opening only what is not cached.

    Each record is opened through the service (chain checks, then decryption) once
    per ciphertext; the summary is kept in memory for the next listing.
    """
    for row in rows:
        key = row["token_id"]  # a token's content never changes (a correction is a new token)
        if row["status"] == records.AT_ISSUER:  # nothing here to open: said as it is
            row["summary"], row["date"] = "Held at the node of the institution that issued it", None
            continue
        if key not in svc.summaries:
            try:
                rec = records.open_record(svc.net, owner, row["token_id"], svc.passphrase,
                                          check_imaging=False)  # fmt: skip
                svc.summaries[key] = (describe.summary(rec.resource, row["category"]),
                                      describe.record_date(rec.resource))  # fmt: skip
            except HealthNFTError:
                svc.summaries[key] = ("This record failed its integrity check", None)
        row["summary"], date = svc.summaries[key]
        row["date"] = date or row["effective_date"]


def _list_body(svc: Service, address: str) -> bytes:
    with svc.lock:
        version = svc.read_version()
        cached = svc.lists.get(address)
        if cached is not None and cached[0] == version:
            return cached[1]
        rows = [r.as_dict() for r in records.list_records(svc.net, address)]
        _summaries(svc, address, rows)
        for row in rows:
            row["category_title"] = describe.category_title(row["category"])
        rows.sort(key=lambda r: r.get("date") or "", reverse=True)
        body = orjson.dumps(rows)
        svc.lists[address] = (version, body)
        return body


@router.get("/api/records")
async def list_records(me: Me, svc: Svc) -> Response:
    """The caller's records (confirmed on chain), newest first, with a summary each.

    The answer is kept per wallet until the next transaction on the chain (every
    change of ownership, mint or burn is one), so a cached list is never stale and
    a busy wallet page is served without waiting for the chain.
    """
    cached = svc.lists.get(me.address)
    if cached is not None and cached[0] == svc.read_version():
        body = cached[1]
    else:
        body = await run_in_threadpool(_list_body, svc, me.address)
    return Response(body, media_type="application/json")


# -- one record -------------------------------------------------------------------


def _owner_check(svc: Service, token_id: int) -> Any:
    """The full verification (content and attestation), kept until the next write."""
    key = (token_id, svc.read_version())
    found = svc.checks.get(key)
    if found is None or found[0] < time.monotonic():
        check = records.verify_record(svc.net, token_id, svc.passphrase)
        # An attestation can expire with time: a minute of reuse at most.
        found = (time.monotonic() + 60, check)
        if len(svc.checks) > 100_000:
            svc.checks.clear()
        svc.checks[key] = found
    return found[1]


def _study_view(token_id: int, mine: bool, rec: Any, check: Any) -> dict[str, Any]:
    """An imaging study: its characterization, its series and the URL of its picture."""
    headline, series = records.describe_study(rec)
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
        "resource_json": rec.resource_json().decode(),
        "verification": _verification(check),
    }  # fmt: skip


@router.get("/api/records/{token_id}")
def open_record(token_id: TokenId, me: Me, svc: Svc) -> Response:
    """Decrypt a record for its owner, or for a grantee through the custodians.

    Decimals go out as the hospital sent them, in ``resource`` (a JSON number with
    every digit: 5.60, not 5.6) and in ``resource_json``, the record as indented JSON
    text for display (a browser's ``JSON.parse`` would turn 5.60 into 5.6).
    """
    return Response(describe.json_bytes(_record_view(token_id, me, svc)),
                    media_type="application/json")  # fmt: skip


def _record_view(token_id: int, me: Any, svc: Service) -> dict[str, Any]:
    with svc.lock:
        mine = same(svc.net.ledger.owner_of(token_id), me.address)
        if mine:
            check = _owner_check(svc, token_id)
            if badge(check) == "tampered":
                raise Tampered(f"token {token_id}: {check.reason}")
        rec = records.open_record(svc.net, me.address, token_id, svc.passphrase,
                                  check_imaging=False)  # fmt: skip
        if not mine:
            check = records.verify_shared(svc.net, token_id)
    if rec.is_study:
        return _study_view(token_id, mine, rec, check)
    category = rec.meta.get("category", "other")
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
        "resource_json": rec.resource_json().decode(),
        "verification": _verification(check),
    }


@router.get("/api/records/{token_id}/image.png")
def study_image(token_id: TokenId, me: Me, svc: Svc) -> Response:
    """The first image of an imaging study you own or were granted, as PNG (CT windowed).

    A grantee's image is read through the custodians, like any shared record: each
    view is a logged key release.
    """
    check_token_ids(token_id)
    with svc.lock:
        row = svc.net.catalog.record(token_id)
        # Not in this home's catalogue: a study another node holds is streamed from it
        # (``save_record`` answers NOT_VISIBLE to anyone without a grant, as here).
        if row is not None and row.category != "imaging":
            raise NotFound(NOT_VISIBLE)
        folder = Path(tempfile.mkdtemp(prefix=".web-image-", dir=svc.net.home))
        try:
            out = folder / "image.png"
            records.save_record(svc.net, me.address, token_id, out, svc.passphrase)
            data = out.read_bytes()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.get("/api/records/{token_id}/verify")
def verify(token_id: TokenId, me: Me, svc: Svc) -> dict[str, Any]:
    """Authentic, tampered, superseded or burned: the chain's word on one of your records
    (a record you gave away or burned included)."""
    check_token_ids(token_id)
    with svc.lock:
        row = svc.net.catalog.record(token_id)
        was_mine = row is not None and same(row.owner, me.address)
        if not was_mine and not same(svc.net.ledger.owner_of(token_id), me.address):
            raise NotFound(NOT_VISIBLE)
        check = records.verify_record(svc.net, token_id, svc.passphrase)
    return _verification(check)


@router.post("/api/records/{token_id}/transfer")
def transfer(token_id: TokenId, body: TransferBody, me: Me, svc: Svc) -> dict[str, Any]:
    """Give a record to a registered participant; it is re-encrypted for them."""
    done = svc.run(records.transfer, me.address, token_id, body.to, svc.passphrase)
    return done.as_dict()


@router.post("/api/records/{token_id}/burn")
def burn(token_id: TokenId, body: BurnBody, me: Me, svc: Svc) -> dict[str, Any]:
    """Burn the token and crypto-shred the record. Irreversible."""
    svc.run(records.burn, me.address, token_id, svc.passphrase, confirm=body.confirm)
    return {"token_id": token_id, "burned": True}


@router.post("/api/records/{token_id}/deidentify")
def deidentify(token_id: TokenId, me: Me, svc: Svc) -> dict[str, Any]:
    """Mint a de-identified copy (HIPAA Safe Harbor / DICOM PS3.15) of one of your records.

    The copy is a token of its own in your wallet, linked to the original off chain;
    asking again returns the same copy.
    """
    require_kind(me, "patient")
    with svc.lock:
        if not same(svc.net.ledger.owner_of(token_id), me.address):
            raise NotFound(NOT_VISIBLE)
        return records.deidentify(svc.net, token_id, svc.passphrase).as_dict()


@router.post("/api/records/{token_id}/amendment-approval")
def approve_amendment(token_id: TokenId, body: ApprovalBody, me: Me, svc: Svc) -> dict[str, Any]:
    """Allow a hospital to correct one of your records (it mints a version that supersedes it)."""
    require_kind(me, "patient")
    with svc.lock:
        if not same(svc.net.ledger.owner_of(token_id), me.address):
            raise NotFound(NOT_VISIBLE)
        return amending.approve_amendment(svc.net, me.address, token_id, body.issuer,
                                          svc.passphrase).as_dict()  # fmt: skip


_ONE_FILE = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary",
                                    "description": "The corrected FHIR resource (JSON)."}},
        }}},
    }
}  # fmt: skip


@router.post("/api/records/{token_id}/amend", openapi_extra=_ONE_FILE)
async def amend(token_id: TokenId, request: Request, me: Me, svc: Svc) -> dict[str, Any]:
    """A hospital corrects a record it issued, with its owner's approval: the corrected
    FHIR resource is minted as a new token that supersedes the old one."""
    require_kind(me, "hospital")
    upload = await receive(request, svc.uploads)
    try:
        if len(upload.files) != 1:
            raise InvalidInput("give exactly one corrected FHIR resource")
        with svc.lock:
            return amending.amend(svc.net, token_id, upload.files[0], me.name,
                                  svc.passphrase).as_dict()  # fmt: skip
    finally:
        shutil.rmtree(upload.folder, ignore_errors=True)
