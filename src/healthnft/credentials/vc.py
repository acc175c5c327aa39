"""W3C Verifiable Credentials 2.0 secured with VC-JOSE: hospital attestations and wallets.

Before a health record is minted, its hospital attests it with a Verifiable Credential
(https://www.w3.org/TR/vc-data-model-2.0/) secured as a JWS in compact serialization
(https://www.w3.org/TR/vc-jose-cose/), ``typ`` ``vc+jwt``: see
:mod:`healthnft.credentials.vc_jws` for the header and the did:key signature. The
payload is the credential itself (no ``vc`` wrapper claim), serialized with JCS
(RFC 8785) so the signed bytes are deterministic::

    {"@context": ["https://www.w3.org/ns/credentials/v2"],
     "id": "urn:uuid:…", "type": ["VerifiableCredential", "HealthRecordAttestation"],
     "issuer": "did:key:z6Mk…", "validFrom": "2025-01-01T00:00:00Z", "validUntil": …,
     "credentialSubject": {"id": "<patient did>", "wallet": "0x…", "commitment": "0x…",
                           "recordType": "Observation", "category": "laboratory"}}

Issuers and holders are did:key identifiers (:mod:`healthnft.credentials.did`), resolved
offline. ``EdDSA`` (Ed25519) and ``ES256`` (P-256; raw 64-byte ``r || s``) are accepted;
the fully-specified ``Ed25519`` alg name is accepted on verification too.

This module issues and verifies credentials; presentations of them are
:mod:`healthnft.credentials.presentation`, and whether the chain vouches for an issuer
is :mod:`healthnft.credentials.trust`.

Every refusal is a :class:`~healthnft.errors.CredentialRejected` whose one-line reason
names the failed check (``"expired"``, ``"revoked"``, ``"bound to a different
commitment"``, ``"forged: signature does not verify for the issuer's key"`` …) and never
a value from the credential. Arguments that are plainly wrong on the issuing side (a
naive datetime, a subject that is not JSON) raise :class:`ValueError`/:class:`TypeError`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from healthnft.credentials.jose import unverified_claims
from healthnft.credentials.vc_jws import aware, sign_did_jws, verify_did_jws
from healthnft.errors import CredentialRejected, InvalidInput

__all__ = [
    "CLOCK_SKEW_SECONDS",
    "ENVELOPED_VC_PREFIX",
    "PATIENT_IDENTITY_TYPE",
    "RECORD_ATTESTATION_TYPE",
    "VC_CONTEXT_V2",
    "attest_record",
    "attestation_id",
    "credential_hash",
    "issue_credential",
    "issue_identity",
    "issuer_of",
    "patient_binding",
    "verify_credential",
    "verify_identity",
    "verify_record_attestation",
]

VC_CONTEXT_V2 = "https://www.w3.org/ns/credentials/v2"
VC_TYPE = "VerifiableCredential"
VP_TYPE = "VerifiablePresentation"
ENVELOPED_VC_TYPE = "EnvelopedVerifiableCredential"
ENVELOPED_VC_PREFIX = "data:application/vc+jwt,"
#: The credential a hospital signs for each record before it is minted.
RECORD_ATTESTATION_TYPE = "HealthRecordAttestation"
#: The credential binding a patient DID to a wallet address (no name, no health data).
PATIENT_IDENTITY_TYPE = "PatientWalletCredential"
#: Tolerated clock difference between signer and verifier, in seconds.
CLOCK_SKEW_SECONDS = 60
#: Bound that keeps hostile input cheap to refuse.
MAX_CREDENTIAL_CHARS = 64 * 1024

_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_HEX = re.compile(r"0x(?:[0-9a-fA-F]{2})+")


# --- time ------------------------------------------------------------------------------


def _stamp(value: datetime, name: str) -> str:
    """XML Schema dateTimeStamp in UTC, whole seconds: ``2025-01-01T00:00:00Z``."""
    if value is None:
        raise ValueError(f"{name} is required")
    utc = aware(value, name).astimezone(UTC).replace(microsecond=0, tzinfo=None)
    return utc.isoformat() + "Z"


def _parse_stamp(value: Any, name: str) -> datetime:
    if not isinstance(value, str) or not _DATETIME.fullmatch(value):
        raise CredentialRejected(f"malformed credential: {name} is not a date-time with time zone")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise CredentialRejected(
            f"malformed credential: {name} is not a date-time with time zone"
        ) from None


# --- credentials -----------------------------------------------------------------------


def types_of(document: Mapping[str, Any], what: str) -> list[str]:
    """The ``type`` of a credential or presentation as a list of strings."""
    value = document.get("type")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise CredentialRejected(f"malformed {what}: type is not a list of strings")
    return value


def check_context(document: Mapping[str, Any], what: str) -> None:
    """Refuse a document whose ``@context`` does not start with the VC 2.0 context."""
    context = document.get("@context")
    if not isinstance(context, list) or not context or context[0] != VC_CONTEXT_V2:
        raise CredentialRejected(f"malformed {what}: @context must start with the VC 2.0 context")


def _issuer_id(credential: Mapping[str, Any]) -> str:
    issuer = credential.get("issuer")
    if isinstance(issuer, dict):
        issuer = issuer.get("id")
    if not isinstance(issuer, str) or not issuer:
        raise CredentialRejected("malformed credential: no issuer")
    return issuer


def issuer_of(credential: Mapping[str, Any]) -> str:
    """The issuer DID of a credential (``issuer`` or ``issuer.id``)."""
    return _issuer_id(credential)


def patient_binding(credential: Mapping[str, Any]) -> tuple[str, str] | None:
    """(patient DID, wallet) of a credential that binds a patient to a wallet, else None.

    Both of healthnft's credential types do: a PatientWalletCredential is nothing but
    that binding, and a HealthRecordAttestation names the patient and wallet it was
    minted to. A verifier checks the pair against the DID bound on chain to the wallet,
    so a credential naming someone else's wallet is refused.
    """
    types = types_of(credential, "credential")
    if PATIENT_IDENTITY_TYPE not in types and RECORD_ATTESTATION_TYPE not in types:
        return None
    subjects = subjects_of(credential)
    if len(subjects) != 1:
        raise CredentialRejected("malformed credential: patient credential has several subjects")
    _check_patient(subjects[0], None, None)
    return subjects[0]["id"], subjects[0]["wallet"]


def subjects_of(credential: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``credentialSubject`` object(s) of a credential, as a list."""
    subject = credential.get("credentialSubject")
    subjects = subject if isinstance(subject, list) else [subject]
    if not subjects or not all(isinstance(s, dict) for s in subjects):
        raise CredentialRejected("malformed credential: credentialSubject is not an object")
    return subjects


