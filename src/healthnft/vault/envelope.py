"""Envelope encryption of records: the vault's safe, decision-free surface.

Each record gets a fresh random 256-bit data key (DEK) and is sealed with
AES-256-GCM, its commitment as associated data (a ciphertext cannot be moved
under another token). The DEK is itself sealed under a per-batch key
(KEK, AES-256-GCM, the commitment again as associated data), and the KEK is
wrapped with HPKE (RFC 9180, X25519) once per reader. That costs two HPKE
operations per *batch* instead of per record, while a single record can still
be shared (unwrap its DEK, HPKE-wrap it for the grantee) or shredded alone
(delete its ciphertext and its sealed DEK).

The plaintext is ``header-json || "\\n" || canonical bytes``; the header carries
the salt and the private metadata (type, category, date). :func:`seal` refuses
a commitment that does not open to the plaintext, and :func:`open_sealed`
re-checks it after decryption, so neither side can skip the check.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from healthnft.errors import Tampered
from healthnft.records.commitment import matches
from healthnft.vault import _primitives as p
from healthnft.vault.batchkey import BatchKey
from healthnft.vault.custody import seal_share, split_key
from healthnft.vault.plaintext import RecordPlaintext

__all__ = ["BatchKey", "RecordPlaintext", "SealedRecord", "encryption_key", "open_sealed",
           "public_bytes", "seal"]

_DEK_INFO = b"healthnft/record-key/v1|"


@dataclass(frozen=True)
class SealedRecord:
    """A record's ciphertext, its DEK sealed under the batch key, and custodian shares."""

    ciphertext: bytes
    sealed_dek: bytes
    custodian_shares: dict[str, bytes] | None = None


def seal(
    record: RecordPlaintext,
    commitment: bytes,
    batch_key: BatchKey,
    custody: tuple[int, int, dict[str, BatchKey]] | None = None,
) -> SealedRecord:
    """Encrypt a record under a fresh DEK bound to ``commitment``.

    ``custody`` = (token id, threshold k, custodian address -> that custodian's
    batch key): the DEK is also split k-of-n, one sealed share per custodian.
    """
    if not matches(record.canonical, record.salt, commitment):
        raise ValueError("commitment does not open to this record")
    dek = p.random_key()
    ciphertext = p.aead_seal(dek, record.pack(), commitment)
    shares = None
    if custody is not None:
        token_id, k, keys = custody
        split = split_key(dek, k, len(keys))
        shares = {addr: seal_share(share, key, token_id, commitment)
                  for (addr, key), share in zip(keys.items(), split, strict=True)}  # fmt: skip
    sealed_dek = batch_key.seal(dek, _DEK_INFO + commitment)
    return SealedRecord(ciphertext, sealed_dek, shares)


def open_sealed(
    ciphertext: bytes, sealed_dek: bytes, commitment: bytes, batch_key: BatchKey
) -> RecordPlaintext:
    """Decrypt and check a record; any mismatch raises :class:`Tampered`."""
    try:
        dek = batch_key.open(sealed_dek, _DEK_INFO + commitment)
        record = RecordPlaintext.unpack(p.aead_open(dek, ciphertext, commitment))
    except p.DecryptionFailed:
        raise Tampered("ciphertext or key does not match the record's commitment") from None
    if not matches(record.canonical, record.salt, commitment):
        raise Tampered("decrypted record does not match its commitment")
    return record


def encryption_key(secret: bytes) -> X25519PrivateKey:
    """A participant's X25519 key, derived from its account secret."""
    return p.derive_x25519(secret)


def public_bytes(private_key: X25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
