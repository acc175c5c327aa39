"""Raw cryptographic primitives, private to the vault ("hazmat" in pyca's words).

Nothing outside ``healthnft.vault`` calls these directly: the envelope module
chooses keys, nonces and associated data so callers cannot get them wrong.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12
KEY_BYTES = 32
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


class DecryptionFailed(Exception):
    """Authentication failed: wrong key, wrong associated data, or altered bytes."""


def random_key() -> bytes:
    return os.urandom(KEY_BYTES)


def aead_seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM with a random 96-bit nonce; returns nonce || ciphertext || tag."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def aead_open(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    if len(sealed) < NONCE_BYTES + 16:
        raise DecryptionFailed("ciphertext too short")
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except InvalidTag:
        raise DecryptionFailed("authentication failed") from None


def hpke_seal(public_key: bytes, plaintext: bytes, info: bytes) -> bytes:
    """RFC 9180 base mode, DHKEM(X25519)/HKDF-SHA256/AES-256-GCM; enc || ct."""
    return _SUITE.encrypt(plaintext, X25519PublicKey.from_public_bytes(public_key), info)


def hpke_open(private_key: X25519PrivateKey, sealed: bytes, info: bytes) -> bytes:
    try:
        return _SUITE.decrypt(sealed, private_key, info)
    except Exception:  # the binding raises a generic error on a bad tag or enc
        raise DecryptionFailed("HPKE authentication failed") from None


def derive_x25519(secret: bytes) -> X25519PrivateKey:
    """Derive a participant's X25519 encryption key from its account secret.

    One secret (the keystore's) then protects both signing and decryption.
    """
    seed = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"healthnft/x25519/v1"
    ).derive(secret)
    return X25519PrivateKey.from_private_bytes(seed)
