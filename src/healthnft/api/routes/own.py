"""The owner's door on the node that holds its records: ciphertext, wrapped key, proof.

Thin over :mod:`healthnft.services.own_records`, which decides (a presentation of the
requester's DID over this node's one-time challenge, the requester the token's owner on
chain now). No session: the caller is the patient's own device proving its key, and it
gets nothing it cannot check against the chain and nothing in the clear. The
ciphertext itself is fetched at ``/node/v1/blobs`` with the tickets answered here.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from healthnft.api.deps import Svc, TokenId
from healthnft.api.routes.node import RecordAsk
from healthnft.services import own_records

router = APIRouter(tags=["node"], prefix="/node/v1")


@router.post("/own/{token_id}")
def own_record(token_id: TokenId, body: RecordAsk, request: Request,
               svc: Svc) -> dict[str, Any]:  # fmt: skip
    """The record's public row, its sealed DEK, the batch key wrapped for the owner at
    mint, and one ticket per ciphertext: for the token's owner only."""
    return svc.run(own_records.record_for_owner, request.app.state.site.origin, token_id,
                   body.requester, body.presentation)  # fmt: skip
