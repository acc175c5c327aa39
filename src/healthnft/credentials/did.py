"""did:key identifiers for hospitals and patients: created and resolved offline.

A did:key (https://w3c-ccg.github.io/did-method-key/) *is* its public key::

    did:key:z<base58btc( multicodec-varint(key type) || raw public key )>

Two key types are supported:

- Ed25519: multicodec ``ed25519-pub`` 0xed, varint ``0xed 0x01``, 32-byte key;
  these DIDs start with ``did:key:z6Mk``.
- P-256: multicodec ``p256-pub`` 0x1200, varint ``0x80 0x24``, 33-byte SEC1 compressed
  point; these DIDs start with ``did:key:zDn``.

Resolution never touches the network: :func:`resolve_did_key` decodes the key,
:func:`did_document` expands it into the minimal DID document with one ``Multikey``
verification method ``<did>#<multibase key>``, used for both ``assertionMethod`` (issuing
credentials) and ``authentication`` (signing presentations).

Keys: :func:`ed25519_from_secret` derives a participant's Ed25519 DID key from the one
secret in its keystore (HKDF-SHA256), so no second key file is needed; :func:`did_for`
names the DID of any supported private or public key.

Errors are :class:`~healthnft.errors.CredentialRejected` with a one-line reason that
names the problem, never the DID or the key.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from healthnft.errors import CredentialRejected

__all__ = [
    "DID_KEY_PREFIX",
    "ED25519_MULTICODEC",
    "P256_MULTICODEC",
    "b58decode",
    "b58encode",
    "did_document",
    "did_for",
    "did_key_ed25519",
    "did_key_p256",
    "ed25519_from_secret",
    "resolve_did_key",
    "verification_method_id",
]

DID_KEY_PREFIX = "did:key:"
#: Multicodec ``ed25519-pub`` (0xed) as an unsigned varint.
ED25519_MULTICODEC = b"\xed\x01"
#: Multicodec ``p256-pub`` (0x1200) as an unsigned varint.
P256_MULTICODEC = b"\x80\x24"
#: HKDF ``info`` that separates the DID key from every other use of a keystore secret.
ED25519_HKDF_INFO = b"healthnft/ed25519/v1"
#: Longest method-specific id accepted (a P-256 did:key is 49 characters); keeps hostile
#: input cheap to refuse.
_MAX_ID_CHARS = 128

# --- base58btc -----------------------------------------------------------------------
# Hand-written on purpose: the `base58` package is not installed and ~15 lines of code
# is no reason to add a dependency. This is the Bitcoin alphabet (multibase "z").
_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}


def b58encode(data: bytes) -> str:
    """Encode bytes as base58btc (each leading zero byte becomes a leading ``1``)."""
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58_ALPHABET[r])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    """Decode base58btc; :class:`ValueError` for a character outside the alphabet."""
    n = 0
    for c in text:
        digit = _B58_INDEX.get(c)
        if digit is None:
            raise ValueError("not base58btc")
        n = n * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * zeros + body


# --- did:key -------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _did_from_multikey(multikey: bytes) -> str:
    return DID_KEY_PREFIX + "z" + b58encode(multikey)


def did_key_ed25519(public_key_bytes32: bytes) -> str:
    """The did:key of a raw 32-byte Ed25519 public key (``did:key:z6Mk…``)."""
    if not isinstance(public_key_bytes32, bytes | bytearray) or len(public_key_bytes32) != 32:
        raise CredentialRejected("an Ed25519 public key is 32 bytes")
    return _did_from_multikey(ED25519_MULTICODEC + bytes(public_key_bytes32))


def did_key_p256(public_key: ec.EllipticCurvePublicKey) -> str:
    """The did:key of a P-256 public key, compressed point (``did:key:zDn…``)."""
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP256R1
    ):
        raise CredentialRejected("not a P-256 public key")
    point = public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    return _did_from_multikey(P256_MULTICODEC + point)


def did_for(key: Any) -> str:
    """The did:key of an Ed25519 or P-256 key, private or public."""
    if isinstance(key, Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        key = key.public_key()
    if isinstance(key, Ed25519PublicKey):
        return did_key_ed25519(key.public_bytes_raw())
    if isinstance(key, ec.EllipticCurvePublicKey):
        return did_key_p256(key)
    raise CredentialRejected("unsupported key type for did:key (Ed25519 or P-256 only)")


def ed25519_from_secret(secret: bytes) -> Ed25519PrivateKey:
    """Derive an Ed25519 key from a keystore secret with HKDF-SHA256.

    ``info`` is ``b"healthnft/ed25519/v1"`` and there is no salt, so the same secret
    always yields the same DID, and the derived key reveals nothing about the secret.
    """
    if not isinstance(secret, bytes | bytearray) or len(secret) < 16:
        raise CredentialRejected("a key-derivation secret needs at least 16 bytes")
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=ED25519_HKDF_INFO).derive(
        bytes(secret)
    )
    return Ed25519PrivateKey.from_private_bytes(seed)


def _method_specific_id(did: Any) -> str:
    if not isinstance(did, str) or not did.startswith(DID_KEY_PREFIX):
        raise CredentialRejected("malformed DID: not a did:key")
    msid = did[len(DID_KEY_PREFIX) :]
    if not msid.startswith("z") or not 2 <= len(msid) <= _MAX_ID_CHARS:
        raise CredentialRejected("malformed did:key: not a base58btc multibase key")
    return msid


@lru_cache(maxsize=4096)
def _resolve(did: str) -> Ed25519PublicKey | ec.EllipticCurvePublicKey:
    msid = _method_specific_id(did)
    try:
        multikey = b58decode(msid[1:])
    except ValueError:
        raise CredentialRejected("malformed did:key: not a base58btc multibase key") from None
    if multikey.startswith(ED25519_MULTICODEC):
        raw = multikey[len(ED25519_MULTICODEC) :]
        if len(raw) != 32:
            raise CredentialRejected("malformed did:key: Ed25519 key is not 32 bytes")
        return Ed25519PublicKey.from_public_bytes(raw)
    if multikey.startswith(P256_MULTICODEC):
        point = multikey[len(P256_MULTICODEC) :]
        if len(point) != 33 or point[0] not in (2, 3):
            raise CredentialRejected(
                "malformed did:key: P-256 key is not a 33-byte compressed point"
            )
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        except ValueError:
            raise CredentialRejected("malformed did:key: not a point on P-256") from None
    raise CredentialRejected("unsupported did:key: unknown multicodec (Ed25519 or P-256 only)")


def resolve_did_key(did: str) -> Ed25519PublicKey | ec.EllipticCurvePublicKey:
    """The public key a did:key names, decoded offline (results are cached)."""
    if not isinstance(did, str):
        raise CredentialRejected("malformed DID: not a did:key")
    return _resolve(did)


def verification_method_id(did: str) -> str:
    """The id of a did:key's only verification method: ``did#<multibase key>``."""
    return did + "#" + _method_specific_id(did)


def did_document(did: str) -> dict[str, Any]:
    """The minimal DID document of a did:key, one Multikey for assertion and authentication."""
    resolve_did_key(did)
    vm = verification_method_id(did)
    return {
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
        "id": did,
        "verificationMethod": [
            {
                "id": vm,
                "type": "Multikey",
                "controller": did,
                "publicKeyMultibase": did[len(DID_KEY_PREFIX) :],
            }
        ],
        "assertionMethod": [vm],
        "authentication": [vm],
    }
