"""A SMART Health Card's signed form: raw-DEFLATE'd claims in an ES256 compact JWS.

The header is ``{"zip":"DEF","alg":"ES256","kid":…}`` (``kid`` = RFC 7638 thumbprint of
the issuer's P-256 key) and the payload the *raw* DEFLATE (no zlib header) of minified
JSON claims. Signing and the signature check are :mod:`healthnft.credentials.jose`'s;
this module knows the card's own layer: compression, bounded inflation, issuer keys.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey

from healthnft.credentials.jose import json_object, sign_compact
from healthnft.errors import CredentialRejected, InvalidInput, InvalidRecord
from healthnft.records import exact_json

__all__ = [
    "FHIR_VERSION",
    "HEALTH_CARD_TYPE",
    "MAX_JWS_CHARS",
    "MAX_PAYLOAD_BYTES",
    "inflate_claims",
    "issuer_key",
    "new_issuer_key",
    "public_jwk",
    "sign_card",
]

#: The credential type every SMART Health Card carries in ``vc.type``.
HEALTH_CARD_TYPE = "https://smarthealth.cards#health-card"
#: The FHIR version written into exported cards (resources are validated with R4B models,
#: which read R4 as the rest of healthnft does).
FHIR_VERSION = "4.0.1"
#: Upper bounds that keep hostile input cheap: a JWS (a V22 QR holds 1195 characters;
#: files may carry larger cards) and the inflated payload (a "zip bomb" stops here).
MAX_JWS_CHARS = 256 * 1024
MAX_PAYLOAD_BYTES = 1024 * 1024
#: A compact JWS as it appears in card files and QR content.
COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


# --- issuer keys --------------------------------------------------------------------------


def issuer_key(private: ec.EllipticCurvePrivateKey) -> ECKey:
    """An ES256 issuer JWK for a P-256 private key, ``kid`` = its RFC 7638 thumbprint."""
    if not isinstance(private, ec.EllipticCurvePrivateKey) or not isinstance(
        private.curve, ec.SECP256R1
    ):
        raise CredentialRejected("issuer key must be an EC P-256 key")
    key = ECKey.import_key(private, {"use": "sig", "alg": "ES256"})
    key.ensure_kid()
    return key


def new_issuer_key() -> ECKey:
    """A fresh ES256 issuer key (P-256) with ``kid`` = its RFC 7638 thumbprint."""
    return issuer_key(ec.generate_private_key(ec.SECP256R1()))


def public_jwk(key: ECKey) -> dict[str, str]:
    """The public JWK an issuer publishes for ``key``, in the spec's field set."""
    if not isinstance(key, ECKey) or key.curve_name != "P-256":
        raise CredentialRejected("issuer key must be an EC P-256 key")
    pub = key.as_dict(private=False)
    return {
        "kty": "EC",
        "kid": key.thumbprint(),
        "use": "sig",
        "alg": "ES256",
        "crv": "P-256",
        "x": str(pub["x"]),
        "y": str(pub["y"]),
    }


# --- payload ------------------------------------------------------------------------------


def sign_card(claims: Mapping[str, Any], key: ECKey) -> str:
    """The compact JWS of a card: minified claims, raw DEFLATE, ES256 under ``key``."""
    try:
        minified = orjson.dumps(claims, default=exact_json.default)  # decimals as committed
    except TypeError:
        raise InvalidRecord("resources are not plain JSON data") from None
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = deflater.compress(minified) + deflater.flush()
    header = {"zip": "DEF", "alg": "ES256", "kid": key.thumbprint()}
    try:
        return sign_compact(header, payload, key)
    except InvalidInput:
        raise CredentialRejected("issuer key cannot sign ES256") from None


def inflate_claims(raw: bytes) -> dict[str, Any]:
    """The claims of a raw-DEFLATE payload, inflated to at most :data:`MAX_PAYLOAD_BYTES`.

    Raises :class:`InvalidInput` with the reason (not DEFLATE, too large, trailing data,
    not a JSON object).
    """
    inflater = zlib.decompressobj(wbits=-15)
    try:
        data = inflater.decompress(raw, MAX_PAYLOAD_BYTES + 1)
    except zlib.error:
        raise InvalidInput("payload is not raw DEFLATE") from None
    if len(data) > MAX_PAYLOAD_BYTES or inflater.unconsumed_tail:
        raise InvalidInput(f"payload inflates beyond {MAX_PAYLOAD_BYTES} bytes")
    if not inflater.eof:
        raise InvalidInput("payload is not raw DEFLATE (truncated stream)")
    if inflater.unused_data:
        raise InvalidInput("payload has data after its DEFLATE stream")
    return json_object(data, "payload")

