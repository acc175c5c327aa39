"""Transactions signed on the patient's device, relayed by this node (issue 14, point 3).

``GET /api/tx/network`` names the chain id and the contracts the device signs for (the
page pins them at its first signature here); ``POST /api/tx/prepare`` answers the
unsigned transaction of a patient's action and the sentence the device shows before
signing; ``POST /api/tx/send`` relays the signed bytes once they are the session's own,
for this chain, to this network's contracts and a patient's action. The node holds no
patient key on this path (see :mod:`healthnft.services.relay`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from healthnft.api.deps import Id, Me, Svc, require_kind
from healthnft.services import relay
from healthnft.services.sharing import MAX_GRANT_DAYS

router = APIRouter(tags=["device signing"])

Days = Annotated[int, Field(ge=1, le=MAX_GRANT_DAYS)]
Purpose = Annotated[str, Field(description="treatment | research | insurance | public-health")]


class _Action(BaseModel):
    model_config = {"extra": "forbid"}


class Share(_Action):
    action: Literal["share"]
    to: str = Field(description="The grantee's address (a registered participant).")
    purpose: Purpose
    days: Days = 30
    token_ids: list[Id] = Field(min_length=1, max_length=256)
    deidentified_only: bool = False


class ShareCategory(_Action):
    action: Literal["share-category"]
    to: str
    purpose: Purpose
    category: str
    days: Days = 30
    deidentified_only: bool = False


class Revoke(_Action):
    action: Literal["revoke"]
    grant_id: Id


class AnswerRequest(_Action):
    action: Literal["approve-request"]
    request_id: Id
    deidentified_only: bool = False


class DeclineRequest(_Action):
    action: Literal["decline-request"]
    request_id: Id


class AddPolicy(_Action):
    action: Literal["add-policy"]
    kind: str = Field(description="pharma | research | insurer | government | hospital")
    purpose: Purpose
    category: str | None = None
    days: Days = 365
    valid_days: Days = 365
    deidentified_only: bool = False


class RemovePolicy(_Action):
    action: Literal["remove-policy"]
    number: Id


class ApproveAmendment(_Action):
    action: Literal["approve-amendment"]
    token_id: int
    issuer: str = Field(description="The name of the hospital allowed to correct the record.")


class Transfer(_Action):
    action: Literal["transfer"]
    token_id: int
    to: str


class Burn(_Action):
    action: Literal["burn"]
    token_id: int
    confirm: bool = Field(strict=True, description="Must be true: burning is irreversible.")


PrepareBody = Annotated[
    Share | ShareCategory | Revoke | AnswerRequest | DeclineRequest | AddPolicy | RemovePolicy
    | ApproveAmendment | Transfer | Burn,
    Field(discriminator="action"),
]


class SendBody(BaseModel):
    raw: str = Field(max_length=65_536, description="The signed transaction, 0x-hex.")


@router.get("/api/tx/network")
def network(me: Me, svc: Svc) -> dict[str, Any]:
    """This network's chain id and its ``consent`` and ``token`` contracts: what a device
    checks every transaction it signs against (pinned at its first signature here).
    Public facts of the network; signed in, as every ``/api`` route."""
    return svc.run(relay.network)


@router.post("/api/tx/prepare")
def prepare(body: PrepareBody, me: Me, svc: Svc) -> dict[str, Any]:
    """The unsigned transaction of one of your actions, for your device to sign, and
    ``prompt``: what it will do, in one sentence to show before signing."""
    require_kind(me, "patient")
    args = body.model_dump(exclude={"action"})
    return svc.run(relay.prepare, me.address, body.action, args).as_dict()


@router.post("/api/tx/send")
def send(body: SendBody, me: Me, svc: Svc) -> dict[str, Any]:
    """Relay a transaction your device signed (after the checks; the same bytes again
    answer the first result) and answer what it did once mined."""
    require_kind(me, "patient")
    return svc.run(relay.send, me.address, body.raw).as_dict()
