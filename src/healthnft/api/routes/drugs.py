"""Medicine packs over HTTP (issue 15): verify a pack, dispense it. The pharmacy page
(``/pharmacy.html``) calls these; both take a signed-in member. And the manufacturer's
node side: ``POST /node/v1/drugs/lookup`` answers another member's home for a scanned
pack (its salt, proof and product credential; :mod:`healthnft.services.drug_lookup`),
with no session (the asker checks everything against the chain), counted per client.

Either route takes ``application/json`` (``{"code": …}``) or ``multipart/form-data``
with a photo of the DataMatrix in a file part (``image``) or a ``code`` field. The
photo is streamed into the home's staging folder by :mod:`healthnft.api.uploads`, its
size capped as it arrives, and deleted once read.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from healthnft.api.deps import Me, Svc, require_kind
from healthnft.api.ratelimit import WindowLimiter
from healthnft.api.uploads import MAX_FIELD, receive
from healthnft.errors import InvalidInput
from healthnft.services import drugs

router = APIRouter(tags=["drugs"])

#: Pack lookups one client may make a minute at a manufacturer's node: a busy pharmacy's
#: node scans a pack every few seconds; trying serials in bulk is what is refused.
LOOKUPS_PER_MINUTE = 600


async def _pack_input(request: Request, svc: Any) -> tuple[str | None, bytes | None,
                                                           dict[str, Any]]:  # fmt: skip
    """(code, image bytes, other fields) from a JSON or a multipart body."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        upload = await receive(request, svc.uploads, max_bytes=drugs.image_limit())
        try:
            if len(upload.files) > 1:
                raise InvalidInput("send one picture of one pack")
            image = upload.files[0].read_bytes() if upload.files else None
        finally:
            shutil.rmtree(upload.folder, ignore_errors=True)
        return upload.fields.get("code") or None, image, dict(upload.fields)
    body = await request.body()
    if len(body) > MAX_FIELD:
        raise InvalidInput("send a pack code as JSON: {\"code\": \"(01)…(21)…(10)…(17)…\"}")
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise InvalidInput("the body is not JSON: send {\"code\": \"…\"}") from None
    if not isinstance(data, dict) or not isinstance(data.get("code"), str):
        raise InvalidInput("send {\"code\": \"…\"} (a pack code as a string)")
    return data["code"], None, data


@router.post("/api/drugs/verify")
async def verify_pack(request: Request, me: Me, svc: Svc) -> dict[str, Any]:
    """The status of one pack: ``{"status", "reason", "gtin", "lot", "expiry", "serial"}``.
    Never who dispensed it."""
    code, image, _ = await _pack_input(request, svc)
    return svc.run(drugs.verify, code, image=image).as_dict()


@router.post("/api/drugs/dispense")
async def dispense_pack(request: Request, me: Me, svc: Svc) -> dict[str, Any]:
    """Dispense (decommission) one pack as the signed-in pharmacy or hospital; with
    ``patient`` (a dispenser with the issuer role), also mint a MedicationDispense into
    that wallet. A pack that is not active is refused (409, its status in the message);
    one already dispensed answers ``outcome: alert``."""
    require_kind(me, *drugs.DISPENSERS)
    code, image, fields = await _pack_input(request, svc)
    patient = fields.get("patient") or None
    if patient is not None and not isinstance(patient, str):
        raise InvalidInput("patient is a wallet address")
    done = svc.run(drugs.dispense, code, me.address, patient, image=image,
                   passphrase=svc.passphrase)  # fmt: skip
    return done.as_dict()


class LookupAsk(BaseModel):
    # The pack as a scanner read it (parsed by the asker); each checked by the service.
    gtin: str = Field(description="GTIN-14 (AI 01).", max_length=14)
    lot: str = Field(description="Lot (AI 10).", max_length=20)
    expiry: str = Field(description="Expiry as printed, YYMMDD (AI 17).", max_length=6)
    serial: str = Field(description="Serial (AI 21).", max_length=20)


def _lookup_limiter(request: Request) -> WindowLimiter:
    state = request.app.state
    limiter = getattr(state, "drug_lookup_limiter", None)
    if limiter is None:
        limiter = state.drug_lookup_limiter = WindowLimiter(LOOKUPS_PER_MINUTE, 60.0,
                                                            clock=state.clock)  # fmt: skip
    return limiter


@router.post("/node/v1/drugs/lookup", tags=["node"])
def lookup_pack(body: LookupAsk, request: Request, svc: Svc) -> dict[str, Any]:
    """The manufacturer's node answers for one of its packs: ``{"commissioned": false}``,
    or the pack as commissioned with its salt, Merkle proof and the product credential.
    Never the batch size, another serial or a status (the asker reads those from the
    chain). 429 past :data:`LOOKUPS_PER_MINUTE` a client."""
    client = request.client.host if request.client else "unknown"
    _lookup_limiter(request).hit(client, "pack lookups")
    return svc.run(drugs.lookup, body.gtin, body.lot, body.expiry, body.serial)
