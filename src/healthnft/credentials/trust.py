"""Chain trust: whether the ledger vouches for the DIDs behind a credential.

The credential layer alone only proves *some* did:key signed; anyone can mint a
did:key. A HealthRecordAttestation or a PatientWalletCredential is trusted only when
the chain agrees: the issuer's did:key is the one bound to a registered hospital in the
ParticipantRegistry, the patient's did:key is the one bound to the wallet, and the
issuer has not revoked it. Every path that accepts a credential from outside (a file
given to ``credential verify``, each credential inside a presentation, a minting batch,
a custodian's requester) goes through here, which asks the chain who each DID is.

This module turns those chain lookups into answers and into the callables
:mod:`healthnft.credentials.vc` asks for, batching revocation lookups.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from healthnft.credentials.challenges import ChallengeStore
from healthnft.credentials.did import did_key_ed25519, resolve_did_key
from healthnft.credentials.presentation import Presentation, verify_presentation
from healthnft.credentials.vc import (
    PATIENT_IDENTITY_TYPE,
    RECORD_ATTESTATION_TYPE,
    attestation_id,
    credential_hash,
    issuer_of,
    patient_binding,
    verify_credential,
    verify_record_attestation,
)
from healthnft.errors import CredentialRejected
from healthnft.ledger.client import ISSUER_KINDS, Ledger

__all__ = [
    "ChainTrust",
    "bound_did",
    "did_address",
    "hospital_did_check",
    "revocation_check",
]


def bound_did(ledger: Ledger, address: str) -> str | None:
    """The did:key bound on chain to ``address``, if any."""
    key = ledger.did_key(address)
    return did_key_ed25519(key) if key else None


def did_address(ledger: Ledger, did: str) -> str | None:
    """The participant address a did:key is bound to on chain, if any."""
    try:
        key = resolve_did_key(did)
    except CredentialRejected:
        return None
    if not isinstance(key, Ed25519PublicKey):
        return None
    return ledger.did_owner(key.public_bytes(Encoding.Raw, PublicFormat.Raw))


def hospital_did_check(ledger: Ledger) -> Callable[[str], bool]:
    """is_issuer for credentials: the DID is bound to an active, registered hospital."""

    def check(did: str) -> bool:
        address = did_address(ledger, did)
        if address is None:
            return False
        kind, active, _ = ledger.participant(address)
        return kind == "hospital" and active

    return check


def revocation_check(ledger: Ledger) -> Callable[[str, str], bool]:
    """is_revoked for credentials: looked up under the issuer DID's address on chain."""

    def check(issuer_did: str, credential_id: str) -> bool:
        address = did_address(ledger, issuer_did)
        return address is None or ledger.is_revoked(address, credential_hash(credential_id))

    return check


