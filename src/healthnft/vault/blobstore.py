"""Content-addressed storage for ciphertexts, behind a small interface.

The default backend keeps blobs in SQLite (``HOME/vault.sqlite``, table
``blobs(digest BLOB PRIMARY KEY, data BLOB)``, ``digest = sha256(data)``):
one file per record capped the pipeline near 650 records/s on this disk, while
SQLite stores ~100k rows/s. Writes are idempotent, so retrying a batch is safe.
The file is opened under the home's one connection policy and schema ladder
(:mod:`healthnft.store`; ``user_version`` 1).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from healthnft.store import VAULT, open_database


class BlobStore(Protocol):
    """Where ciphertexts live. Implementations must be idempotent on ``put``."""

    def put_many(self, blobs: Iterable[bytes]) -> list[bytes]:
        """Store blobs; return their sha256 digests in order."""

    def get(self, digest: bytes) -> bytes | None:
        """The blob with this digest, or None."""

    def delete_many(self, digests: Iterable[bytes]) -> None:
        """Remove blobs (missing ones are ignored)."""


def digest_of(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class SqliteBlobStore:
    """The default :class:`BlobStore`: one SQLite table."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_database(path, VAULT)

    @property
    def _conn(self) -> sqlite3.Connection:
        """The raw connection (tests inspect and constrain the file through it)."""
        return self._db.connection

    def put_many(self, blobs: Iterable[bytes]) -> list[bytes]:
        rows = [(digest_of(b), b) for b in blobs]
        with self._db.write() as c:
            c.executemany("INSERT OR IGNORE INTO blobs (digest, data) VALUES (?, ?)", rows)
        return [d for d, _ in rows]

    def get(self, digest: bytes) -> bytes | None:
        return self._db.scalar("SELECT data FROM blobs WHERE digest = ?", (digest,))

    def delete_many(self, digests: Iterable[bytes]) -> None:
        with self._db.write() as c:
            c.executemany("DELETE FROM blobs WHERE digest = ?", [(d,) for d in digests])

    def checkpoint(self) -> None:
        """Fold the WAL into the database (secure_delete zeroes freed pages there)."""
        self._db.checkpoint()

    def close(self) -> None:
        self._db.close()
