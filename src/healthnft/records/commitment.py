"""Salted commitments: what the chain learns about a record (and nothing more).

``commitment = sha256(DOMAIN || salt || canonical bytes)`` with a fresh 32-byte
random salt per record. The salt travels encrypted with the record, so a
low-entropy value (a lab result, a yes/no condition) cannot be guessed by
hashing candidates against the chain.

A commitment is checked against the canonical bytes stored with the record, never
against a re-canonicalized copy: records keep verifying whatever version of the
canonical form minted them (before exact decimals, 5.60 was committed as ``5.6``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

DOMAIN = b"healthnft/record-commitment/v1\x00"
SALT_BYTES = 32


def new_salt() -> bytes:
    """A fresh random salt."""
    return secrets.token_bytes(SALT_BYTES)


def commit(canonical: bytes, salt: bytes) -> bytes:
    """The 32-byte commitment to ``canonical`` under ``salt``."""
    if len(salt) != SALT_BYTES:
        raise ValueError("salt must be 32 bytes")
    return hashlib.sha256(DOMAIN + salt + canonical).digest()


def matches(canonical: bytes, salt: bytes, commitment: bytes) -> bool:
    """Constant-time check that ``commitment`` opens to ``canonical`` with ``salt``."""
    return hmac.compare_digest(commit(canonical, salt), commitment)
