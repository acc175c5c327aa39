"""Content-addressed storage for ciphertexts, behind a small interface.

The default backend keeps blobs in SQLite (``HOME/vault.sqlite``, table
``blobs(digest BLOB PRIMARY KEY, data BLOB)``, ``digest = sha256(data)``):
one file per record capped the pipeline near 650 records/s on this disk, while
SQLite stores ~100k rows/s. Writes are idempotent, so retrying a batch is safe.
The file is opened under the home's one connection policy and schema ladder
(:mod:`healthnft.store`; ``user_version`` 2).

Beside each record's ciphertext the vault keeps its key card (table ``key_cards``,
:mod:`healthnft.vault.keycards`), addressed by the same digest: deleting a blob deletes
its card, so nothing that opens a shredded record outlives it.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from healthnft.store import VAULT, open_database
from healthnft.vault.keycards import KeyCard


class BlobStore(Protocol):
    """Where ciphertexts live. Implementations must be idempotent on ``put``."""

    def put_many(self, blobs: Iterable[bytes]) -> list[bytes]:
        """Store blobs; return their sha256 digests in order."""

    def get(self, digest: bytes) -> bytes | None:
        """The blob with this digest, or None."""

    def delete_many(self, digests: Iterable[bytes]) -> None:
        """Remove blobs (missing ones are ignored)."""


class KeyCardStore(Protocol):
    """Where key cards live: beside the ciphertexts they open."""

    def keep_cards(self, cards: Iterable[KeyCard]) -> None:
        """Store (or replace) the cards of ciphertexts already stored."""

    def cards(self, token_id: int | None = None) -> list[KeyCard]:
        """Every readable card (of one token), oldest token first."""

    def shred_token(self, token_id: int) -> None:
        """Delete every card of a token and every blob (and chunk) they name."""


class Vault(BlobStore, KeyCardStore, Protocol):
    """A blob store that keeps key cards too (what minting and transfers need)."""

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the file (so deleted pages are zeroed there)."""


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
        rows = [(d,) for d in digests]
        with self._db.write() as c:
            c.executemany("DELETE FROM blobs WHERE digest = ?", rows)
            c.executemany("DELETE FROM key_cards WHERE digest = ?", rows)

    def keep_cards(self, cards: Iterable[KeyCard]) -> None:
        rows = [(card.digest, card.token_id, card.to_bytes()) for card in cards]
        with self._db.write() as c:
            c.executemany(
                "INSERT OR REPLACE INTO key_cards (digest, token_id, card) VALUES (?, ?, ?)", rows
            )

    def cards(self, token_id: int | None = None) -> list[KeyCard]:
        """Cards that decode; one this version cannot read is skipped (and reported by
        ``doctor`` through :meth:`card_count`)."""
        where, args = ("WHERE token_id = ?", (token_id,)) if token_id is not None else ("", ())
        out = []
        for (data,) in self._db.query(
            f"SELECT card FROM key_cards {where} ORDER BY token_id, digest", args
        ):
            try:
                out.append(KeyCard.from_bytes(data))
            except ValueError:
                continue
        return out

    def card_count(self) -> int:
        return int(self._db.scalar("SELECT count(*) FROM key_cards"))

    def shred_token(self, token_id: int) -> None:
        cards = self.cards(token_id)
        digests = {d for card in cards for d in (card.digest, *card.chunks)}
        with self._db.write() as c:
            c.executemany("DELETE FROM blobs WHERE digest = ?", [(d,) for d in digests])
            c.execute("DELETE FROM key_cards WHERE token_id = ?", (token_id,))

    def checkpoint(self) -> None:
        """Fold the WAL into the database (secure_delete zeroes freed pages there)."""
        self._db.checkpoint()

    def close(self) -> None:
        self._db.close()
