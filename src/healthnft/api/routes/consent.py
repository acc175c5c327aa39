"""Consent: grants, what was shared with me, requests, policies and the access log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header
from pydantic import BaseModel, Field

from healthnft.api.deps import Id, Me, PathId, Svc, require_kind
from healthnft.services import describe, sharing
from healthnft.services.sharing import MAX_GRANT_DAYS

router = APIRouter(tags=["consent"])

#: A shared record held at another institution's node: only the chain is known of it here.
_AT_ISSUER = "A record held at the node of the institution that issued it (fetched when opened)"

#: The IETF ``Idempotency-Key`` header: a retry with the same key is done once, not twice.
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", description="Your id for this request (e.g. a UUID): a retry "
    "with the same key answers the first result instead of doing it again.")]


class ShareBody(BaseModel):
    to: str = Field(description="The grantee's address (a registered participant).")
    purpose: str = Field(description="treatment | research | insurance | public-health")
    days: int = Field(30, ge=1, le=MAX_GRANT_DAYS)
    token_ids: list[Id] | None = None
    category: str | None = None
    deidentified_only: bool = False


class RequestBody(BaseModel):
    owner: str = Field(description="The patient's wallet address.")
    purpose: str
    days: int = Field(30, ge=1, le=MAX_GRANT_DAYS)
    token_id: Id | None = None
    category: str | None = None
    reason: str = Field("", max_length=500, description="Kept off chain, in this home.")
    reward_wei: int = Field(0, ge=0)


class ApproveBody(BaseModel):
    deidentified_only: bool = False


class PolicyBody(BaseModel):
    kind: str = Field(description="Who may ask: pharma | research | insurer | government | "
                      "hospital")  # fmt: skip
    purpose: str = Field(description="treatment | research | insurance | public-health")
    category: str | None = Field(None, description="Which category (none: single records).")
    days: int = Field(365, ge=1, le=MAX_GRANT_DAYS, description="Longest access a request may get.")
    valid_days: int = Field(365, ge=1, le=MAX_GRANT_DAYS,
                            description="How long the policy applies.")
    deidentified_only: bool = False


@router.get("/api/grants")
def grants(me: Me, svc: Svc) -> list[dict[str, Any]]:
    """The grants you made, newest first."""
    return svc.run(sharing.grants_of, me.address)


@router.post("/api/grants")
def share(body: ShareBody, me: Me, svc: Svc, key: IdempotencyKey = None) -> dict[str, Any]:
    """Let a participant read records (or a category) for a purpose until an expiry."""
    require_kind(me, "patient")
    return svc.run(sharing.share, me.address, body.to, body.purpose, body.days,
                   token_ids=body.token_ids or None, category=body.category,
                   deidentified_only=body.deidentified_only,
                   passphrase=svc.passphrase, request_id=key).as_dict()  # fmt: skip


@router.delete("/api/grants/{grant_id}")
def revoke(grant_id: PathId, me: Me, svc: Svc) -> dict[str, Any]:
    """End a grant: no key is released under it afterwards."""
    svc.run(sharing.revoke, me.address, grant_id, svc.passphrase)
    return {"grant_id": grant_id, "revoked": True}


@router.get("/api/shared")
def shared(me: Me, svc: Svc) -> list[dict[str, Any]]:
    """Records others shared with you that a live grant lets you open now."""
    rows = svc.run(sharing.shared_with, me.address, svc.passphrase)
    for row in rows:
        row["category_title"] = describe.category_title(row["category"])
        row["summary"] = _AT_ISSUER if row.get("held_at_issuer") else (
            f"{describe.kind_word(row['category'])} — {describe.human_date(row['effective_date'])}")
    return rows


@router.get("/api/requests")
def requests(me: Me, svc: Svc) -> dict[str, Any]:
    """Requests to you (a patient's inbox) and requests you made."""
    with svc.lock:
        incoming = sharing.requests_for(svc.net, me.address) if me.kind == "patient" else []
        outgoing = sharing.requests_by(svc.net, me.address)
    return {"incoming": [r.as_dict() for r in incoming],
            "outgoing": [r.as_dict() for r in outgoing]}  # fmt: skip


@router.post("/api/requests")
def ask(body: RequestBody, me: Me, svc: Svc, key: IdempotencyKey = None) -> dict[str, Any]:
    """Ask a patient for access; a matching consent policy grants it at once."""
    return svc.run(sharing.request_access, me.address, body.owner, body.purpose,
                   days=body.days, token_id=body.token_id, category=body.category,
                   reward_wei=body.reward_wei, reason=body.reason,
                   passphrase=svc.passphrase, request_id=key).as_dict()  # fmt: skip


@router.post("/api/requests/{request_id}/approve")
def approve(request_id: PathId, body: ApproveBody, me: Me, svc: Svc) -> dict[str, Any]:
    """Grant a pending request to you (any reward in escrow is paid to you)."""
    require_kind(me, "patient")
    gid = svc.run(sharing.approve, me.address, request_id, body.deidentified_only,
                  svc.passphrase)  # fmt: skip
    return {"request_id": request_id, "grant_id": gid}


@router.post("/api/requests/{request_id}/decline")
def decline(request_id: PathId, me: Me, svc: Svc) -> dict[str, Any]:
    """Decline a pending request to you (any reward is refunded)."""
    require_kind(me, "patient")
    svc.run(sharing.decline, me.address, request_id, svc.passphrase)
    return {"request_id": request_id, "declined": True}


@router.get("/api/policies")
def policies(me: Me, svc: Svc) -> list[dict[str, Any]]:
    """Your consent policies: rules that approve matching requests automatically."""
    require_kind(me, "patient")
    return [p.as_dict() for p in svc.run(sharing.policies, me.address)]


@router.post("/api/policies")
def add_policy(body: PolicyBody, me: Me, svc: Svc,
               key: IdempotencyKey = None) -> dict[str, Any]:  # fmt: skip
    """Approve matching requests automatically, with no human in the loop."""
    require_kind(me, "patient")
    number = svc.run(sharing.add_policy, me.address, kind=body.kind, purpose=body.purpose,
                     category=body.category, days=body.days, valid_days=body.valid_days,
                     deidentified_only=body.deidentified_only,
                     passphrase=svc.passphrase, request_id=key)  # fmt: skip
    return {"policy": number}


@router.delete("/api/policies/{number}")
def remove_policy(number: PathId, me: Me, svc: Svc) -> dict[str, Any]:
    """Turn a policy off (grants it already made stay until revoked)."""
    require_kind(me, "patient")
    svc.run(sharing.remove_policy, me.address, number, svc.passphrase)
    return {"policy": number, "removed": True}


@router.get("/api/access-log")
def access_log(me: Me, svc: Svc) -> list[dict[str, Any]]:
    """Every key release for your records: who, which record, purpose, when."""
    return svc.run(sharing.access_log, me.address)
