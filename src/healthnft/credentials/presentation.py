"""Verifiable Presentations: a wallet proves it holds credentials, for one challenge.

A presentation is a VC-JOSE ``vp+jwt`` (:mod:`healthnft.credentials.vc_jws`) whose
payload is a VerifiablePresentation enveloping each ``vc+jwt`` credential as
``{"id": "data:application/vc+jwt,<jws>", "type": "EnvelopedVerifiableCredential"}``.
The verifier's challenge and its domain travel as the JWT claims ``nonce`` and ``aud``
(as in VC-JOSE examples and OpenID4VP), with ``iat``/``exp`` bounding the presentation's
life; :class:`~healthnft.credentials.challenges.ChallengeStore` makes each challenge
good for one use.

This module checks signatures, challenge, domain, times and each credential's own
validity; whether the chain vouches for the holder and the issuers is
:class:`~healthnft.credentials.trust.ChainTrust`'s job.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from healthnft.credentials.challenges import ChallengeStore
from healthnft.credentials.jose import unverified_claims
from healthnft.credentials.vc import (
    CLOCK_SKEW_SECONDS,
    ENVELOPED_VC_PREFIX,
    ENVELOPED_VC_TYPE,
    VC_CONTEXT_V2,
    VP_TYPE,
    check_context,
    subjects_of,
    types_of,
    verify_credential,
)
from healthnft.credentials.vc_jws import aware, sign_did_jws, verify_did_jws
from healthnft.errors import CredentialRejected, InvalidInput

__all__ = [
    "MAX_PRESENTATION_CHARS",
    "Presentation",
    "create_presentation",
    "presentation_nonce",
    "verify_presentation",
]

#: Bounds that keep hostile input cheap to refuse.
MAX_PRESENTATION_CHARS = 8 * 1024 * 1024
MAX_PRESENTED_CREDENTIALS = 4096


def presentation_nonce(jws: str) -> str:
    """The challenge (``nonce``) a presentation answers, read *before* verifying it.

    A verifier that hands out many challenges uses it to know which one to check the
    presentation against (:func:`verify_presentation` then checks it for real). Raises
    :class:`~healthnft.errors.InvalidInput` ("not a presentation") for anything that is
    not a JWS whose payload has a ``nonce``.
    """
    try:
        nonce = unverified_claims(jws).get("nonce")
    except InvalidInput:
        raise InvalidInput("not a presentation") from None
    if not isinstance(nonce, str) or not nonce:
        raise InvalidInput("not a presentation")
    return nonce


@dataclass(frozen=True)
class Presentation:
    """A verified presentation: who presented, and the credentials it carried."""

    holder: str
    #: Each enclosed credential, verified with :func:`verify_credential`, in order.
    credentials: list[dict[str, Any]]
    #: The enclosed credentials' ``vc+jwt`` compact JWS, in the same order.
    raw: list[str]


def create_presentation(
    holder_key: Ed25519PrivateKey | ec.EllipticCurvePrivateKey,
    holder_did: str,
    credentials: Sequence[str],
    *,
    challenge: str,
    domain: str,
    now: datetime | None = None,
    ttl_s: int = 300,
) -> str:
    """Sign a ``vp+jwt`` presentation of ``credentials`` for one challenge and domain.

    The challenge is the ``nonce`` claim and the domain the ``aud`` claim; ``iat`` and
    ``exp = iat + ttl_s`` (seconds) bound the presentation's life.
    """
    if isinstance(credentials, str):
        raise TypeError("credentials must be a list of vc+jwt strings")
    for token in credentials:
        if not isinstance(token, str) or token.count(".") != 2:
            raise ValueError("each credential must be a vc+jwt compact JWS")
    if not isinstance(challenge, str) or not challenge:
        raise ValueError("challenge must be a non-empty string")
    if not isinstance(domain, str) or not domain:
        raise ValueError("domain must be a non-empty string")
    if ttl_s <= 0:
        raise ValueError("ttl_s must be positive")
    issued = int(aware(now, "now").timestamp())
    presentation = {
        "@context": [VC_CONTEXT_V2],
        "type": [VP_TYPE],
        "holder": holder_did,
        "verifiableCredential": [
            {
                "@context": [VC_CONTEXT_V2],
                "id": ENVELOPED_VC_PREFIX + token,
                "type": ENVELOPED_VC_TYPE,
            }
            for token in credentials
        ],
        "nonce": challenge,
        "aud": domain,
        "iat": issued,
        "exp": issued + int(ttl_s),
    }
    return sign_did_jws(
        holder_key, holder_did, presentation, typ="vp+jwt", cty="vp", role="holder"
    )


def _int_claim(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CredentialRejected(f"malformed presentation: {name} is not a number")
    return int(value)


def verify_presentation(
    jws: str,
    *,
    challenge: str,
    domain: str,
    now: datetime | None = None,
    challenges: ChallengeStore | None = None,
) -> Presentation:
    """Verify a ``vp+jwt`` presentation and every credential it carries.

    The holder's did:key signature, ``nonce == challenge``, ``aud == domain``, ``iat``/
    ``exp`` (with :data:`CLOCK_SKEW_SECONDS`), then each enveloped credential with
    :func:`verify_credential` (a refusal is reported as ``"credential <n>: <reason>"``);
    a credential whose subject has an ``id`` must name the holder ("credential subject is
    not the holder"). When ``challenges`` is given, the challenge is consumed there last,
    so a replay is refused even by another process sharing the store; otherwise the
    caller must :meth:`ChallengeStore.consume` it.
    """
    vp, holder = verify_did_jws(
        jws,
        typ="vp+jwt",
        cty="vp",
        what="presentation",
        role="holder",
        max_chars=MAX_PRESENTATION_CHARS,
    )
    check_context(vp, "presentation")
    if VP_TYPE not in types_of(vp, "presentation"):
        raise CredentialRejected("malformed presentation: type lacks VerifiablePresentation")
    if vp.get("holder") != holder:
        raise CredentialRejected("holder and signing key differ")
    nonce = vp.get("nonce")
    if not isinstance(nonce, str) or not hmac.compare_digest(
        nonce.encode("utf-8"), str(challenge).encode("utf-8")
    ):
        raise CredentialRejected("presentation is for a different challenge")
    audience = vp.get("aud")
    if not (audience == domain or (isinstance(audience, list) and domain in audience)):
        raise CredentialRejected("presentation is for a different domain")
    issued = _int_claim(vp.get("iat"), "iat")
    expires = _int_claim(vp.get("exp"), "exp")
    if expires <= issued:
        raise CredentialRejected("malformed presentation: exp is not after iat")
    moment = aware(now, "now").timestamp()
    if moment + CLOCK_SKEW_SECONDS < issued:
        raise CredentialRejected("presentation not yet valid")
    if moment >= expires + CLOCK_SKEW_SECONDS:
        raise CredentialRejected("presentation expired")
    enveloped = vp.get("verifiableCredential", [])
    if not isinstance(enveloped, list) or len(enveloped) > MAX_PRESENTED_CREDENTIALS:
        raise CredentialRejected("malformed presentation: verifiableCredential is not a list")
    credentials: list[dict[str, Any]] = []
    raw: list[str] = []
    for n, envelope in enumerate(enveloped, 1):
        kind = envelope.get("type") if isinstance(envelope, dict) else None
        token = envelope.get("id") if isinstance(envelope, dict) else None
        if (
            ENVELOPED_VC_TYPE not in (kind if isinstance(kind, list) else [kind])
            or not isinstance(token, str)
            or not token.startswith(ENVELOPED_VC_PREFIX)
        ):
            raise CredentialRejected(
                f"malformed presentation: credential {n} is not an enveloped vc+jwt"
            )
        token = token[len(ENVELOPED_VC_PREFIX) :]
        try:
            credential = verify_credential(token, now=now)
        except CredentialRejected as exc:
            raise CredentialRejected(f"credential {n}: {exc}") from None
        for subject in subjects_of(credential):
            if "id" in subject and subject["id"] != holder:
                raise CredentialRejected(f"credential {n}: credential subject is not the holder")
        credentials.append(credential)
        raw.append(token)
    if challenges is not None:
        challenges.consume(challenge, domain)
    return Presentation(holder=holder, credentials=credentials, raw=raw)
