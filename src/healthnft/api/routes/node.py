"""Node to node: a grantee's node fetches a shared record's ciphertext from this node.

Thin over :mod:`healthnft.services.exchange`, which decides (presentation over a one-time
challenge, live grant on chain, single-use tickets). No session: the caller is another
node proving a member's DID, not a person signed in to this wallet.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from healthnft.api.deps import Svc, TokenId, bearer
from healthnft.errors import CredentialRejected
from healthnft.services import exchange, peer_grants

router = APIRouter(tags=["node"], prefix="/node/v1")


class RecordAsk(BaseModel):
    # Both checked by the service, after the token id (an id nobody may open is answered
    # the same way whatever the body holds).
    requester: str = Field("", description="The grantee's address (a registered member).",
                           max_length=42)  # fmt: skip
    presentation: str = Field("", description="A vp+jwt over this node's challenge, signed "
                              "with the DID bound on chain to the requester.",
                              max_length=20_000)  # fmt: skip


def _origin(request: Request) -> str:
    return request.app.state.site.origin


@router.get("/challenge")
def challenge(request: Request, svc: Svc) -> dict[str, str]:
    """A one-time challenge and the domain a presentation to this node must name."""
    return svc.run(exchange.challenge, _origin(request))


@router.post("/records/{token_id}")
def record(token_id: TokenId, body: RecordAsk, request: Request, svc: Svc) -> dict[str, Any]:
    """The record's public row and one ticket per ciphertext, for a live grantee."""
    return svc.run(exchange.record_for_peer, _origin(request), token_id, body.requester,
                   body.presentation)  # fmt: skip


@router.post("/grants/{grant_id}/records")
def grant_records(grant_id: TokenId, body: RecordAsk, request: Request,
                  svc: Svc) -> dict[str, Any]:  # fmt: skip
    """The records held here that a live category grant of the requester covers (coarse
    metadata only: a category grant names no token, and only this node knows the
    categories of the records it holds)."""
    return svc.run(peer_grants.records_for_grant, _origin(request), grant_id, body.requester,
                   body.presentation)  # fmt: skip


@router.get("/blobs/{digest}")
def blob(digest: str, request: Request, svc: Svc,
         requester: Annotated[str, Header(alias="X-Requester", max_length=42)]) -> Any:
    """A ciphertext by its digest, streamed, for the holder of a ticket for it."""
    ticket = bearer(request)
    if not ticket:
        raise CredentialRejected("a ticket (Authorization: Bearer) is needed")
    pieces = svc.run(exchange.ciphertext_for_peer, requester, digest, ticket)
    return StreamingResponse(pieces, media_type="application/octet-stream")
