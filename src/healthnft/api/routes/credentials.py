"""Credentials over HTTP: identity credentials, attestations, presentations, health cards."""

from __future__ import annotations

import base64
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from healthnft.api.deps import Id, Me, Svc, TokenId, require_kind
from healthnft.errors import NotFound
from healthnft.services import credentials
from healthnft.services.access import NOT_VISIBLE, same

router = APIRouter(tags=["credentials"])


class IdentityBody(BaseModel):
    patient: str = Field(description="The patient's wallet address.")
    days: int = Field(365, ge=1, le=3650)


class CredentialBody(BaseModel):
    credential: str = Field(description="A credential as compact JWS (VC-JOSE).")


class ChallengeBody(BaseModel):
    domain: str = Field(min_length=1, max_length=253, description="The verifier's domain.")


class PresentBody(BaseModel):
    challenge: str
    domain: str


class PresentationBody(BaseModel):
    presentation: str = Field(description="A presentation as compact JWS (vp+jwt).")
    domain: str


class CardBody(BaseModel):
    token_ids: list[Id] = Field(min_length=1, description="Immunization or laboratory records.")
    qr: bool = Field(True, description="Also the card's QR code (one code; a card too large "
                     "for one is refused, as chunked codes are deprecated).")


@router.post("/api/credentials/identity")
def issue_identity(body: IdentityBody, me: Me, svc: Svc) -> dict[str, Any]:
    """A hospital issues a patient the credential binding their DID to their wallet."""
    require_kind(me, "hospital")
    cred = svc.run(credentials.issue_identity, body.patient, me.name, body.days,
                   passphrase=svc.passphrase)  # fmt: skip
    return {"id": cred.id, "holder": cred.holder, "issuer": cred.issuer}


@router.get("/api/records/{token_id}/attestation")
def record_attestation(token_id: TokenId, me: Me, svc: Svc) -> dict[str, Any]:
    """Your record's issuer attestation, verified against the chain."""
    with svc.lock:
        if not same(svc.net.ledger.owner_of(token_id), me.address):
            raise NotFound(NOT_VISIBLE)
        verdict = credentials.verify_attestation(svc.net, token_id, svc.passphrase)
    return verdict.as_dict("valid", "reason", "id", "issuer", "type")


@router.post("/api/records/{token_id}/attestation/revoke")
def revoke_attestation(token_id: TokenId, me: Me, svc: Svc) -> dict[str, Any]:
    """The issuing hospital revokes a record's attestation (on chain)."""
    require_kind(me, "hospital")
    revoked = svc.run(credentials.revoke, str(token_id), svc.passphrase, issuer=me.address)
    return {"revoked": revoked}


@router.post("/api/credentials/verify")
def verify_credential(body: CredentialBody, me: Me, svc: Svc) -> dict[str, Any]:
    """Check a credential against the chain: signature, issuer, revocation, binding."""
    verdict = svc.run(credentials.verify_jws, body.credential)
    return verdict.as_dict("valid", "reason", "id", "issuer", "type")


@router.post("/api/credentials/revoke")
def revoke_credential(body: CredentialBody, me: Me, svc: Svc) -> dict[str, Any]:
    """Revoke a credential you issued (on chain)."""
    require_kind(me, "hospital")
    return {"revoked": svc.run(credentials.revoke_jws, body.credential, svc.passphrase,
                               issuer=me.address)}  # fmt: skip


@router.post("/api/credentials/challenges")
def challenge(body: ChallengeBody, me: Me, svc: Svc) -> dict[str, Any]:
    """A one-time challenge for a wallet to present credentials against (5 minutes)."""
    return {"challenge": svc.run(credentials.new_challenge, body.domain), "domain": body.domain}


@router.post("/api/credentials/presentations")
def present(body: PresentBody, me: Me, svc: Svc) -> dict[str, Any]:
    """Sign a presentation of your identity credential for a verifier's challenge."""
    vp = svc.run(credentials.present, me.address, body.challenge, body.domain,
                 passphrase=svc.passphrase)  # fmt: skip
    return vp.as_dict()


@router.post("/api/credentials/presentations/verify")
def check_presentation(body: PresentationBody, me: Me, svc: Svc) -> dict[str, Any]:
    """Verify a presentation against a challenge issued here; a replay is refused."""
    verdict = svc.run(credentials.check_presentation_jws, body.presentation, body.domain)
    return verdict.as_dict("valid", "reason", "holder", "credentials")


@router.post("/api/health-cards")
def health_card(body: CardBody, me: Me, svc: Svc) -> dict[str, Any]:
    """A SMART Health Card of your records (signed by their issuer): the card and its QR
    code (``qr_png``: one picture, or none with ``"qr": false``)."""
    return _card(svc, body.token_ids, me.address, body.qr)


@router.get("/api/records/{token_id}/health-card", tags=["records"])
def record_health_card(token_id: TokenId, me: Me, svc: Svc, qr: bool = True) -> dict[str, Any]:
    """A SMART Health Card of one of your immunization or laboratory records (its QR PNG)."""
    return _card(svc, [token_id], me.address, qr)


def _card(svc: Any, token_ids: list[int], owner: str, qr: bool) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="healthnft-card-"))
    try:
        card = svc.run(credentials.health_card, token_ids, folder,
                       passphrase=svc.passphrase, owner=owner, qr=qr)  # fmt: skip
        images = ["data:image/png;base64," + base64.b64encode(p.read_bytes()).decode()
                  for p in card.qr_png_files]  # fmt: skip
        return {"iss": card.iss, "resource_types": list(card.resource_types),
                "card": Path(card.card_file).read_text(), "qr_png": images}  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)
