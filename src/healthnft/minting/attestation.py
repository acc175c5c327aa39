"""Issuer attestations checked against the chain, for minting and for verification.

A HealthRecordAttestation (a VC-JOSE credential, :mod:`healthnft.credentials.vc`)
is trusted only when the chain agrees: the issuer's did:key is the one bound to
a registered hospital in the ParticipantRegistry, the patient's did:key is the
one bound to the wallet, and the issuer has not revoked it. This module turns
those chain lookups into the callables the credential layer asks for, batching
revocation lookups (one call per 1,024 credentials).

The credential layer alone only proves *some* did:key signed; anyone can mint a
did:key. So every path that accepts a credential from outside — a file given to
``credential verify``, each credential inside a presentation — goes through
:meth:`ChainTrust.check_credential` as well, which asks the chain who that DID is.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from healthnft.credentials.did import did_key_ed25519
from healthnft.credentials.vc import (
    PATIENT_IDENTITY_TYPE,
    ChallengeStore,
    Presentation,
    attest_record,
    credential_hash,
    issuer_of,
    patient_binding,
    verify_credential,
    verify_presentation,
    verify_record_attestation,
)
from healthnft.errors import CredentialRejected
from healthnft.keys import Identity
from healthnft.ledger.client import Ledger
from healthnft.records import Record

#: (record, commitment, patient DID, wallet) -> attestation JWS
Attestor = Callable[[Record, bytes, str, str], str]


def bound_did(ledger: Ledger, address: str) -> str | None:
    """The did:key bound on chain to ``address``, if any."""
    key = ledger.did_key(address)
    return did_key_ed25519(key) if key else None


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


def attestation_id(jws: object) -> str | None:
    """The credential id inside an attestation, read without trusting it.

    Anything that is not a string (an attestor that returned None) has no id; the
    verification that follows refuses it with a clear reason.
    """
    import base64

    import orjson

    if not isinstance(jws, str):
        return None
    try:
        payload = jws.split(".")[1]
        data = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return data.get("id") if isinstance(data.get("id"), str) else None
    except (IndexError, ValueError, orjson.JSONDecodeError):
        return None


def did_address(ledger: Ledger, did: str) -> str | None:
    """The participant address a did:key is bound to on chain, if any."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from healthnft.credentials.did import resolve_did_key

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
        (with the issuer role now, when ``require_current_issuer``); the credential has
        an id and its issuer has not revoked it on chain; a credential binding a patient
        to a wallet (identity, record attestation) names the DID bound on chain to that
        wallet. Expiry is :func:`verify_credential`'s job and is done before this.
        Raises :class:`CredentialRejected` with a one-line reason naming the check.
        """
        address = did_address(self.ledger, issuer_of(credential))
        if address is None:
            raise CredentialRejected("issuer DID is not bound on chain to any participant")
        kind, active, _ = self.ledger.participant(address)
        if kind != "hospital" or not active:
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

        After :func:`~healthnft.credentials.vc.verify_presentation` (holder signature,
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
        trusted = issuer_did is not None and kind == "hospital" and active
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
