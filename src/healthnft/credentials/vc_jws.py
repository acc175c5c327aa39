"""Compact JWS signed by a did:key: the envelope of VC-JOSE credentials and presentations.

Both ``vc+jwt`` credentials and ``vp+jwt`` presentations are a JWS whose header is::

    {"alg": "EdDSA" | "ES256", "cty": "vc" | "vp", "kid": "<did:key>#<multibase key>",
     "typ": "vc+jwt" | "vp+jwt"}

(keys sorted, so the header bytes are canonical) over a JCS (RFC 8785) payload. The
verifier takes the key from the ``kid`` itself: it must be the only verification method
of a did:key, and the signature is checked against the key that DID encodes *before*
any claim is read. The signature itself is :mod:`healthnft.credentials.jose`'s (joserfc).

Refusals are :class:`~healthnft.errors.CredentialRejected` reading ``"malformed <what>:
…"`` or ``"forged: … signature does not verify for the <role>'s key"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from healthnft.credentials.did import did_for, resolve_did_key, verification_method_id
from healthnft.credentials.jose import json_object, parse_compact, sign_compact, verify_signature
from healthnft.errors import CredentialRejected, InvalidInput

__all__ = ["aware", "jcs", "sign_did_jws", "verify_did_jws"]

_ED25519_ALGS = frozenset({"EdDSA", "Ed25519"})
_ALLOWED_ALGS = _ED25519_ALGS | {"ES256"}


def jcs(value: Mapping[str, Any]) -> bytes:
    """RFC 8785 bytes of ``value``; :class:`ValueError` for anything but plain JSON data."""
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        raise ValueError(
            "credential content is not canonical JSON (str, int, list, dict…)"
        ) from None


def aware(value: datetime | None, name: str) -> datetime:
    """``value`` if timezone-aware, now (UTC) if None; :class:`ValueError` if naive."""
    if value is None:
        return datetime.now(UTC)
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return value


def _alg_for(key: Any) -> str:
    if isinstance(key, Ed25519PrivateKey):
        return "EdDSA"
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    raise CredentialRejected("signing key must be an Ed25519 or P-256 private key")


def sign_did_jws(
    key: Ed25519PrivateKey | ec.EllipticCurvePrivateKey,
    signer_did: str,
    payload: Mapping[str, Any],
    *,
    typ: str,
    cty: str,
    role: str,
) -> str:
    """Sign ``payload`` (JCS) as ``signer_did``, whose key ``key`` must be."""
    alg = _alg_for(key)
    if did_for(key) != signer_did:
        raise CredentialRejected(f"{role} and signing key differ")
    header = {"alg": alg, "cty": cty, "kid": verification_method_id(signer_did), "typ": typ}
    return sign_compact(header, jcs(payload), key)


def verify_did_jws(
    token: Any, *, typ: str, cty: str, what: str, role: str, max_chars: int
) -> tuple[dict[str, Any], str]:
    """Check header and signature of a compact JWS; return (payload, signer DID)."""
    try:
        parts = parse_compact(token, max_chars=max_chars)
    except InvalidInput as exc:
        raise CredentialRejected(f"malformed {what}: {exc}") from None
    header = parts.header
    alg = header.get("alg")
    if alg not in _ALLOWED_ALGS:
        raise CredentialRejected(f"malformed {what}: alg must be EdDSA or ES256")
    if header.get("typ") != typ:
        raise CredentialRejected(f"malformed {what}: typ must be {typ}")
    if header.get("cty", cty) != cty:
        raise CredentialRejected(f"malformed {what}: cty must be {cty}")
    if "crit" in header:
        raise CredentialRejected(f"malformed {what}: unsupported critical header")
    kid = header.get("kid")
    if not isinstance(kid, str) or "#" not in kid:
        raise CredentialRejected(f"malformed {what}: kid is not a did:key verification method")
    signer = kid.split("#", 1)[0]
    key = resolve_did_key(signer)
    if kid != verification_method_id(signer):
        raise CredentialRejected(f"malformed {what}: kid is not a verification method of its DID")
    if (alg in _ED25519_ALGS) != isinstance(key, Ed25519PublicKey):
        raise CredentialRejected(f"malformed {what}: alg does not match the {role}'s key type")
    if not verify_signature(token, key, [alg]):
        raise CredentialRejected(
            f"forged: {'' if what == 'credential' else what + ' '}"
            f"signature does not verify for the {role}'s key"
        )
    try:
        payload = json_object(parts.payload, "payload")
    except InvalidInput as exc:
        raise CredentialRejected(f"malformed {what}: {exc}") from None
    return payload, signer
