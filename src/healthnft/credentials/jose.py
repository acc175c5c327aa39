"""The one JOSE layer: compact JWS over joserfc, and the one base64url pair.

Every signed thing in :mod:`healthnft.credentials` is a JWS in compact serialization:
VC-JOSE credentials and presentations (``EdDSA`` on Ed25519 or ``ES256`` on P-256,
signed by a did:key) and SMART Health Cards (``ES256`` with a raw-DEFLATE payload and a
``zip: DEF`` header). They all go through here, so there is one implementation of the
signature, the encoding and their strictness.

joserfc signs and verifies: ``bench/jose.py`` measured it 2.1-2.5x faster than jwcrypto
to sign and 1.7x faster to verify (EdDSA and ES256; within 1.2-1.8x of the bare
``cryptography`` calls), and its registry gives a per-call algorithm allow-list.
Parsing is done here first, strictly, so that every caller can
say exactly what is wrong with a token before any key is looked up:

- base64url without padding, alphabet checked, and canonical (unused trailing bits
  zero), so a changed character never leaves a token valid;
- the header a JSON object; the payload returned as bytes (a caller decides whether it
  is JSON or DEFLATE'd JSON);
- the signature verified by joserfc against a key the caller chose, under an
  algorithm the caller allows.

Parsing refusals are :class:`~healthnft.errors.InvalidInput` with a short reason naming
the segment (``"header is not base64url"``); callers turn them into their own refusal
(a credential's ``CredentialRejected``, a card's verdict). Nothing here reads health
data into a message.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwa import EdDSAAlgorithm
from joserfc.jwk import ECKey, OKPKey
from joserfc.registry import HeaderParameter

from healthnft.errors import InvalidInput

__all__ = [
    "JWSParts",
    "b64url_decode",
    "b64url_encode",
    "jose_key",
    "json_object",
    "parse_compact",
    "sign_compact",
    "unverified_claims",
    "verify_signature",
]

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
#: Upper bound for :func:`unverified_claims` (a presentation may enclose many credentials).
MAX_PEEK_CHARS = 8 * 1024 * 1024


# --- base64url (RFC 7515 §2: no padding) ------------------------------------------------


def b64url_encode(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(bytes(data)).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    """Strict base64url: no padding, no stray characters, canonical trailing bits.

    Raises :class:`InvalidInput` (``"not base64url"`` / ``"not canonical base64url"``).
    Two different strings never decode to the same bytes.
    """
    if not isinstance(segment, str) or not _B64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise InvalidInput("not base64url")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise InvalidInput("not base64url") from None
    if b64url_encode(raw) != segment:
        raise InvalidInput("not canonical base64url")
    return raw


# --- parsing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class JWSParts:
    """A compact JWS split and decoded, nothing verified yet."""

    header: dict[str, Any]
    payload: bytes
    signature: bytes


def parse_compact(token: str, *, max_chars: int) -> JWSParts:
    """Split and decode ``header.payload.signature``; :class:`InvalidInput` on garbage.

    Reasons: ``"not a compact JWS"``, ``"<segment> is not base64url"``, ``"<segment> is
    not canonical base64url"``, ``"header is not JSON"``, ``"header is not a JSON object"``.
    """
    if not isinstance(token, str) or len(token) > max_chars:
        raise InvalidInput("not a compact JWS")
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidInput("not a compact JWS")
    decoded = []
    for name, part in zip(("header", "payload", "signature"), parts, strict=True):
        try:
            decoded.append(b64url_decode(part))
        except InvalidInput as exc:
            raise InvalidInput(f"{name} is {exc}") from None
    return JWSParts(json_object(decoded[0], "header"), decoded[1], decoded[2])


def json_object(raw: bytes, name: str) -> dict[str, Any]:
    """``raw`` as a JSON object; :class:`InvalidInput` naming ``name`` otherwise."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidInput(f"{name} is not JSON") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{name} is not a JSON object")
    return value


def unverified_claims(token: str) -> dict[str, Any]:
    """The JSON payload of a compact JWS, read *without* checking its signature.

    For routing only (which challenge does this presentation answer? which id does this
    credential carry?): nothing read here may be trusted until the JWS is verified.
    Raises :class:`InvalidInput` for anything that is not a JWS with a JSON-object payload.
    """
    parts = parse_compact(token, max_chars=MAX_PEEK_CHARS)
    return json_object(parts.payload, "payload")


# --- signing and verifying ------------------------------------------------------------------


class _QuietEdDSA(EdDSAAlgorithm):
    """``EdDSA`` without joserfc's per-call RFC 9864 warning.

    RFC 9864 prefers the fully-specified ``Ed25519``; healthnft keeps writing ``EdDSA``
    (what VC-JOSE verifiers expect today) and accepts ``Ed25519`` too.
    """

    security_warning = None


class _Registry(jws.JWSRegistry):
    """Our own algorithm table (joserfc's registry class keeps it per class)."""

    algorithms = {**jws.JWSRegistry.algorithms, "EdDSA": _QuietEdDSA()}
    max_header_length = 4096
    max_payload_length = MAX_PEEK_CHARS
    max_signature_length = 512


_HEADERS = {"zip": HeaderParameter("Compression Algorithm", "str")}  # SHC's zip: DEF


def _registry(algorithms: Collection[str]) -> jws.JWSRegistry:
    # Unknown header parameters are ignored (RFC 7515 §4), as before: not strict.
    return _Registry(header_registry=_HEADERS, algorithms=list(algorithms),
                     strict_check_header=False)  # fmt: skip


_REGISTRIES: dict[frozenset[str], jws.JWSRegistry] = {}


def _registry_for(algorithms: Collection[str]) -> jws.JWSRegistry:
    key = frozenset(algorithms)
    if key not in _REGISTRIES:
        _REGISTRIES[key] = _registry(key)
    return _REGISTRIES[key]


def jose_key(key: Any) -> ECKey | OKPKey:
    """A joserfc key for a ``cryptography`` Ed25519 / P-256 key (or a joserfc key as is)."""
    if isinstance(key, ECKey | OKPKey):
        return key
    if isinstance(key, Ed25519PrivateKey | Ed25519PublicKey):
        return OKPKey.import_key(key)
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and isinstance(
        key.curve, ec.SECP256R1
    ):
        return ECKey.import_key(key)
    raise InvalidInput("key must be an Ed25519 or P-256 key")


def sign_compact(header: Mapping[str, Any], payload: bytes, key: Any) -> str:
    """Sign ``payload`` under ``header`` (which names ``alg``) with ``key``; compact JWS.

    The header is serialized in the order given, minified: callers that need canonical
    bytes pass their keys sorted.
    """
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise InvalidInput("header has no alg")
    try:
        return jws.serialize_compact(dict(header), payload, jose_key(key),
                                     registry=_registry_for([alg]))  # fmt: skip
    except (JoseError, ValueError) as exc:
        raise InvalidInput(f"key cannot sign {alg}") from exc


def verify_signature(token: str, key: Any, algorithms: Collection[str]) -> bool:
    """Whether the signature of compact ``token`` verifies under ``key``.

    ``token`` is expected to have passed :func:`parse_compact`; the header's ``alg``
    must be one of ``algorithms`` and fit the key, else the answer is False.
    """
    try:
        jws.deserialize_compact(token, jose_key(key), registry=_registry_for(algorithms))
    except (JoseError, ValueError, InvalidInput):
        return False
    return True