def issue_credential(
    signing_key: Ed25519PrivateKey | ec.EllipticCurvePrivateKey,
    issuer_did: str,
    subject: Mapping[str, Any],
    *,
    types: Sequence[str],
    valid_from: datetime,
    valid_until: datetime | None = None,
    credential_id: str | None = None,
    status: Mapping[str, Any] | None = None,
) -> str:
    """Sign a VC 2.0 credential as a ``vc+jwt`` compact JWS.

    ``types`` are added after ``"VerifiableCredential"``. ``signing_key`` must be the key
    of ``issuer_did`` (else ``CredentialRejected("issuer and signing key differ")``).
    Times are written in UTC to the second.
    """
    if not isinstance(subject, Mapping):
        raise TypeError("subject must be a mapping")
    if isinstance(types, str) or not all(isinstance(t, str) and t for t in types):
        raise TypeError("types must be a list of non-empty strings")
    credential: dict[str, Any] = {
        "@context": [VC_CONTEXT_V2],
        "type": [VC_TYPE, *(t for t in types if t != VC_TYPE)],
        "issuer": issuer_did,
        "validFrom": _stamp(valid_from, "valid_from"),
        "credentialSubject": dict(subject),
    }
    if valid_until is not None:
        credential["validUntil"] = _stamp(valid_until, "valid_until")
        # Compared as written (whole seconds), exactly as verify_credential will see them.
        if credential["validUntil"] <= credential["validFrom"]:
            raise ValueError("valid_until must be after valid_from")
    if credential_id is not None:
        if not isinstance(credential_id, str) or not credential_id:
            raise ValueError("credential_id must be a non-empty string")
        credential["id"] = credential_id
    if status is not None:
        credential["credentialStatus"] = dict(status)
    return sign_did_jws(signing_key, issuer_did, credential, typ="vc+jwt", cty="vc", role="issuer")


