"""The key that seals the DEKs of one minting batch (and a custodian's shares).

It never leaves this object except HPKE-wrapped for a reader: callers seal and open
with it, they never read it.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from healthnft.errors import Tampered
from healthnft.vault import _primitives as p

_KEK_INFO = b"healthnft/batch-key/v1|"


class BatchKey:
    """The key that seals the DEKs of one minting batch."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) != p.KEY_BYTES:
            raise ValueError("batch key must be 32 bytes")
        self._key = key

    @classmethod
    def new(cls) -> BatchKey:
        return cls(p.random_key())

    def wrap_for(self, public_key: bytes, batch_ref: bytes) -> bytes:
        """HPKE-wrap this key for a reader's X25519 public key."""
        return p.hpke_seal(public_key, self._key, _KEK_INFO + batch_ref)

    def seal(self, data: bytes, aad: bytes) -> bytes:
        """AES-256-GCM under this key (a DEK, a custodian share), bound to ``aad``."""
        return p.aead_seal(self._key, data, aad)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        """The inverse of :meth:`seal`; ``p.DecryptionFailed`` when anything differs."""
        return p.aead_open(self._key, sealed, aad)

    @classmethod
    def unwrap(cls, private_key: X25519PrivateKey, wrapped: bytes, batch_ref: bytes) -> BatchKey:
        try:
            return cls(p.hpke_open(private_key, wrapped, _KEK_INFO + batch_ref))
        except p.DecryptionFailed:
            raise Tampered("batch key cannot be unwrapped with this key") from None
