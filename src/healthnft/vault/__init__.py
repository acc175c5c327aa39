"""vault: encrypted, content-addressed storage of records.

Public surface: seal/open records (:mod:`~healthnft.vault.envelope`), stream large
records chunk by chunk (:mod:`~healthnft.vault.stream`), the blob store interface and
its SQLite backend, and the local catalogue of minted records. Raw primitives stay in
``_primitives``.
"""

from healthnft.vault.blobstore import BlobStore, KeyCardStore, SqliteBlobStore, Vault, digest_of
from healthnft.vault.envelope import (
    BatchKey,
    RecordPlaintext,
    SealedRecord,
    encryption_key,
    open_sealed,
    public_bytes,
    seal,
)
from healthnft.vault.keycards import KeyCard
from healthnft.vault.stream import StreamIndex, delete_stream, open_stream, seal_stream

__all__ = [
    "BatchKey",
    "BlobStore",
    "KeyCard",
    "KeyCardStore",
    "RecordPlaintext",
    "SealedRecord",
    "SqliteBlobStore",
    "Vault",
    "StreamIndex",
    "delete_stream",
    "digest_of",
    "encryption_key",
    "open_sealed",
    "open_stream",
    "public_bytes",
    "seal",
    "seal_stream",
]
