"""Staged transfers: a record re-encrypted for its next owner, before the chain moves it.

Table ``staged_transfers`` of ``index.sqlite`` (plus the new key's readers in
``batch_keys``). A transfer re-seals the record under a fresh key for the new owner and
journals the copy here *before* the on-chain transfer; once the chain has moved the
token, :meth:`Transfers.complete_transfer` switches the record to the copy in one
transaction; if the transfer is abandoned, :meth:`Transfers.drop_staged_transfer`
forgets it. Either way the caller deletes the blob that is no longer referenced.
"""

from __future__ import annotations

from typing import NamedTuple

from healthnft.store.connection import Database


class StagedTransfer(NamedTuple):
    new_owner: str
    key_ref: bytes
    blob_digest: bytes
    sealed_dek: bytes


class Transfers:
    """The staged transfers of one home."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def stage_transfer(self, token_id: int, new_owner: str, key_ref: bytes,
                       keys: dict[str, bytes], blob_digest: bytes,
                       sealed_dek: bytes) -> None:  # fmt: skip
        """Journal a re-encrypted copy before the on-chain transfer."""
        with self._db.write() as c:
            c.execute("DELETE FROM staged_transfers WHERE token_id = ?", (token_id,))
            c.execute(
                "INSERT INTO staged_transfers (token_id, new_owner, key_ref, blob_digest, "
                "sealed_dek) VALUES (?, ?, ?, ?, ?)",
                (token_id, new_owner, key_ref, blob_digest, sealed_dek),
            )
            c.executemany(
                "INSERT OR REPLACE INTO batch_keys (batch_ref, reader, wrapped) VALUES (?, ?, ?)",
                [(key_ref, reader, wrapped) for reader, wrapped in keys.items()],
            )

    def staged_transfer(self, token_id: int) -> StagedTransfer | None:
        row = self._db.one(
            "SELECT new_owner, key_ref, blob_digest, sealed_dek FROM staged_transfers "
            "WHERE token_id = ?",
            (token_id,),
        )
        return StagedTransfer(*row) if row else None

    def complete_transfer(self, token_id: int) -> bytes | None:
        """Switch the record to its re-encrypted copy; returns the old blob digest."""
        with self._db.write() as c:
            staged = self.staged_transfer(token_id)
            if staged is None:
                return None
            (old_digest,) = c.execute(
                "SELECT blob_digest FROM records WHERE token_id = ?", (token_id,)
            ).fetchone()
            c.execute(
                "UPDATE records SET owner = ?, key_ref = ?, blob_digest = ?, sealed_dek = ? "
                "WHERE token_id = ?",
                (staged.new_owner, staged.key_ref, staged.blob_digest, staged.sealed_dek,
                 token_id),
            )  # fmt: skip
            # Shares of the old DEK are now useless; keep only the re-split ones.
            c.execute(
                "DELETE FROM custodian_shares WHERE token_id = ? AND key_ref != ?",
                (token_id, staged.key_ref),
            )
            c.execute("DELETE FROM staged_transfers WHERE token_id = ?", (token_id,))
        return old_digest

    def drop_staged_transfer(self, token_id: int) -> bytes | None:
        """Forget a staged copy and its key; returns the copy's blob digest to delete."""
        with self._db.write() as c:
            staged = self.staged_transfer(token_id)
            if staged is None:
                return None
            c.execute("DELETE FROM staged_transfers WHERE token_id = ?", (token_id,))
            c.execute("DELETE FROM batch_keys WHERE batch_ref = ?", (staged.key_ref,))
            c.execute("DELETE FROM custodian_shares WHERE key_ref = ?", (staged.key_ref,))
            c.execute("DELETE FROM custodian_keys WHERE key_ref = ?", (staged.key_ref,))
        return staged.blob_digest
