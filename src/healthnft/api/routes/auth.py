"""Sign-in with the wallet's key (EIP-4361), sessions, and who is on the network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from healthnft.api import siwe
from healthnft.api.deps import COOKIE, Me, Svc, bearer, require_kind
from healthnft.errors import CredentialRejected, InvalidInput, UnknownParticipant
from healthnft.services import consortium, participants

router = APIRouter(tags=["sign-in"])


class SignIn(BaseModel):
    message: str = Field(description="The EIP-4361 message from /api/auth/challenge.")
    signature: str = Field(description="The wallet's personal_sign signature of it (0x…).")


def _site(request: Request) -> tuple[str, str]:
    """This service's configured domain and URI, never the request's ``Host`` (see .site)."""
    site = request.app.state.site
    return site.domain, site.origin


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/api/auth/challenge")
def challenge(address: str, request: Request, svc: Svc) -> dict[str, Any]:
    """An EIP-4361 message for ``address`` to sign; its nonce is good once, for 5 minutes."""
    from web3 import Web3

    if not Web3.is_address(address):
        raise InvalidInput("the address given is not a 0x… Ethereum address")
    sessions = request.app.state.sessions
    clock = request.app.state.clock
    request.app.state.challenge_limiter.hit(_client(request), "sign-in challenges")
    nonce, expires = sessions.new_nonce(address)
    issued = datetime.fromtimestamp(clock(), UTC)
    domain, uri = _site(request)
    message = siwe.SiweMessage(
        domain=domain, address=Web3.to_checksum_address(address), statement=siwe.STATEMENT,
        uri=uri, chain_id=svc.net.ledger.chain_id, nonce=nonce, issued_at=issued,
        expiration_time=issued + timedelta(seconds=expires - clock()),
    )  # fmt: skip
    return {"message": message.text(), "nonce": nonce}


@router.post("/api/auth/verify")
def verify_sign_in(body: SignIn, request: Request, svc: Svc) -> JSONResponse:
    """Check the signed message; on success a session cookie (and a bearer token)."""
    sessions = request.app.state.sessions
    clock = request.app.state.clock
    try:
        msg = siwe.parse(body.message)
        signer = siwe.recover(body.message, body.signature)
    except siwe.SiweError as exc:
        raise CredentialRejected(str(exc)) from None
    if signer.lower() != msg.address.lower():
        raise CredentialRejected("the signature was not made by the address in the message")
    if (msg.domain, msg.uri) != _site(request):
        raise CredentialRejected("the message was made for another site")
    if msg.chain_id != svc.net.ledger.chain_id:
        raise CredentialRejected("the message names another chain")
    if msg.expiration_time.timestamp() <= clock():
        raise CredentialRejected("the sign-in message expired; ask for a new one")
    if not sessions.take_nonce(msg.nonce, msg.address):
        raise CredentialRejected("this sign-in message was already used or never issued")
    with svc.lock:
        try:
            who = participants.who(svc.net, msg.address)
        except UnknownParticipant:
            raise CredentialRejected("this address is not a participant of the network") \
                from None
        # A patient's wallet may live on their own device (they sign their actions there
        # and this node relays them: /api/tx); an institution signs in at its own node.
        if who.kind != "patient" and not participants.holds_wallet(svc.net, who.address):
            raise CredentialRejected("this service holds no wallet for this address")
    token, sess = sessions.open(who.address, who.kind, who.name)
    response = JSONResponse({"address": who.address, "kind": who.kind, "name": who.name,
                             "expires": int(sess.expires), "token": token})  # fmt: skip
    response.set_cookie(COOKIE, token, max_age=int(sessions.ttl_s), httponly=True,
                        samesite="strict", secure=request.app.state.site.secure)  # fmt: skip
    return response


@router.post("/api/auth/logout")
def logout(request: Request, me: Me) -> JSONResponse:
    sessions = request.app.state.sessions
    sessions.close(request.cookies.get(COOKIE))
    sessions.close(bearer(request))
    response = JSONResponse({"signed_out": True})
    response.delete_cookie(COOKIE)
    return response


@router.get("/api/me")
def whoami(me: Me) -> dict[str, Any]:
    return {"address": me.address, "kind": me.kind, "name": me.name, "expires": int(me.expires)}


@router.get("/api/demo/wallets")
def demo_wallets(svc: Svc) -> list[dict[str, Any]]:
    """Demo homes only: the demo's keystores (locked with the documented passphrase)."""
    return svc.run(participants.demo_wallets)


@router.get("/api/participants", tags=["network"])
def institutions(me: Me, svc: Svc) -> list[dict[str, Any]]:
    """Institutions a record can be shared with or transferred to (not other patients)."""
    return [m.as_dict() for m in svc.run(participants.institutions, me.address)]


@router.get("/api/network/membership", tags=["network"])
def membership_terms(svc: Svc) -> dict[str, Any]:
    """Public: what a wallet signs its membership application with (format, chain id,
    registry), so a wallet made in the page shows the ``healthnft:`` link a hospital or
    enrolment office registers it from (`healthnft participant admit LINK`)."""
    return svc.run(consortium.application_terms)


class PatientCard(BaseModel):
    link: str = Field(max_length=2000, description="The healthnft: link the patient's wallet "
                      "shows (its signed membership application: public values only).")


@router.post("/api/patients", tags=["network"])
def register_patient(body: PatientCard, me: Me, svc: Svc) -> dict[str, Any]:
    """A hospital registers a patient from the link the patient's wallet shows (address,
    encryption and did:key public keys, signed by the patient's key); on chain, with gas
    for the patient's own transactions. Hospitals only, at a node holding the enrolment
    key."""
    require_kind(me, "hospital")
    return svc.run(consortium.register_patient, me.address, body.link, svc.passphrase).as_dict()