class ChainTrust:
    """Answers "is this DID a hospital's?" and "is this revoked?" from the chain."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def check_credential(
        self, credential: Mapping[str, Any], *, require_current_issuer: bool
    ) -> None:
        """Refuse an already signature-checked credential the chain does not vouch for.

        In order: the issuer DID is bound on chain to an active registered hospital
        — or pharmacy, for a record attestation (:data:`ISSUER_KINDS`: a pharmacy
        attests the MedicationDispense it mints) — (with the issuer role now, when
        ``require_current_issuer``); the credential has
        an id and its issuer has not revoked it on chain; a credential binding a patient
        to a wallet (identity, record attestation) names the DID bound on chain to that
        wallet. Expiry is :func:`verify_credential`'s job and is done before this.
        Raises :class:`CredentialRejected` with a one-line reason naming the check.
        """
        address = did_address(self.ledger, issuer_of(credential))
        if address is None:
            raise CredentialRejected("issuer DID is not bound on chain to any participant")
        kind, active, _ = self.ledger.participant(address)
        types = credential.get("type")
        if RECORD_ATTESTATION_TYPE in (types if isinstance(types, list) else [types]):
            if kind not in ISSUER_KINDS or not active:
                raise CredentialRejected("issuer DID is not bound on chain to a registered "
                                         "hospital or pharmacy")
        elif kind != "hospital" or not active:
            raise CredentialRejected("issuer DID is not bound on chain to a registered hospital")
        if require_current_issuer and not self.ledger.is_issuer(address):
            raise CredentialRejected("issuer does not hold the issuer role on chain")
        credential_id = credential.get("id")
        if not isinstance(credential_id, str) or not credential_id:
            raise CredentialRejected("malformed credential: no id, so revocation cannot be checked")
        if self.ledger.is_revoked(address, credential_hash(credential_id)):
            raise CredentialRejected("revoked")
        binding = patient_binding(credential)
        if binding is not None:
            subject_did, wallet = binding
            if bound_did(self.ledger, wallet) != subject_did:
                raise CredentialRejected(
                    "its patient DID is not the one bound on chain to the wallet it names"
                )

    def verify(
        self, jws: str, *, require_current_issuer: bool = False, now: datetime | None = None
    ) -> dict[str, Any]:
        """:func:`verify_credential` (signature, shape, validity window), then the chain.

        ``require_current_issuer`` is off by default, as for ``verify TOKEN_ID``: what a
        hospital attested while it could mint stays true after it loses the role.
        """
        credential = verify_credential(jws, now=now)
        self.check_credential(credential, require_current_issuer=require_current_issuer)
        return credential

    def verify_presentation(
        self,
        jws: str,
        *,
        challenge: str,
        domain: str,
        challenges: ChallengeStore | None = None,
        now: datetime | None = None,
    ) -> Presentation:
        """A presentation whose holder, and every credential it carries, the chain backs.

        After :func:`~healthnft.credentials.presentation.verify_presentation` (holder signature,
        challenge, domain, each credential's signature and validity window, subjects
        naming the holder), each credential goes through :meth:`check_credential` with
        the issuer role required — a presentation is a claim made now, so an issuer
        that lost the role no longer vouches — and for an identity credential the
        holder must be the DID bound on chain to the wallet it names. Refusals read
        ``"credential <n>: <reason>"``. The challenge is consumed only when all of
        this holds, so a refused presentation leaves it for a corrected one.
        """
        vp = verify_presentation(jws, challenge=challenge, domain=domain, now=now)
        for n, credential in enumerate(vp.credentials, 1):
            try:
                self.check_credential(credential, require_current_issuer=True)
                types = credential.get("type")
                types = [types] if isinstance(types, str) else types
                binding = patient_binding(credential)
                if PATIENT_IDENTITY_TYPE in types and (
                    binding is None or bound_did(self.ledger, binding[1]) != vp.holder
                ):
                    raise CredentialRejected(
                        "the holder is not the DID bound on chain to the wallet it names"
                    )
            except CredentialRejected as exc:
                raise CredentialRejected(f"credential {n}: {exc}") from None
        if challenges is not None:
            challenges.consume(challenge, domain)
        return vp

    def check_batch(
        self,
        attestations: list[str],
        commitments: list[bytes],
        issuer_address: str,
        owner: str,
        *,
        require_current_issuer: bool,
        fresh_ids: bool = False,
    ) -> list[str | None]:
        """Per attestation: None when it holds, else the reason it is refused.

        ``fresh_ids`` says the credential ids were just drawn at random by this
        process (the built-in attestor), so no revocation can name them yet and the
        lookup is skipped: on the embedded chain it costs ~130 ms per 1,024 ids.
        """
        issuer_did = bound_did(self.ledger, issuer_address)
        subject_did = bound_did(self.ledger, owner)
        if subject_did is None:
            return ["the patient has no DID bound on chain"] * len(attestations)
        kind, active, _ = self.ledger.participant(issuer_address)
        trusted = issuer_did is not None and kind in ISSUER_KINDS and active
        if trusted and require_current_issuer:
            trusted = self.ledger.is_issuer(issuer_address)
        ids = [attestation_id(a) or "" for a in attestations]
        # A malformed credential has no id; its zero hash is never revoked, and the
        # verification below refuses it with the precise reason.
        hashes = [credential_hash(i) if i else bytes(32) for i in ids]
        revoked_flags = (
            [False] * len(ids) if fresh_ids else self.ledger.revoked_among(issuer_address, hashes)
        )
        revoked = {i for i, flag in zip(ids, revoked_flags, strict=True) if flag}
        out: list[str | None] = []
        for jws, commitment in zip(attestations, commitments, strict=True):
            try:
                verify_record_attestation(
                    jws,
                    commitment=commitment,
                    subject_did=subject_did,
                    wallet=owner,
                    is_issuer=lambda did: trusted and did == issuer_did,
                    is_revoked=lambda _iss, cid: cid in revoked,
                )
            except CredentialRejected as exc:
                out.append(str(exc))
            else:
                out.append(None)
        return out
