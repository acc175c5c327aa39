"""What an owner does to a record: transfer it to another participant, or burn it.

Both are ordered so that a crash leaves nothing lost and a retry finishes the job.

- **Transfer re-encrypts.** The record gets a fresh DEK, sealed under a fresh
  key that only the new owner (and the issuer) can unwrap, so a key the old owner
  kept opens nothing. The re-encrypted copy is stored and journaled *before* the
  on-chain transfer; after it, the catalogue switches to the copy and the old
  ciphertext is deleted. A retry completes a journaled transfer.
  What a reader already saw cannot be taken back: transfer stops future access.
- **Burn is crypto-shredding.** The token is burned on chain first (so nothing is
  destroyed for a transfer that then fails), then the ciphertext and its sealed
  DEK are deleted and the SQLite WAL files checkpointed so no copy lingers. The
  commitment and proof stay: the chain keeps only that a token existed. A retry
  on an already-burned token finishes the shredding.
"""

from __future__ import annotations

import hashlib
import os

from healthnft.errors import AccessDenied, UnknownParticipant
from healthnft.keys import Identity
from healthnft.ledger.client import Ledger
from healthnft.vault import BatchKey, BlobStore, seal
from healthnft.vault.catalog import Catalog
from healthnft.vault.custody import Custodians
from healthnft.wallet.wallet import Wallet


class OwnerActions:
    """Transfer and burn, for the owner of a record."""

    def __init__(self, ledger: Ledger, catalog: Catalog, blobs: BlobStore,
                 custodians: Custodians | None = None) -> None:  # fmt: skip
        self.custodians = custodians
        self.ledger = ledger
        self.catalog = catalog
        self.blobs = blobs
        self.wallet = Wallet(ledger, catalog, blobs)

    def burn(self, owner: Identity, token_id: int) -> None:
        """Burn ``token_id`` on chain and shred its record (idempotent)."""
        row = self.catalog.record(token_id)
        if row is None:
            raise UnknownParticipant(f"token {token_id} is not in this home's catalogue")
        if not self.ledger.is_burned(token_id):
            chain_owner = self.ledger.owner_of(token_id)
            if chain_owner is None or chain_owner.lower() != owner.address.lower():
                raise AccessDenied(f"token {token_id}: only its owner can burn it")
            self.ledger.burn(owner.account, token_id)
        digest = self.catalog.shred(token_id)
        staged = self.catalog.drop_staged_transfer(token_id)
        self.blobs.delete_many([d for d in (digest, staged) if d])
        self.catalog.checkpoint()
        self.blobs.checkpoint()

    def transfer(self, owner: Identity, token_id: int, to: str, to_enc_key: bytes,
                 issuer_enc_key: bytes) -> None:  # fmt: skip
        """Give ``token_id`` to ``to`` (a registered participant), re-encrypted for them."""
        row = self.catalog.record(token_id)
        if row is None:
            raise UnknownParticipant(f"token {token_id} is not in this home's catalogue")
        staged = self.catalog.staged_transfer(token_id)
        chain_owner = self.ledger.owner_of(token_id)
        if staged and chain_owner and chain_owner.lower() == staged[0].lower():
            self._finish(token_id)  # a crash after the on-chain transfer: complete it
            return
        if chain_owner is None or chain_owner.lower() != owner.address.lower():
            raise AccessDenied(f"token {token_id}: only its owner can transfer it")
        if not self.ledger.is_member(to):
            raise UnknownParticipant(f"{to} is not a registered participant of this network")
        # Re-encrypt under a fresh DEK and a fresh key only the new owner can unwrap.
        plain = self.wallet._decrypt(row, owner)
        key_ref = os.urandom(16)
        new_key = BatchKey.new()
        cust = self.custodians
        custody_keys = {addr: BatchKey.new() for addr, _ in cust.members} if cust else {}
        custody = (token_id, cust.threshold, custody_keys) if cust else None
        sealed = seal(plain, row.commitment, new_key, custody)
        self.blobs.put_many([sealed.ciphertext])
        if cust:  # the new DEK is re-split; the switch happens with the record's
            self.catalog.add_custody(
                key_ref,
                {a: custody_keys[a].wrap_for(pub, key_ref) for a, pub in cust.members},
                [(token_id, a, s) for a, s in (sealed.custodian_shares or {}).items()],
            )
        self.catalog.stage_transfer(
            token_id, to, key_ref,
            {to: new_key.wrap_for(to_enc_key, key_ref),
             row.issuer: new_key.wrap_for(issuer_enc_key, key_ref)},
            hashlib.sha256(sealed.ciphertext).digest(), sealed.sealed_dek,
        )  # fmt: skip
        call = self.ledger.token.functions.transferFrom(owner.address, to, token_id)
        try:
            self.ledger.transact(owner.account, call)
        except Exception:
            old = self.catalog.drop_staged_transfer(token_id)
            if old:
                self.blobs.delete_many([old])
            raise
        self._finish(token_id)

    def _finish(self, token_id: int) -> None:
        old_digest = self.catalog.complete_transfer(token_id)
        if old_digest:
            self.blobs.delete_many([old_digest])
        self.catalog.checkpoint()
        self.blobs.checkpoint()
