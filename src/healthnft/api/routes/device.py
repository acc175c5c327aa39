"""The patient's own device: sealed records it opens itself, and (demo only) demo keys.

``GET /api/records/{token_id}/sealed`` hands the token's owner the sealed bytes the
page opens with ``/static/wallet/crypto.js``; ``POST /rpc`` lets the page read the
batch root from the chain itself (read-only JSON-RPC: eth_chainId, eth_blockNumber, and
eth_call of the token's batch_of / batch_root); ``GET /api/device/records`` is the
device's listing (coarse metadata, nothing decrypted); ``GET
/api/records/{token_id}/chunks/{digest}`` one encrypted chunk of an imaging study, for
the page to decrypt. ``GET /api/demo/patients`` and
``GET /api/demo/patients/{address}/keystore`` exist only in an app over a demo home
(:func:`healthnft.api.app.create_app` mounts :data:`demo_router` there only): the demo
patients, and one's keystore made from the demo seed when the page's "use a demo
patient" button asks for it (the home keeps none). Thin routes over
:mod:`healthnft.services.device`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import Response
from pydantic import BaseModel, Field

from healthnft.api.deps import Me, Svc, TokenId
from healthnft.errors import Conflict, InvalidInput
from healthnft.services import device

router = APIRouter(tags=["device"])
Digest = Annotated[str, PathParam(min_length=64, max_length=64, pattern="^[0-9a-f]{64}$")]
demo_router = APIRouter(tags=["demo"])


@router.get("/api/records/{token_id}/sealed")
def sealed_record(token_id: TokenId, me: Me, svc: Svc) -> dict[str, Any]:
    """Your record as sealed bytes, to open on your device: public row (commitment,
    proof, ciphertext digest, key id, batch id, token contract), the sealed DEK, the batch
    key wrapped for your encryption key and the ciphertext (base64). The batch root is
    read from the chain by the page itself (``POST /rpc``).
    Only for the token's current owner; anyone else: 404, as for a record never minted."""
    return svc.run(device.sealed_record, me.address, token_id).as_dict()


@router.get("/api/records/{token_id}/chunks/{digest}")
def study_chunk(token_id: TokenId, digest: Digest, me: Me, svc: Svc) -> Response:
    """One encrypted chunk of your imaging study, by its sha256 (hex) as the record your
    device opened names it: the page checks and decrypts it. Only for the token's
    current owner; anything else: 404."""
    body = svc.run(device.study_chunk, me.address, token_id, digest)
    return Response(body, media_type="application/octet-stream")


@router.get("/api/device/records")
def device_listing(me: Me, svc: Svc) -> list[dict[str, Any]]:
    """Your records with coarse metadata only (no summary: the content stays sealed)."""
    return svc.run(device.sealed_listing, me.address)


class RpcCall(BaseModel):
    jsonrpc: str = "2.0"
    id: int | str | None = None
    method: str = Field(max_length=64)
    params: list[Any] = Field(default_factory=list, max_length=2)


@router.post("/rpc", tags=["chain"])
def rpc(body: RpcCall, me: Me, svc: Svc) -> dict[str, Any]:
    """A read-only JSON-RPC window on the chain for the signed-in page: ``eth_chainId``,
    ``eth_blockNumber``, and ``eth_call`` of the token contract's ``batch_of`` or
    ``batch_root`` (the page reads a record's batch root itself). One call per request;
    anything else is a JSON-RPC error (-32601 method, -32602 params, -32000 reverted)."""
    try:
        result = svc.run(device.chain_read, body.method, body.params)
    except (InvalidInput, Conflict) as exc:
        code = (-32000 if isinstance(exc, Conflict)
                else -32601 if body.method not in device.RPC_METHODS else -32602)
        return {"jsonrpc": "2.0", "id": body.id, "error": {"code": code, "message": str(exc)}}
    return {"jsonrpc": "2.0", "id": body.id, "result": result}


@demo_router.get("/api/demo/patients")
def demo_patients(svc: Svc) -> list[dict[str, Any]]:
    """Demo homes only: the demo patients (address, label) the page offers. Never
    present in an app over a real home."""
    return svc.run(device.demo_patients)


@demo_router.get("/api/demo/patients/{address}/keystore")
def demo_patient_keystore(address: str, svc: Svc) -> dict[str, Any]:
    """Demo homes only: one demo patient's keystore (documented demo passphrase), made
    from the public demo seed when the page asks, for the page to keep on the device."""
    return svc.run(device.demo_patient_keystore, address)
