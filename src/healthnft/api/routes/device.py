"""The patient's own device: sealed records it opens itself, and (demo only) demo keys.

``GET /api/records/{token_id}/sealed`` hands the token's owner the sealed bytes the
page opens with ``/static/wallet/crypto.js``; ``GET /api/device/records`` is the
device's listing (coarse metadata, nothing decrypted). ``GET /api/demo/patients``
exists only in an app over a demo home (:func:`healthnft.api.app.create_app` mounts
:data:`demo_router` there only): the demo patients' keystores, for the page's "use a
demo patient" button. Thin routes over :mod:`healthnft.services.device`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from healthnft.api.deps import Me, Svc, TokenId
from healthnft.services import device

router = APIRouter(tags=["device"])
demo_router = APIRouter(tags=["demo"])


@router.get("/api/records/{token_id}/sealed")
def sealed_record(token_id: TokenId, me: Me, svc: Svc) -> dict[str, Any]:
    """Your record as sealed bytes, to open on your device: public row (commitment,
    proof, ciphertext digest, key id), the sealed DEK, the batch key wrapped for your
    encryption key, the ciphertext (base64) and the batch root read from the chain.
    Only for the token's current owner; anyone else: 404, as for a record never minted."""
    return svc.run(device.sealed_record, me.address, token_id).as_dict()


@router.get("/api/device/records")
def device_listing(me: Me, svc: Svc) -> list[dict[str, Any]]:
    """Your records with coarse metadata only (no summary: the content stays sealed)."""
    return svc.run(device.sealed_listing, me.address)


@demo_router.get("/api/demo/patients")
def demo_patients(svc: Svc) -> list[dict[str, Any]]:
    """Demo homes only: demo patients' keystores (documented demo passphrase), for the
    page to keep on the device. Never present in an app over a real home."""
    return svc.run(device.demo_patients)
