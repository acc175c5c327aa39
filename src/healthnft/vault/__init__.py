"""vault: encrypted, content-addressed storage of records.

Public surface: seal/open records (:mod:`~healthnft.vault.envelope`), the blob
store interface and its SQLite backend, and the local catalogue of minted
records. Raw primitives stay in ``_primitives``.
"""

from healthnft.vault.blobstore import BlobStore, SqliteBlobStore, digest_of
from healthnft.vault.envelope import (
    BatchKey,
    RecordPlaintext,
    SealedRecord,
    encryption_key,
    open_sealed,
    public_bytes,
    seal,
)

__all__ = [
    "BatchKey",
    "BlobStore",
    "RecordPlaintext",
    "SealedRecord",
    "SqliteBlobStore",
    "digest_of",
    "encryption_key",
    "open_sealed",
    "public_bytes",
    "seal",
]
