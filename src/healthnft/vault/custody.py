"""k-of-n custody of record keys: a patient can be offline and still share.

Each record's DEK is split with Shamir's scheme (pycryptodome's implementation,
over GF(2^128), on the DEK's two 16-byte halves) into one share per custodian.
Share *i* is sealed (AES-256-GCM, bound to token id and commitment) under a key
of custodian *i* for the batch, and that key is HPKE-wrapped once per batch for
the custodian: a custodian can open only its own shares, and any k-1 shares say
nothing about the DEK. A custodian that finds a valid grant on chain re-wraps
its share for the requester with HPKE; the requester combines k of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from Crypto.Protocol.SecretSharing import Shamir

from healthnft.errors import AccessDenied, Tampered
from healthnft.vault import _primitives as p
from healthnft.vault.batchkey import BatchKey
from healthnft.vault.plaintext import RecordPlaintext

_SHARE_AAD = b"healthnft/custodian-share/v1|"
_RELEASE_INFO = b"healthnft/share-release/v1|"
_SHARE_BYTES = 1 + 16 + 16  # index, then the shares of both halves


@dataclass(frozen=True)
class Custodians:
    """The custodian set a batch is split for: (address, X25519 key) and threshold k."""

    members: tuple[tuple[str, bytes], ...]
    threshold: int

    def __post_init__(self) -> None:
        if not 1 < self.threshold <= len(self.members) <= 255:
            raise ValueError("custody needs 1 < k <= n <= 255")


def split_key(dek: bytes, k: int, n: int) -> list[bytes]:
    """Shamir k-of-n over the two 16-byte halves of a 32-byte key."""
    low = Shamir.split(k, n, dek[:16])
    high = Shamir.split(k, n, dek[16:])
    return [bytes([i]) + a + b for (i, a), (_, b) in zip(low, high, strict=True)]


def combine_key(shares: list[bytes]) -> bytes:
    if any(len(s) != _SHARE_BYTES for s in shares):
        raise Tampered("a key share has the wrong length")
    low = Shamir.combine([(s[0], s[1:17]) for s in shares])
    high = Shamir.combine([(s[0], s[17:]) for s in shares])
    return low + high


def _aad(token_id: int, commitment: bytes) -> bytes:
    return _SHARE_AAD + token_id.to_bytes(32, "big") + commitment


def seal_share(share: bytes, custodian_key: BatchKey, token_id: int, commitment: bytes) -> bytes:
    return custodian_key.seal(share, _aad(token_id, commitment))


def open_share(sealed: bytes, custodian_key: BatchKey, token_id: int, commitment: bytes) -> bytes:
    try:
        return custodian_key.open(sealed, _aad(token_id, commitment))
    except p.DecryptionFailed:
        raise Tampered(f"token {token_id}: custodian share does not authenticate") from None


def release_share(share: bytes, requester_enc_key: bytes, token_id: int,
                  commitment: bytes) -> bytes:  # fmt: skip
    """A custodian's share, HPKE-wrapped for the requester and bound to the record."""
    return p.hpke_seal(requester_enc_key, share, _RELEASE_INFO + _aad(token_id, commitment))


def unwrap_release(wrapped: bytes, token_id: int, commitment: bytes,
                   requester_private: object) -> bytes:  # fmt: skip
    """The requester's side: one released share, unwrapped and checked for shape.

    :class:`Tampered` when it is not a share released for this key and this record,
    so a custodian answering garbage is caught before any share is combined."""
    try:
        share = p.hpke_open(requester_private, wrapped,  # type: ignore[arg-type]
                            _RELEASE_INFO + _aad(token_id, commitment))  # fmt: skip
    except (p.DecryptionFailed, ValueError):
        raise Tampered(f"token {token_id}: a released share is not for this key") from None
    if len(share) != _SHARE_BYTES or share[0] == 0:
        raise Tampered(f"token {token_id}: a released share has the wrong shape")
    return share


def share_index(share: bytes) -> int:
    """Which custodian (1-based, in the set's order) a share was split for."""
    return share[0]


def open_with_shares(ciphertext: bytes, shares: list[bytes], commitment: bytes,
                     token_id: int) -> RecordPlaintext:  # fmt: skip
    """Rebuild the DEK from k unwrapped shares, open the record and check its commitment.

    A wrong share (or too few) fails AES-GCM's tag: :class:`Tampered`, nothing opened."""
    from healthnft.records.commitment import matches

    dek = combine_key(shares)
    try:
        record = RecordPlaintext.unpack(p.aead_open(dek, ciphertext, commitment))
    except p.DecryptionFailed:
        raise Tampered(f"token {token_id}: shares do not open the record "
                       "(too few shares, or altered data)") from None  # fmt: skip
    if not matches(record.canonical, record.salt, commitment):
        raise Tampered(f"token {token_id}: decrypted record does not match its commitment")
    return record


def open_with_released_shares(
    ciphertext: bytes, released: list[bytes], commitment: bytes, token_id: int,
    requester_private: object,
) -> RecordPlaintext:  # fmt: skip
    """The requester's side: unwrap k released shares, rebuild the DEK, open and check."""
    shares = []
    for wrapped in released:
        try:
            shares.append(p.hpke_open(requester_private, wrapped,  # type: ignore[arg-type]
                                      _RELEASE_INFO + _aad(token_id, commitment)))  # fmt: skip
        except p.DecryptionFailed:
            raise AccessDenied(f"token {token_id}: a released share is not for this key") from None
    return open_with_shares(ciphertext, shares, commitment, token_id)
