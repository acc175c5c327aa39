"""W3C Verifiable Credentials 2.0 secured with VC-JOSE: hospital attestations and wallets.

Before a health record is minted, its hospital attests it with a Verifiable Credential
(https://www.w3.org/TR/vc-data-model-2.0/) secured as a JWS in compact serialization
(https://www.w3.org/TR/vc-jose-cose/). The JWS header is::

    {"alg": "EdDSA" | "ES256", "kid": "<issuer did:key>#<multibase key>",
     "typ": "vc+jwt", "cty": "vc"}

and the payload is the credential itself (no ``vc`` wrapper claim), serialized with JCS
(RFC 8785) so the signed bytes are deterministic::

    {"@context": ["https://www.w3.org/ns/credentials/v2"],
     "id": "urn:uuid:…", "type": ["VerifiableCredential", "HealthRecordAttestation"],
     "issuer": "did:key:z6Mk…", "validFrom": "2025-01-01T00:00:00Z", "validUntil": …,
     "credentialSubject": {"id": "<patient did>", "wallet": "0x…", "commitment": "0x…",
                           "recordType": "Observation", "category": "laboratory"}}

Issuers and holders are did:key identifiers (:mod:`healthnft.credentials.did`), resolved
offline: the ``kid`` must be the issuer's (holder's) only verification method, and the
signature is checked against the key the DID itself encodes *before* any claim is
trusted. ``EdDSA`` (Ed25519) and ``ES256`` (P-256; raw 64-byte ``r || s``) are accepted;
the fully-specified ``Ed25519`` alg name is accepted on verification too.

Presentations: a wallet proves it holds credentials by signing a VP JWS (``typ``
``vp+jwt``, ``cty`` ``vp``) whose payload is a VerifiablePresentation enveloping each VC
JWS as ``{"id": "data:application/vc+jwt,<jws>", "type": "EnvelopedVerifiableCredential"}``.
The verifier's challenge and its domain travel as the JWT claims ``nonce`` and ``aud``
(as in VC-JOSE examples and OpenID4VP), with ``iat``/``exp`` bounding the presentation's
life. :class:`ChallengeStore` hands out one-time challenges and refuses replays, across
processes when backed by SQLite.

Every refusal is a :class:`~healthnft.errors.CredentialRejected` whose one-line reason
names the failed check (``"expired"``, ``"revoked"``, ``"bound to a different
commitment"``, ``"forged: signature does not verify for the issuer's key"`` …) and never
a value from the credential. Arguments that are plainly wrong on the issuing side (a
naive datetime, a subject that is not JSON) raise :class:`ValueError`/:class:`TypeError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from healthnft.credentials.did import (
    did_for,
    ed25519_from_secret,
    resolve_did_key,
    verification_method_id,
)
from healthnft.errors import CredentialRejected

__all__ = [
    "CLOCK_SKEW_SECONDS",
    "ENVELOPED_VC_PREFIX",
    "PATIENT_IDENTITY_TYPE",
    "RECORD_ATTESTATION_TYPE",
    "VC_CONTEXT_V2",
    "ChallengeStore",
    "Presentation",
    "attest_record",
    "create_presentation",
    "credential_hash",
    "did_for",
    "ed25519_from_secret",
    "issue_credential",
    "issue_identity",
    "issuer_of",
    "patient_binding",
    "verify_credential",
    "verify_identity",
    "verify_presentation",
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
#: Bounds that keep hostile input cheap to refuse.
MAX_CREDENTIAL_CHARS = 64 * 1024
MAX_PRESENTATION_CHARS = 8 * 1024 * 1024
MAX_PRESENTED_CREDENTIALS = 4096

_ED25519_ALGS = frozenset({"EdDSA", "Ed25519"})
_ALLOWED_ALGS = _ED25519_ALGS | {"ES256"}
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_HEX = re.compile(r"0x(?:[0-9a-fA-F]{2})+")


# --- JWS plumbing ----------------------------------------------------------------------


def _b64e(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _b64d(segment: str, what: str) -> bytes:
    """Strict base64url: no padding, no stray characters, canonical trailing bits."""
    if not _B64URL.fullmatch(segment):
        raise CredentialRejected(f"malformed {what}: not base64url")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise CredentialRejected(f"malformed {what}: not base64url") from None
    if _b64e(raw).decode("ascii") != segment:
        raise CredentialRejected(f"malformed {what}: not canonical base64url")
    return raw


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise CredentialRejected(f"malformed {what}: not JSON") from None
    if not isinstance(value, dict):
        raise CredentialRejected(f"malformed {what}: not a JSON object")
    return value


def _jcs(value: Mapping[str, Any]) -> bytes:
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        raise ValueError(
            "credential content is not canonical JSON (str, int, list, dict…)"
        ) from None


def _alg_for(key: Any) -> str:
    if isinstance(key, Ed25519PrivateKey):
        return "EdDSA"
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    raise CredentialRejected("signing key must be an Ed25519 or P-256 private key")


@lru_cache(maxsize=1024)
def _header_segment(alg: str, kid: str, typ: str, cty: str) -> bytes:
    return _b64e(rfc8785.dumps({"alg": alg, "kid": kid, "typ": typ, "cty": cty}))


def _sign_compact(
    key: Any, signer_did: str, payload: Mapping[str, Any], *, typ: str, cty: str, role: str
) -> str:
    alg = _alg_for(key)
    if did_for(key) != signer_did:
        raise CredentialRejected(f"{role} and signing key differ")
    header = _header_segment(alg, verification_method_id(signer_did), typ, cty)
    signing_input = header + b"." + _b64e(_jcs(payload))
    if alg == "EdDSA":
        signature = key.sign(signing_input)
    else:
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return (signing_input + b"." + _b64e(signature)).decode("ascii")


def _verify_compact(
    token: Any, *, typ: str, cty: str, what: str, role: str, max_chars: int
) -> tuple[dict[str, Any], str]:
    """Check header and signature of a compact JWS; return (payload, signer DID).

    The key is the one the ``kid``'s did:key encodes, so the signature is checked before
    any claim in the payload is read.
    """
    if not isinstance(token, str) or len(token) > max_chars:
        raise CredentialRejected(f"malformed {what}: not a compact JWS")
    parts = token.split(".")
    if len(parts) != 3:
        raise CredentialRejected(f"malformed {what}: not a compact JWS")
    header = _json_object(_b64d(parts[0], f"{what} header"), f"{what} header")
    alg = header.get("alg")
    if alg not in _ALLOWED_ALGS:
        raise CredentialRejected(f"malformed {what}: alg must be EdDSA or ES256")
    if header.get("typ") != typ:
        raise CredentialRejected(f"malformed {what}: typ must be {typ}")
    if header.get("cty", cty) != cty:
        raise CredentialRejected(f"malformed {what}: cty must be {cty}")
    if "crit" in header:
        raise CredentialRejected(f"malformed {what}: unsupported critical header")
    kid = header.get("kid")
    if not isinstance(kid, str) or "#" not in kid:
        raise CredentialRejected(f"malformed {what}: kid is not a did:key verification method")
    signer = kid.split("#", 1)[0]
    key = resolve_did_key(signer)
    if kid != verification_method_id(signer):
        raise CredentialRejected(f"malformed {what}: kid is not a verification method of its DID")
    if (alg in _ED25519_ALGS) != isinstance(key, Ed25519PublicKey):
        raise CredentialRejected(f"malformed {what}: alg does not match the {role}'s key type")
    signature = _b64d(parts[2], f"{what} signature")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    forged = CredentialRejected(
        f"forged: {'' if what == 'credential' else what + ' '}"
        f"signature does not verify for the {role}'s key"
    )
    if len(signature) != 64:
        raise forged
    try:
        if isinstance(key, Ed25519PublicKey):
            key.verify(signature, signing_input)
        else:
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise forged from None
    payload = _json_object(_b64d(parts[1], f"{what} payload"), f"{what} payload")
    return payload, signer


# --- time ------------------------------------------------------------------------------


def _aware(value: datetime | None, name: str) -> datetime:
    if value is None:
        return datetime.now(UTC)
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return value


def _stamp(value: datetime, name: str) -> str:
    """XML Schema dateTimeStamp in UTC, whole seconds: ``2025-01-01T00:00:00Z``."""
    if value is None:
        raise ValueError(f"{name} is required")
    utc = _aware(value, name).astimezone(UTC).replace(microsecond=0, tzinfo=None)
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


def _types(document: Mapping[str, Any], what: str) -> list[str]:
    value = document.get("type")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise CredentialRejected(f"malformed {what}: type is not a list of strings")
    return value


def _check_context(document: Mapping[str, Any], what: str) -> None:
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
    types = _types(credential, "credential")
    if PATIENT_IDENTITY_TYPE not in types and RECORD_ATTESTATION_TYPE not in types:
        return None
    subjects = _subjects(credential)
    if len(subjects) != 1:
        raise CredentialRejected("malformed credential: patient credential has several subjects")
    _check_patient(subjects[0], None, None)
    return subjects[0]["id"], subjects[0]["wallet"]


def _subjects(credential: Mapping[str, Any]) -> list[dict[str, Any]]:
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
    return _sign_compact(signing_key, issuer_did, credential, typ="vc+jwt", cty="vc", role="issuer")


def verify_credential(jws: str, *, now: datetime | None = None) -> dict[str, Any]:
    """Verify a ``vc+jwt`` credential offline and return it.

    Checks, in order: compact form and header (``alg`` EdDSA/ES256, ``typ`` vc+jwt,
    ``kid`` the verification method of a did:key), the signature against the key that
    did:key encodes, the VC 2.0 shape (``@context``, ``type`` with VerifiableCredential,
    ``issuer``, ``credentialSubject``, ``validFrom``), that the issuer is the signer, and
    ``validFrom <= now < validUntil`` give or take :data:`CLOCK_SKEW_SECONDS`.
    """
    credential, signer = _verify_compact(
        jws,
        typ="vc+jwt",
        cty="vc",
        what="credential",
        role="issuer",
        max_chars=MAX_CREDENTIAL_CHARS,
    )
    _check_context(credential, "credential")
    if VC_TYPE not in _types(credential, "credential"):
        raise CredentialRejected("malformed credential: type lacks VerifiableCredential")
    if _issuer_id(credential) != signer:
        raise CredentialRejected("issuer and signing key differ")
    _subjects(credential)
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
    moment = _aware(now, "now")
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
    if credential_type not in _types(credential, "credential"):
        raise CredentialRejected(f"not a {label}")
    issuer = _issuer_id(credential)
    if not is_issuer(issuer):
        raise CredentialRejected("signed by a non-issuer")
    credential_id = credential.get("id")
    if not isinstance(credential_id, str) or not credential_id:
        raise CredentialRejected(f"malformed credential: {label} has no id")
    if is_revoked(issuer, credential_id):
        raise CredentialRejected("revoked")
    subjects = _subjects(credential)
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


# --- presentations ---------------------------------------------------------------------


@dataclass(frozen=True)
class Presentation:
    """A verified presentation: who presented, and the credentials it carried."""

    holder: str
    #: Each enclosed credential, verified with :func:`verify_credential`, in order.
    credentials: list[dict[str, Any]]
    #: The enclosed credentials' ``vc+jwt`` compact JWS, in the same order.
    raw: list[str]


def create_presentation(
    holder_key: Ed25519PrivateKey | ec.EllipticCurvePrivateKey,
    holder_did: str,
    credentials: Sequence[str],
    *,
    challenge: str,
    domain: str,
    now: datetime | None = None,
    ttl_s: int = 300,
) -> str:
    """Sign a ``vp+jwt`` presentation of ``credentials`` for one challenge and domain.

    The challenge is the ``nonce`` claim and the domain the ``aud`` claim; ``iat`` and
    ``exp = iat + ttl_s`` (seconds) bound the presentation's life.
    """
    if isinstance(credentials, str):
        raise TypeError("credentials must be a list of vc+jwt strings")
    for token in credentials:
        if not isinstance(token, str) or token.count(".") != 2:
            raise ValueError("each credential must be a vc+jwt compact JWS")
    if not isinstance(challenge, str) or not challenge:
        raise ValueError("challenge must be a non-empty string")
    if not isinstance(domain, str) or not domain:
        raise ValueError("domain must be a non-empty string")
    if ttl_s <= 0:
        raise ValueError("ttl_s must be positive")
    issued = int(_aware(now, "now").timestamp())
    presentation = {
        "@context": [VC_CONTEXT_V2],
        "type": [VP_TYPE],
        "holder": holder_did,
        "verifiableCredential": [
            {
                "@context": [VC_CONTEXT_V2],
                "id": ENVELOPED_VC_PREFIX + token,
                "type": ENVELOPED_VC_TYPE,
            }
            for token in credentials
        ],
        "nonce": challenge,
        "aud": domain,
        "iat": issued,
        "exp": issued + int(ttl_s),
    }
    return _sign_compact(
        holder_key, holder_did, presentation, typ="vp+jwt", cty="vp", role="holder"
    )


def _int_claim(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CredentialRejected(f"malformed presentation: {name} is not a number")
    return int(value)


def verify_presentation(
    jws: str,
    *,
    challenge: str,
    domain: str,
    now: datetime | None = None,
    challenges: ChallengeStore | None = None,
) -> Presentation:
    """Verify a ``vp+jwt`` presentation and every credential it carries.

    The holder's did:key signature, ``nonce == challenge``, ``aud == domain``, ``iat``/
    ``exp`` (with :data:`CLOCK_SKEW_SECONDS`), then each enveloped credential with
    :func:`verify_credential` (a refusal is reported as ``"credential <n>: <reason>"``);
    a credential whose subject has an ``id`` must name the holder ("credential subject is
    not the holder"). When ``challenges`` is given, the challenge is consumed there last,
    so a replay is refused even by another process sharing the store; otherwise the
    caller must :meth:`ChallengeStore.consume` it.
    """
    vp, holder = _verify_compact(
        jws,
        typ="vp+jwt",
        cty="vp",
        what="presentation",
        role="holder",
        max_chars=MAX_PRESENTATION_CHARS,
    )
    _check_context(vp, "presentation")
    if VP_TYPE not in _types(vp, "presentation"):
        raise CredentialRejected("malformed presentation: type lacks VerifiablePresentation")
    if vp.get("holder") != holder:
        raise CredentialRejected("holder and signing key differ")
    nonce = vp.get("nonce")
    if not isinstance(nonce, str) or not hmac.compare_digest(
        nonce.encode("utf-8"), str(challenge).encode("utf-8")
    ):
        raise CredentialRejected("presentation is for a different challenge")
    audience = vp.get("aud")
    if not (audience == domain or (isinstance(audience, list) and domain in audience)):
        raise CredentialRejected("presentation is for a different domain")
    issued = _int_claim(vp.get("iat"), "iat")
    expires = _int_claim(vp.get("exp"), "exp")
    if expires <= issued:
        raise CredentialRejected("malformed presentation: exp is not after iat")
    moment = _aware(now, "now").timestamp()
    if moment + CLOCK_SKEW_SECONDS < issued:
        raise CredentialRejected("presentation not yet valid")
    if moment >= expires + CLOCK_SKEW_SECONDS:
        raise CredentialRejected("presentation expired")
    enveloped = vp.get("verifiableCredential", [])
    if not isinstance(enveloped, list) or len(enveloped) > MAX_PRESENTED_CREDENTIALS:
        raise CredentialRejected("malformed presentation: verifiableCredential is not a list")
    credentials: list[dict[str, Any]] = []
    raw: list[str] = []
    for n, envelope in enumerate(enveloped, 1):
        kind = envelope.get("type") if isinstance(envelope, dict) else None
        token = envelope.get("id") if isinstance(envelope, dict) else None
        if (
            ENVELOPED_VC_TYPE not in (kind if isinstance(kind, list) else [kind])
            or not isinstance(token, str)
            or not token.startswith(ENVELOPED_VC_PREFIX)
        ):
            raise CredentialRejected(
                f"malformed presentation: credential {n} is not an enveloped vc+jwt"
            )
        token = token[len(ENVELOPED_VC_PREFIX) :]
        try:
            credential = verify_credential(token, now=now)
        except CredentialRejected as exc:
            raise CredentialRejected(f"credential {n}: {exc}") from None
        for subject in _subjects(credential):
            if "id" in subject and subject["id"] != holder:
                raise CredentialRejected(f"credential {n}: credential subject is not the holder")
        credentials.append(credential)
        raw.append(token)
    if challenges is not None:
        challenges.consume(challenge, domain)
    return Presentation(holder=holder, credentials=credentials, raw=raw)


# --- challenges ------------------------------------------------------------------------


class ChallengeStore:
    """One-time presentation challenges: issued for a domain, consumed at most once.

    In memory by default; with ``path``, in an SQLite table
    ``challenges(challenge TEXT PRIMARY KEY, domain TEXT, expires REAL, used INTEGER)``
    shared by every process that opens the same file. :meth:`consume` is a single
    ``UPDATE … WHERE used = 0`` whose row count decides, so of two concurrent consumers
    (threads or processes) exactly one succeeds.
    """

    _PURGE_EVERY = 256

    def __init__(self, path: Path | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._memory: dict[str, tuple[str, float, bool]] = {}
        self._issued = 0
        self._db: sqlite3.Connection | None = None
        if path is not None:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                str(path), timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS challenges (challenge TEXT PRIMARY KEY, "
                "domain TEXT NOT NULL, expires REAL NOT NULL, used INTEGER NOT NULL DEFAULT 0)"
            )

    def issue(self, domain: str, ttl_s: float = 300) -> str:
        """A fresh 128-bit url-safe challenge for ``domain``, valid ``ttl_s`` seconds."""
        if not isinstance(domain, str) or not domain:
            raise ValueError("domain must be a non-empty string")
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        challenge = secrets.token_urlsafe(16)
        now = self._clock()
        with self._lock:
            self._issued += 1
            purge = self._issued % self._PURGE_EVERY == 0
            if self._db is not None:
                if purge:
                    self._db.execute("DELETE FROM challenges WHERE expires < ?", (now,))
                self._db.execute(
                    "INSERT INTO challenges (challenge, domain, expires, used) VALUES (?, ?, ?, 0)",
                    (challenge, domain, now + ttl_s),
                )
            else:
                if purge:
                    self._memory = {c: e for c, e in self._memory.items() if e[1] >= now}
                self._memory[challenge] = (domain, now + ttl_s, False)
        return challenge

    def consume(self, challenge: str, domain: str) -> None:
        """Use ``challenge`` once; refuse it if unknown, used, expired or for another domain."""
        refused = CredentialRejected("unknown or replayed challenge")
        if not isinstance(challenge, str) or not isinstance(domain, str):
            raise refused
        now = self._clock()
        with self._lock:
            if self._db is not None:
                cursor = self._db.execute(
                    "UPDATE challenges SET used = 1 "
                    "WHERE challenge = ? AND domain = ? AND used = 0 AND expires > ?",
                    (challenge, domain, now),
                )
                if cursor.rowcount != 1:
                    raise refused
                return
            entry = self._memory.get(challenge)
            if entry is None or entry[0] != domain or entry[2] or entry[1] <= now:
                raise refused
            self._memory[challenge] = (entry[0], entry[1], True)

    def close(self) -> None:
        """Close the SQLite connection (a no-op in memory)."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> ChallengeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
