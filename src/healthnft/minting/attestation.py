"""Issuer attestations for minting: the hospital signs each record before it is minted.

A HealthRecordAttestation (a VC-JOSE credential, :mod:`healthnft.credentials.vc`)
binds a record's commitment to the patient's DID and wallet. Here the minting hospital
signs one per record (:func:`issuer_attestor`), and :class:`AnnouncingAttestor` also
checks each batch against the chain as soon as it is signed, so a person watching sees
the verification happen. Whether the chain vouches for an attestation (issuer bound to
a registered hospital, patient DID bound to the wallet, not revoked) is
:class:`healthnft.credentials.trust.ChainTrust`'s job; the pipeline's gate asks it too.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from healthnft.credentials.trust import ChainTrust
from healthnft.credentials.vc import attest_record
from healthnft.errors import CredentialRejected
from healthnft.keys import Identity
from healthnft.ledger.client import Ledger
from healthnft.records import Record

__all__ = ["AnnouncingAttestor", "Attestor", "issuer_attestor"]

#: (record, commitment, patient DID, wallet) -> attestation JWS
Attestor = Callable[[Record, bytes, str, str], str]


def issuer_attestor(issuer: Identity) -> Attestor:
    """The default attestor: the minting hospital signs with its own DID key."""
    key, did = issuer.did_private, issuer.did  # derived once, not per record

    def attest(record: Record, commitment: bytes, subject_did: str, wallet: str) -> str:
        return attest_record(
            key,
            did,
            subject_did=subject_did,
            wallet=wallet,
            commitment=commitment,
            resource_type=record.resource_type,
            category=record.category,
            issued_at=datetime.now(UTC),
            valid_until=None,
            credential_id=f"urn:uuid:{uuid.uuid4()}",
        )

    return attest


class AnnouncingAttestor:
    """The issuer's own attestor, which also checks each batch on chain and says so.

    The minting pipeline asks for every attestation of a batch, then checks them
    against the chain (its gate), then stores and mints. Told how many records each
    batch will hold, this attestor runs that same chain check
    (:meth:`ChainTrust.check_batch`) right after signing a batch's last credential and
    calls ``on_verified(n)`` — before anything of the batch is stored or minted — so a
    person watching sees the verification happen rather than taking it on trust.
    A refusal raises :class:`CredentialRejected` there, as the gate would.
    """

    def __init__(
        self,
        ledger: Ledger,
        issuer: Identity,
        batch_sizes: list[int],
        on_verified: Callable[[int], None],
    ) -> None:
        self._ledger = ledger
        self._issuer = issuer
        self._sign = issuer_attestor(issuer)
        self._sizes = [n for n in batch_sizes if n > 0]
        self._on_verified = on_verified
        self._pending: list[tuple[str, bytes, str]] = []
        #: Attestations signed and verified on chain so far.
        self.verified = 0

    def __call__(self, record: Record, commitment: bytes, subject_did: str, wallet: str) -> str:
        jws = self._sign(record, commitment, subject_did, wallet)
        self._pending.append((jws, commitment, wallet))
        if self._sizes and len(self._pending) == self._sizes[0]:
            self._sizes.pop(0)
            self._check_pending()
        return jws

    def _check_pending(self) -> None:
        pending, self._pending = self._pending, []
        owners = {wallet for _, _, wallet in pending}
        if len(owners) != 1:
            raise CredentialRejected("one batch of attestations must name one wallet")
        problems = ChainTrust(self._ledger).check_batch(
            [jws for jws, _, _ in pending],
            [commitment for _, commitment, _ in pending],
            self._issuer.address,
            owners.pop(),
            require_current_issuer=True,
            fresh_ids=True,  # ids were just drawn at random by issuer_attestor
        )
        problem = next((p for p in problems if p), None)
        if problem:
            raise CredentialRejected(f"issuer attestation refused ({problem}); nothing was minted")
        self.verified += len(pending)
        self._on_verified(len(pending))