def verify_credential(jws: str, *, now: datetime | None = None) -> dict[str, Any]:
    """Verify a ``vc+jwt`` credential offline and return it.

    Checks, in order: compact form and header (``alg`` EdDSA/ES256, ``typ`` vc+jwt,
    ``kid`` the verification method of a did:key), the signature against the key that
    did:key encodes, the VC 2.0 shape (``@context``, ``type`` with VerifiableCredential,
    ``issuer``, ``credentialSubject``, ``validFrom``), that the issuer is the signer, and
    ``validFrom <= now < validUntil`` give or take :data:`CLOCK_SKEW_SECONDS`.
    """
    credential, signer = verify_did_jws(
        jws,
        typ="vc+jwt",
        cty="vc",
        what="credential",
        role="issuer",
        max_chars=MAX_CREDENTIAL_CHARS,
    )
    check_context(credential, "credential")
    if VC_TYPE not in types_of(credential, "credential"):
        raise CredentialRejected("malformed credential: type lacks VerifiableCredential")
    if _issuer_id(credential) != signer:
        raise CredentialRejected("issuer and signing key differ")
    subjects_of(credential)
    if "id" in credential and not isinstance(credential["id"], str):
        raise CredentialRejected("malformed credential: id is not a string")
    if "validFrom" not in credential:
        raise CredentialRejected("malformed credential: no validFrom")
    valid_from = _parse_stamp(credential["validFrom"], "validFrom")
    valid_until = None
    if "validUntil" in credential:
        valid_until = _parse_stamp(credential["validUntil"], "validUntil")
        if valid_until <= valid_from:
            raise CredentialRejected("malformed credential: validUntil is not after validFrom")
    moment = aware(now, "now")
    skew = timedelta(seconds=CLOCK_SKEW_SECONDS)
    if moment + skew < valid_from:
        raise CredentialRejected("not yet valid")
    if valid_until is not None and moment >= valid_until + skew:
        raise CredentialRejected("expired")
    return credential


def credential_hash(credential_id: str) -> bytes:
    """The 32-byte on-chain revocation key of a credential: SHA-256 of its UTF-8 id."""
    if not isinstance(credential_id, str) or not credential_id:
        raise ValueError("credential_id must be a non-empty string")
    return hashlib.sha256(credential_id.encode("utf-8")).digest()


def _check_binding_args(subject_did: str, wallet: str) -> None:
    if not isinstance(subject_did, str) or not subject_did.startswith("did:"):
        raise ValueError("subject_did must be a DID")
    if not isinstance(wallet, str) or not _ADDRESS.fullmatch(wallet):
        raise ValueError("wallet must be a 0x-prefixed 20-byte hex address")


def attest_record(
    signing_key: Ed25519PrivateKey | ec.EllipticCurvePrivateKey,
    issuer_did: str,
    *,
    subject_did: str,
    wallet: str,
    commitment: bytes,
    resource_type: str,
    category: str,
    issued_at: datetime,
    valid_until: datetime | None,
    credential_id: str,
) -> str:
    """A hospital's HealthRecordAttestation binding a record commitment to a patient.

    The subject carries only the patient DID, the wallet address, the commitment (hex)
    and the record's FHIR resource type and category: no health data.
    """
    _check_binding_args(subject_did, wallet)
    if not isinstance(commitment, bytes | bytearray) or not commitment:
        raise ValueError("commitment must be non-empty bytes")
    if not isinstance(resource_type, str) or not resource_type:
        raise ValueError("resource_type must be a non-empty string")
    if not isinstance(category, str) or not category:
        raise ValueError("category must be a non-empty string")
    if not isinstance(credential_id, str) or not credential_id:
        raise ValueError("credential_id must be a non-empty string")
    subject = {
        "id": subject_did,
        "wallet": wallet,
        "commitment": "0x" + bytes(commitment).hex(),
        "recordType": resource_type,
        "category": category,
    }
    return issue_credential(
        signing_key,
        issuer_did,
        subject,
        types=[RECORD_ATTESTATION_TYPE],
        valid_from=issued_at,
        valid_until=valid_until,
        credential_id=credential_id,
    )


def _trusted(
    credential: dict[str, Any],
    credential_type: str,
    label: str,
    is_issuer: Callable[[str], bool],
    is_revoked: Callable[[str, str], bool],
) -> dict[str, Any]:
    """Type, issuer trust and revocation; return the single credentialSubject."""
    if credential_type not in types_of(credential, "credential"):
        raise CredentialRejected(f"not a {label}")
    issuer = _issuer_id(credential)
    if not is_issuer(issuer):
        raise CredentialRejected("signed by a non-issuer")
    credential_id = credential.get("id")
    if not isinstance(credential_id, str) or not credential_id:
        raise CredentialRejected(f"malformed credential: {label} has no id")
    if is_revoked(issuer, credential_id):
        raise CredentialRejected("revoked")
    subjects = subjects_of(credential)
    if len(subjects) != 1:
        raise CredentialRejected(f"malformed credential: {label} has several subjects")
    return subjects[0]


def _check_patient(subject: Mapping[str, Any], subject_did: str | None, wallet: str | None) -> None:
    claimed_wallet = subject.get("wallet")
    if not isinstance(subject.get("id"), str) or not isinstance(claimed_wallet, str):
        raise CredentialRejected("malformed credential: subject lacks id or wallet")
    if not _ADDRESS.fullmatch(claimed_wallet):
        raise CredentialRejected("malformed credential: wallet is not an address")
    if subject_did is not None and subject["id"] != subject_did:
        raise CredentialRejected("bound to a different patient")
    if wallet is not None and claimed_wallet.lower() != str(wallet).lower():
        raise CredentialRejected("bound to a different wallet")


def verify_record_attestation(
    jws: str,
    *,
    commitment: bytes,
    subject_did: str,
    wallet: str,
    is_issuer: Callable[[str], bool],
    is_revoked: Callable[[str, str], bool],
    now: datetime | None = None,
) -> dict[str, Any]:
    """Verify a HealthRecordAttestation for exactly this record, patient and wallet.

    After :func:`verify_credential`: the type is HealthRecordAttestation, ``is_issuer``
    accepts the issuer DID ("signed by a non-issuer"), ``is_revoked(issuer, id)`` is
    false ("revoked"), the commitment matches in constant time ("bound to a different
    commitment"), the subject DID ("bound to a different patient") and the wallet,
    compared case-insensitively ("bound to a different wallet").
    """
    credential = verify_credential(jws, now=now)
    subject = _trusted(
        credential, RECORD_ATTESTATION_TYPE, "health record attestation", is_issuer, is_revoked
    )
    claimed = subject.get("commitment")
    if not isinstance(claimed, str) or not _HEX.fullmatch(claimed):
        raise CredentialRejected("malformed credential: commitment is not hex")
    if not hmac.compare_digest(bytes.fromhex(claimed[2:]), bytes(commitment)):
        raise CredentialRejected("bound to a different commitment")
    _check_patient(subject, subject_did, wallet)
    return credential


def issue_identity(
    signing_key: Ed25519PrivateKey | ec.EllipticCurvePrivateKey,
    issuer_did: str,
    *,
    subject_did: str,
    wallet: str,
    valid_from: datetime,
    valid_until: datetime | None,
    credential_id: str,
) -> str:
    """A PatientWalletCredential: this patient DID controls this wallet (nothing else)."""
    _check_binding_args(subject_did, wallet)
    if not isinstance(credential_id, str) or not credential_id:
        raise ValueError("credential_id must be a non-empty string")
    return issue_credential(
        signing_key,
        issuer_did,
        {"id": subject_did, "wallet": wallet},
        types=[PATIENT_IDENTITY_TYPE],
        valid_from=valid_from,
        valid_until=valid_until,
        credential_id=credential_id,
    )


def verify_identity(
    jws: str,
    *,
    is_issuer: Callable[[str], bool],
    is_revoked: Callable[[str, str], bool],
    subject_did: str | None = None,
    wallet: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Verify a PatientWalletCredential; optionally that it binds this DID and/or wallet."""
    credential = verify_credential(jws, now=now)
    subject = _trusted(
        credential, PATIENT_IDENTITY_TYPE, "patient wallet credential", is_issuer, is_revoked
    )
    _check_patient(subject, subject_did, wallet)
    return credential


def attestation_id(jws: object) -> str | None:
    """The credential id inside a credential JWS, read *without* trusting it.

    Used to batch revocation look-ups before the credentials are verified one by one.
    Anything that is not a JWS with a string ``id`` (an attestor that returned None, a
    garbled token) has no id; the verification that follows refuses it with a reason.
    """
    if not isinstance(jws, str):
        return None
    try:
        credential_id = unverified_claims(jws).get("id")
    except InvalidInput:
        return None
    return credential_id if isinstance(credential_id, str) else None
