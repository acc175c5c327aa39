"""did:key and VC-JOSE credentials: real keys, real signatures, every refusal.

Spec vectors come from the did:key test suite (w3c-ccg/did-method-key,
``test-vectors/ed25519-x25519.json`` and ``nist-curves.json``). Independent checks decode
did:keys with the base58 decoder written below and verify JWS with jwcrypto alone.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import rfc8785
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from jwcrypto import jwk, jws

from healthnft.credentials.challenges import ChallengeStore
from healthnft.credentials.did import (
    b58decode,
    b58encode,
    did_document,
    did_for,
    did_key_ed25519,
    did_key_p256,
    ed25519_from_secret,
    resolve_did_key,
    verification_method_id,
)
from healthnft.credentials.presentation import create_presentation, verify_presentation
from healthnft.credentials.vc import (
    CLOCK_SKEW_SECONDS,
    PATIENT_IDENTITY_TYPE,
    RECORD_ATTESTATION_TYPE,
    attest_record,
    credential_hash,
    issue_credential,
    issue_identity,
    verify_credential,
    verify_identity,
    verify_record_attestation,
)
from healthnft.errors import CredentialRejected

REPO = Path(__file__).resolve().parents[2]

# did:key spec vectors: Ed25519 private seed -> (did, publicKeyBase58).
ED25519_VECTORS = [
    (
        "00" * 32,
        "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
        "4zvwRjXUKGfvwnParsHAS3HuSVzV5cA4McphgmoCtajS",
    ),
    (
        "00" * 31 + "01",
        "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG",
        "6ASf5EcmmEHTgDJ4X4ZT5vT6iHVJBXPg5AN5YoTCpGWt",
    ),
    (
        "00" * 31 + "02",
        "did:key:z6MknGc3ocHs3zdPiJbnaaqDi58NGb4pk1Sp9WxWufuXSdxf",
        "8pM1DN3RiT8vbom5u1sNryaNT1nyL8CTTW3b5PwWXRBH",
    ),
    (
        "00" * 31 + "03",
        "did:key:z6MkvqoYXQfDDJRv8L4wKzxYeuKyVZBfi9Qo6Ro8MiLH3kDQ",
        "HPYVwAQmskwT1qEEeRzhoomyfyupJGASQQtCXSNG8XS2",
    ),
    (
        "00" * 31 + "04",
        "did:key:z6MkwW6aqMnjgrhJXFUko3NnZPGzVpkNzhYK7yEhnsibmLwL",
        "J3qYF7YJMKCqQke47UQwiHizgFUXapHxRxKmxbkar89x",
    ),
]
# did:key spec vectors: P-256 public JWK (x, y) -> did.
P256_VECTORS = [
    (
        "igrFmi0whuihKnj9R3Om1SoMph72wUGeFaBbzG2vzns",
        "efsX5b10x8yjyrj4ny3pGfLcY7Xby1KzgqOdqnsrJIM",
        "did:key:zDnaerx9CtbPJ1q36T5Ln5wYt3MQYeGRG5ehnPAmxcf5mDZpv",
    ),
    (
        "fyNYMN0976ci7xqiSdag3buk-ZCwgXU4kz9XNkBlNUI",
        "hW2ojTNfH7Jbi8--CJUo3OCbH3y5n91g-IMA9MLMbTU",
        "did:key:zDnaerDaTF5BXEavCrfRZEk316dpbLsfPDZ3WJ5hRTPFU2169",
    ),
]

T0 = datetime(2025, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=10)
WALLET = "0x" + "5a" * 20
OTHER_WALLET = "0x" + "a5" * 20
COMMITMENT = hashlib.sha256(b"record ciphertext").digest()
DOMAIN = "https://mint.hospital.example"


# --- independent helpers (no healthnft code) --------------------------------------------

_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _b58(text: str) -> bytes:
    num = 0
    for ch in text:
        num = num * 58 + _ALPHABET.index(ch)
    body = num.to_bytes((num.bit_length() + 7) // 8, "big")
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _jwk_for_did(did: str) -> jwk.JWK:
    """The public JWK a did:key names, decoded by hand and built by jwcrypto."""
    multikey = _b58(did.removeprefix("did:key:z"))
    if multikey[:2] == b"\xed\x01":
        return jwk.JWK(kty="OKP", crv="Ed25519", x=_b64u(multikey[2:]))
    assert multikey[:2] == b"\x80\x24"
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), multikey[2:])
    return jwk.JWK.from_pyca(public)


def _sign_raw(key, header: dict, payload: dict | bytes) -> str:
    """A compact JWS signed with cryptography directly: for forgeries."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = f"{_b64u(json.dumps(header).encode())}.{_b64u(body)}"
    if isinstance(key, Ed25519PrivateKey):
        signature = key.sign(signing_input.encode())
    else:
        r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input}.{_b64u(signature)}"


def _parts(token: str) -> tuple[dict, dict]:
    head, body, _ = token.split(".")
    return json.loads(_unb64u(head)), json.loads(_unb64u(body))


# --- fixtures ------------------------------------------------------------------------


class Party:
    def __init__(self, key) -> None:
        self.key = key
        self.did = did_for(key)


@pytest.fixture(scope="module")
def hospital() -> Party:
    return Party(ed25519_from_secret(b"hospital keystore secret, 32 b.."))


@pytest.fixture(scope="module")
def p256_hospital() -> Party:
    return Party(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="module")
def patient() -> Party:
    return Party(ed25519_from_secret(b"patient keystore secret, 32 by.."))


@pytest.fixture(scope="module")
def mallory() -> Party:
    return Party(Ed25519PrivateKey.generate())


def _attest(issuer: Party, patient: Party, **overrides) -> str:
    args = {
        "subject_did": patient.did,
        "wallet": WALLET,
        "commitment": COMMITMENT,
        "resource_type": "Observation",
        "category": "laboratory",
        "issued_at": T0,
        "valid_until": T0 + timedelta(days=365),
        "credential_id": "urn:uuid:5f1c7a0e-0000-4000-8000-000000000001",
    }
    args.update(overrides)
    return attest_record(issuer.key, issuer.did, **args)


def _check(token: str, patient: Party, **overrides) -> dict:
    args = {
        "commitment": COMMITMENT,
        "subject_did": patient.did,
        "wallet": WALLET,
        "is_issuer": lambda did: True,
        "is_revoked": lambda did, cid: False,
        "now": NOW,
    }
    args.update(overrides)
    return verify_record_attestation(token, **args)


def _refused(reason: str, fn, *args, **kwargs) -> str:
    """``fn`` raises CredentialRejected containing ``reason``, and no identifier or data."""
    with pytest.raises(CredentialRejected) as caught:
        fn(*args, **kwargs)
    message = str(caught.value)
    assert reason in message, message
    assert "\n" not in message
    for secret in ("did:key:z", WALLET[2:], OTHER_WALLET[2:], COMMITMENT.hex(), "urn:uuid"):
        assert secret.lower() not in message.lower(), message
    return message


# --- did:key ---------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "did", "base58"), ED25519_VECTORS)
def test_ed25519_spec_vectors(seed: str, did: str, base58: str) -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed))
    raw = key.public_key().public_bytes_raw()
    assert b58encode(raw) == base58
    assert did_key_ed25519(raw) == did == did_for(key) == did_for(key.public_key())
    assert resolve_did_key(did).public_bytes_raw() == raw == b58decode(base58)
    assert _b58(did[len("did:key:z") :]) == b"\xed\x01" + raw


@pytest.mark.parametrize(("x", "y", "did"), P256_VECTORS)
def test_p256_spec_vectors(x: str, y: str, did: str) -> None:
    numbers = ec.EllipticCurvePublicNumbers(
        int.from_bytes(_unb64u(x), "big"), int.from_bytes(_unb64u(y), "big"), ec.SECP256R1()
    )
    assert did_key_p256(numbers.public_key()) == did
    assert resolve_did_key(did).public_numbers() == numbers


def test_round_trip_and_prefixes() -> None:
    for _ in range(20):
        ed = Ed25519PrivateKey.generate()
        p256 = ec.generate_private_key(ec.SECP256R1())
        ed_did, p256_did = did_for(ed), did_for(p256)
        assert ed_did.startswith("did:key:z6Mk")
        assert p256_did.startswith("did:key:zDn")
        raw = ed.public_key().public_bytes_raw()
        assert resolve_did_key(ed_did).public_bytes_raw() == raw
        assert resolve_did_key(p256_did).public_numbers() == p256.public_key().public_numbers()


def test_base58_leading_zeros() -> None:
    for data in (b"", b"\0", b"\0\0\x01", b"\0\xff" * 5, bytes(range(40))):
        assert b58decode(b58encode(data)) == data
        assert _b58(b58encode(data)) == data
    assert b58encode(b"\0\0\x01") == "112"


def test_did_document(hospital: Party) -> None:
    doc = did_document(hospital.did)
    vm = verification_method_id(hospital.did)
    assert vm == hospital.did + "#" + hospital.did[len("did:key:") :]
    assert doc["id"] == hospital.did
    assert doc["verificationMethod"] == [
        {
            "id": vm,
            "type": "Multikey",
            "controller": hospital.did,
            "publicKeyMultibase": hospital.did[len("did:key:") :],
        }
    ]
    assert doc["assertionMethod"] == [vm]
    assert doc["authentication"] == [vm]


def _did(multikey: bytes) -> str:
    return "did:key:z" + b58encode(multikey)


@pytest.mark.parametrize(
    ("did", "reason"),
    [
        ("did:web:hospital.example", "not a did:key"),
        (42, "not a did:key"),
        ("did:key:", "not a base58btc multibase key"),
        ("did:key:u7QEAAAA", "not a base58btc multibase key"),
        ("did:key:z6Mk0OIl", "not a base58btc multibase key"),
        ("did:key:z" + "2" * 200, "not a base58btc multibase key"),
        (_did(b"\xe7\x01" + b"\x02" * 33), "unknown multicodec"),
        (_did(b"\xed\x01" + b"\x01" * 31), "Ed25519 key is not 32 bytes"),
        (_did(b"\xed\x01" + b"\x01" * 33), "Ed25519 key is not 32 bytes"),
        (_did(b"\x80\x24" + b"\x04" + b"\x01" * 32), "not a 33-byte compressed point"),
        (_did(b"\x80\x24" + b"\x02" + b"\x01" * 31), "not a 33-byte compressed point"),
        (_did(b"\x80\x24" + b"\x02" + b"\xff" * 32), "not a point on P-256"),
    ],
)
def test_resolve_refuses(did, reason: str) -> None:
    _refused(reason, resolve_did_key, did)


def test_key_type_refusals() -> None:
    _refused("32 bytes", did_key_ed25519, b"\x01" * 31)
    _refused("not a P-256", did_key_p256, ec.generate_private_key(ec.SECP384R1()).public_key())
    _refused("not a P-256", did_for, ec.generate_private_key(ec.SECP384R1()))
    _refused("unsupported key type", did_for, X25519PrivateKey.generate())
    _refused("unsupported key type", did_for, "did:key:z6Mk")


def test_ed25519_from_secret() -> None:
    secret = bytes(range(32))
    a, b = ed25519_from_secret(secret), ed25519_from_secret(secret)
    assert did_for(a) == did_for(b)
    assert did_for(ed25519_from_secret(bytes(range(1, 33)))) != did_for(a)
    # The derived key is not the secret used directly as an Ed25519 seed.
    assert did_for(a) != did_for(Ed25519PrivateKey.from_private_bytes(secret))
    _refused("at least 16 bytes", ed25519_from_secret, b"short")


# --- credentials -----------------------------------------------------------------------


@pytest.mark.parametrize("issuer_fixture", ["hospital", "p256_hospital"])
def test_round_trip(request: pytest.FixtureRequest, issuer_fixture: str, patient: Party) -> None:
    issuer: Party = request.getfixturevalue(issuer_fixture)
    token = _attest(issuer, patient)
    header, payload = _parts(token)
    assert header == {
        "alg": "EdDSA" if issuer_fixture == "hospital" else "ES256",
        "kid": verification_method_id(issuer.did),
        "typ": "vc+jwt",
        "cty": "vc",
    }
    assert payload == {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "id": "urn:uuid:5f1c7a0e-0000-4000-8000-000000000001",
        "type": ["VerifiableCredential", RECORD_ATTESTATION_TYPE],
        "issuer": issuer.did,
        "validFrom": "2025-01-01T00:00:00Z",
        "validUntil": "2026-01-01T00:00:00Z",
        "credentialSubject": {
            "id": patient.did,
            "wallet": WALLET,
            "commitment": "0x" + COMMITMENT.hex(),
            "recordType": "Observation",
            "category": "laboratory",
        },
    }
    # The signed payload bytes are the JCS (RFC 8785) form.
    assert _unb64u(token.split(".")[1]) == rfc8785.dumps(payload)
    assert verify_credential(token, now=NOW) == payload
    assert _check(token, patient) == payload
    # Wallet addresses compare case-insensitively.
    assert _check(token, patient, wallet=WALLET.upper().replace("0X", "0x")) == payload


def test_ed25519_issuance_is_deterministic(hospital: Party, patient: Party) -> None:
    assert _attest(hospital, patient) == _attest(hospital, patient)


@pytest.mark.parametrize("issuer_fixture", ["hospital", "p256_hospital"])
def test_independent_verification_with_jwcrypto(
    request: pytest.FixtureRequest, issuer_fixture: str, patient: Party
) -> None:
    issuer: Party = request.getfixturevalue(issuer_fixture)
    token = _attest(issuer, patient)
    key = _jwk_for_did(issuer.did)
    checker = jws.JWS()
    checker.deserialize(token)
    checker.verify(key)  # raises InvalidJWSSignature if wrong
    assert json.loads(checker.payload)["credentialSubject"]["commitment"] == "0x" + COMMITMENT.hex()
    assert checker.jose_header["kid"] == verification_method_id(issuer.did)
    # …and a stranger's key does not verify it.
    stranger = jwk.JWK.from_pyca(Ed25519PrivateKey.generate().public_key())
    other = jws.JWS()
    other.deserialize(token)
    with pytest.raises(jws.InvalidJWSSignature):
        other.verify(stranger)


def test_credential_signed_by_jwcrypto_verifies_here(hospital: Party, patient: Party) -> None:
    """The other direction: another JOSE stack's non-JCS JWS is accepted as well."""
    payload = _parts(_attest(hospital, patient))[1]
    signer = jws.JWS(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
    signer.add_signature(
        jwk.JWK.from_pyca(hospital.key),
        protected={
            "alg": "EdDSA",
            "kid": verification_method_id(hospital.did),
            "typ": "vc+jwt",
            "cty": "vc",
        },
    )
    assert _check(signer.serialize(compact=True), patient) == payload


def test_forged_by_another_key_under_the_issuers_kid(
    hospital: Party, mallory: Party, patient: Party
) -> None:
    header, payload = _parts(_attest(hospital, patient))
    forged = _sign_raw(mallory.key, header, payload)
    _refused("forged: signature does not verify for the issuer's key", _check, forged, patient)


def test_issuer_claim_not_matching_the_signing_key(
    hospital: Party, mallory: Party, patient: Party
) -> None:
    header, payload = _parts(_attest(hospital, patient))
    header["kid"] = verification_method_id(mallory.did)
    token = _sign_raw(mallory.key, header, payload)
    _refused("issuer and signing key differ", _check, token, patient)
    with pytest.raises(CredentialRejected, match="issuer and signing key differ"):
        attest_record(
            mallory.key,
            hospital.did,
            subject_did=patient.did,
            wallet=WALLET,
            commitment=COMMITMENT,
            resource_type="Observation",
            category="laboratory",
            issued_at=T0,
            valid_until=None,
            credential_id="urn:uuid:1",
        )


def _flip(segment: str, index: int) -> str:
    raw = bytearray(_unb64u(segment))
    raw[index] ^= 0x01
    return _b64u(bytes(raw))


def test_flipped_bytes_are_forgeries(hospital: Party, patient: Party) -> None:
    head, body, sig = _attest(hospital, patient).split(".")
    for index in (0, 50, len(_unb64u(body)) - 2):
        _refused("forged", _check, f"{head}.{_flip(body, index)}.{sig}", patient)
    for index in (0, 31, 32, 63):
        _refused("forged", _check, f"{head}.{body}.{_flip(sig, index)}", patient)
    # A changed commitment digit, re-encoded, is still a forgery.
    payload = _unb64u(body).replace(COMMITMENT.hex()[:8].encode(), b"00000000")
    _refused("forged", _check, f"{head}.{_b64u(payload)}.{sig}", patient)
    _refused("forged", _check, f"{head}.{body}.{_b64u(_unb64u(sig)[:63])}", patient)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"alg": "none"}, "alg must be EdDSA or ES256"),
        ({"alg": "HS256"}, "alg must be EdDSA or ES256"),
        ({"alg": "ES256"}, "alg does not match"),
        ({"typ": "JWT"}, "typ must be vc+jwt"),
        ({"typ": "vp+jwt"}, "typ must be vc+jwt"),
        ({"cty": "json"}, "cty must be vc"),
        ({"crit": ["exp"]}, "unsupported critical header"),
        ({"kid": None}, "kid is not a did:key verification method"),
        ({"kid": "key-1"}, "kid is not a did:key verification method"),
        ({"kid": "did:web:hospital.example#key-1"}, "not a did:key"),
    ],
)
def test_header_refusals(hospital: Party, patient: Party, change: dict, reason: str) -> None:
    header, payload = _parts(_attest(hospital, patient))
    header.update(change)
    _refused(reason, verify_credential, _sign_raw(hospital.key, header, payload), now=NOW)


def test_kid_with_a_foreign_fragment(hospital: Party, patient: Party) -> None:
    header, payload = _parts(_attest(hospital, patient))
    header["kid"] = hospital.did + "#key-1"
    token = _sign_raw(hospital.key, header, payload)
    _refused("kid is not a verification method of its DID", verify_credential, token, now=NOW)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "not a compact JWS"),
        ("a.b", "not a compact JWS"),
        ("a.b.c.d", "not a compact JWS"),
        ("e30=.e30.AA", "not base64url"),
        ("e3+.e30.AA", "not base64url"),
        (None, "not a compact JWS"),
        ("x" * 70_000, "not a compact JWS"),
    ],
)
def test_malformed_tokens(token, reason: str) -> None:
    _refused(reason, verify_credential, token, now=NOW)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"@context": ["https://www.w3.org/2018/credentials/v1"]}, "@context"),
        ({"type": ["HealthRecordAttestation"]}, "lacks VerifiableCredential"),
        ({"type": [1]}, "type is not a list of strings"),
        ({"issuer": None}, "no issuer"),
        ({"credentialSubject": "x"}, "credentialSubject is not an object"),
        ({"validFrom": None}, "validFrom is not a date-time"),
        ({"validFrom": "2025-01-01T00:00:00"}, "validFrom is not a date-time with time zone"),
        ({"validFrom": "2025-13-01T00:00:00Z"}, "validFrom is not a date-time"),
        ({"validUntil": "2024-01-01T00:00:00Z"}, "validUntil is not after validFrom"),
        ({"id": 7}, "id is not a string"),
    ],
)
def test_payload_refusals(hospital: Party, patient: Party, change: dict, reason: str) -> None:
    header, payload = _parts(_attest(hospital, patient))
    payload.update(change)
    _refused(reason, verify_credential, _sign_raw(hospital.key, header, payload), now=NOW)


def test_valid_from_is_required(hospital: Party, patient: Party) -> None:
    header, payload = _parts(_attest(hospital, patient))
    del payload["validFrom"]
    _refused("no validFrom", verify_credential, _sign_raw(hospital.key, header, payload), now=NOW)


def test_payload_not_an_object(hospital: Party) -> None:
    header = {"alg": "EdDSA", "kid": verification_method_id(hospital.did), "typ": "vc+jwt"}
    _refused("not a JSON object", verify_credential, _sign_raw(hospital.key, header, b"[1]"))
    _refused("not JSON", verify_credential, _sign_raw(hospital.key, header, b"{"))


def test_validity_window(hospital: Party, patient: Party) -> None:
    until = T0 + timedelta(days=365)
    token = _attest(hospital, patient, valid_until=until)
    skew = timedelta(seconds=CLOCK_SKEW_SECONDS)
    _refused("not yet valid", _check, token, patient, now=T0 - skew - timedelta(seconds=1))
    _refused("expired", _check, token, patient, now=until + skew)
    _refused("expired", _check, token, patient, now=until + timedelta(days=1))
    assert _check(token, patient, now=T0 - skew + timedelta(seconds=1))
    assert _check(token, patient, now=until + skew - timedelta(seconds=1))
    open_ended = _attest(hospital, patient, valid_until=None)
    assert "validUntil" not in _check(open_ended, patient, now=T0 + timedelta(days=9999))
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_credential(token, now=datetime(2025, 6, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        _attest(hospital, patient, issued_at=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="after valid_from"):
        _attest(hospital, patient, valid_until=T0)
    with pytest.raises(ValueError, match="after valid_from"):  # equal once whole seconds
        _attest(hospital, patient, valid_until=T0 + timedelta(milliseconds=500))


def test_binding_refusals(hospital: Party, patient: Party, mallory: Party) -> None:
    token = _attest(hospital, patient)
    _refused("bound to a different commitment", _check, token, patient, commitment=b"\0" * 32)
    _refused("bound to a different commitment", _check, token, patient, commitment=COMMITMENT[:31])
    _refused("bound to a different patient", _check, token, mallory)
    _refused("bound to a different wallet", _check, token, patient, wallet=OTHER_WALLET)


def test_issuer_trust_and_revocation(hospital: Party, mallory: Party, patient: Party) -> None:
    token = _attest(hospital, patient)
    _refused("signed by a non-issuer", _check, token, patient, is_issuer=lambda did: False)
    # A perfectly valid credential from a key that is not a registered hospital.
    rogue = _attest(mallory, patient)
    assert verify_credential(rogue, now=NOW)["issuer"] == mallory.did
    _refused(
        "signed by a non-issuer", _check, rogue, patient, is_issuer=lambda did: did == hospital.did
    )
    seen: list[tuple[str, str]] = []

    def revoked(issuer: str, credential_id: str) -> bool:
        seen.append((issuer, credential_id))
        return True

    _refused("revoked", _check, token, patient, is_revoked=revoked)
    assert seen == [(hospital.did, "urn:uuid:5f1c7a0e-0000-4000-8000-000000000001")]


def test_wrong_credential_type(hospital: Party, patient: Party) -> None:
    identity = issue_identity(
        hospital.key,
        hospital.did,
        subject_did=patient.did,
        wallet=WALLET,
        valid_from=T0,
        valid_until=None,
        credential_id="urn:uuid:id-1",
    )
    _refused("not a health record attestation", _check, identity, patient)
    attestation = _attest(hospital, patient)
    _refused(
        "not a patient wallet credential",
        verify_identity,
        attestation,
        is_issuer=lambda d: True,
        is_revoked=lambda d, c: False,
        now=NOW,
    )


def test_credential_hash() -> None:
    cid = "urn:uuid:5f1c7a0e-0000-4000-8000-000000000001"
    assert credential_hash(cid) == hashlib.sha256(cid.encode()).digest()
    assert len(credential_hash(cid)) == 32
    assert credential_hash(cid) != credential_hash(cid + "2")


def test_identity_credential(hospital: Party, patient: Party, mallory: Party) -> None:
    token = issue_identity(
        hospital.key,
        hospital.did,
        subject_did=patient.did,
        wallet=WALLET,
        valid_from=T0,
        valid_until=T0 + timedelta(days=30),
        credential_id="urn:uuid:id-1",
    )
    credential = verify_identity(
        token,
        is_issuer=lambda d: d == hospital.did,
        is_revoked=lambda d, c: False,
        subject_did=patient.did,
        wallet=WALLET,
        now=NOW,
    )
    assert credential["type"] == ["VerifiableCredential", PATIENT_IDENTITY_TYPE]
    assert credential["credentialSubject"] == {"id": patient.did, "wallet": WALLET}
    common = {"is_issuer": lambda d: True, "is_revoked": lambda d, c: False, "now": NOW}
    _refused(
        "bound to a different patient", verify_identity, token, subject_did=mallory.did, **common
    )
    _refused("bound to a different wallet", verify_identity, token, wallet=OTHER_WALLET, **common)
    _refused(
        "revoked",
        verify_identity,
        token,
        is_issuer=lambda d: True,
        is_revoked=lambda d, c: True,
        now=NOW,
    )
    _refused("expired", verify_identity, token, **{**common, "now": T0 + timedelta(days=31)})
    with pytest.raises(ValueError, match="wallet"):
        issue_identity(
            hospital.key,
            hospital.did,
            subject_did=patient.did,
            wallet="0x1234",
            valid_from=T0,
            valid_until=None,
            credential_id="urn:uuid:id-2",
        )


def test_generic_credential_with_status(hospital: Party, patient: Party) -> None:
    status = {"id": "https://hospital.example/status#7", "type": "BitstringStatusListEntry"}
    token = issue_credential(
        hospital.key,
        hospital.did,
        {"id": patient.did},
        types=["Consent"],
        valid_from=T0,
        credential_id="urn:uuid:c",
        status=status,
    )
    credential = verify_credential(token, now=NOW)
    assert credential["credentialStatus"] == status
    assert credential["type"] == ["VerifiableCredential", "Consent"]
    with pytest.raises(ValueError, match="canonical JSON"):
        issue_credential(hospital.key, hospital.did, {"x": b"bytes"}, types=[], valid_from=T0)


# --- presentations ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def wallet_credentials(hospital: Party, patient: Party) -> list[str]:
    identity = issue_identity(
        hospital.key,
        hospital.did,
        subject_did=patient.did,
        wallet=WALLET,
        valid_from=T0,
        valid_until=None,
        credential_id="urn:uuid:id-1",
    )
    return [identity, _attest(hospital, patient)]


def _present(holder: Party, credentials: list[str], **overrides) -> str:
    args = {"challenge": "c-123", "domain": DOMAIN, "now": NOW}
    args.update(overrides)
    return create_presentation(holder.key, holder.did, credentials, **args)


def _accept(token: str, **overrides):
    args = {"challenge": "c-123", "domain": DOMAIN, "now": NOW}
    args.update(overrides)
    return verify_presentation(token, **args)


def test_presentation_round_trip(patient: Party, wallet_credentials: list[str]) -> None:
    token = _present(patient, wallet_credentials)
    header, payload = _parts(token)
    assert header == {
        "alg": "EdDSA",
        "kid": verification_method_id(patient.did),
        "typ": "vp+jwt",
        "cty": "vp",
    }
    assert payload["type"] == ["VerifiablePresentation"]
    assert payload["holder"] == patient.did
    assert payload["nonce"] == "c-123" and payload["aud"] == DOMAIN
    assert payload["exp"] - payload["iat"] == 300
    assert payload["verifiableCredential"][0] == {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "id": "data:application/vc+jwt," + wallet_credentials[0],
        "type": "EnvelopedVerifiableCredential",
    }
    result = _accept(token)
    assert result.holder == patient.did
    assert result.raw == wallet_credentials
    assert [c["type"][1] for c in result.credentials] == [
        PATIENT_IDENTITY_TYPE,
        RECORD_ATTESTATION_TYPE,
    ]
    # Independent check of the holder's signature.
    checker = jws.JWS()
    checker.deserialize(token)
    checker.verify(_jwk_for_did(patient.did))


def test_presentation_challenge_domain_and_time(
    patient: Party, wallet_credentials: list[str]
) -> None:
    token = _present(patient, wallet_credentials, ttl_s=120)
    _refused("presentation is for a different challenge", _accept, token, challenge="c-124")
    _refused(
        "presentation is for a different domain", _accept, token, domain="https://evil.example"
    )
    late = NOW + timedelta(seconds=120 + CLOCK_SKEW_SECONDS)
    _refused("presentation expired", _accept, token, now=late)
    early = NOW - timedelta(seconds=CLOCK_SKEW_SECONDS + 1)
    _refused("presentation not yet valid", _accept, token, now=early)
    assert _accept(token, now=late - timedelta(seconds=1)).holder == patient.did


def test_foreign_holder_cannot_present_someone_elses_credential(
    mallory: Party, patient: Party, wallet_credentials: list[str]
) -> None:
    stolen = _present(mallory, wallet_credentials)
    _refused("credential 1: credential subject is not the holder", _accept, stolen)
    # Claiming to be the patient while signing with another key fails either way.
    header, payload = _parts(_present(patient, wallet_credentials))
    _refused(
        "forged: presentation signature does not verify for the holder's key",
        _accept,
        _sign_raw(mallory.key, header, payload),
    )
    header["kid"] = verification_method_id(mallory.did)
    _refused("holder and signing key differ", _accept, _sign_raw(mallory.key, header, payload))
    with pytest.raises(CredentialRejected, match="holder and signing key differ"):
        create_presentation(
            mallory.key, patient.did, wallet_credentials, challenge="c", domain=DOMAIN
        )


def test_presentation_with_tampered_credential(
    patient: Party, wallet_credentials: list[str]
) -> None:
    head, body, sig = wallet_credentials[1].split(".")
    payload = _unb64u(body).replace(COMMITMENT.hex()[:8].encode(), b"00000000")
    tampered = f"{head}.{_b64u(payload)}.{sig}"
    token = _present(patient, [wallet_credentials[0], tampered])
    _refused("credential 2: forged: signature does not verify for the issuer's key", _accept, token)


def test_presentation_with_expired_or_rogue_credential(
    hospital: Party, patient: Party, mallory: Party
) -> None:
    expired = _attest(hospital, patient, valid_until=T0 + timedelta(days=1))
    _refused("credential 1: expired", _accept, _present(patient, [expired]))
    header, payload = _parts(_present(patient, []))
    payload["verifiableCredential"] = [{"id": "https://x.example/vc", "type": "X"}]
    _refused("not an enveloped vc+jwt", _accept, _sign_raw(patient.key, header, payload))
    # A credential (vc+jwt) is not a presentation, and vice versa.
    _refused("typ must be vp+jwt", _accept, _attest(hospital, patient))
    _refused("typ must be vc+jwt", verify_credential, _present(patient, []), now=NOW)


def test_presentation_consumes_challenge(
    tmp_path: Path, patient: Party, wallet_credentials: list[str]
) -> None:
    store = ChallengeStore(tmp_path / "challenges.sqlite")
    challenge = store.issue(DOMAIN)
    token = _present(patient, wallet_credentials, challenge=challenge)
    assert _accept(token, challenge=challenge, challenges=store).holder == patient.did
    _refused("unknown or replayed challenge", _accept, token, challenge=challenge, challenges=store)
    other = ChallengeStore(tmp_path / "challenges.sqlite")
    _refused("unknown or replayed challenge", _accept, token, challenge=challenge, challenges=other)
    store.close()
    other.close()


# --- challenges ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_challenge_store(tmp_path: Path, backend: str) -> None:
    clock = [1_000_000.0]
    path = tmp_path / "c.sqlite" if backend == "sqlite" else None
    with ChallengeStore(path, clock=lambda: clock[0]) as store:
        first = store.issue(DOMAIN, ttl_s=300)
        assert len(bytes.fromhex(first)) == 16 and len(first) == 32  # 128 bits, hex
        assert first != store.issue(DOMAIN)
        store.consume(first, DOMAIN)
        _refused("unknown or replayed challenge", store.consume, first, DOMAIN)
        _refused("unknown or replayed challenge", store.consume, "never-issued", DOMAIN)
        _refused("unknown or replayed challenge", store.consume, None, DOMAIN)
        second = store.issue(DOMAIN, ttl_s=300)
        _refused("unknown or replayed challenge", store.consume, second, "https://evil.example")
        store.consume(second, DOMAIN)  # the wrong-domain attempt did not use it up
        third = store.issue(DOMAIN, ttl_s=300)
        clock[0] += 300
        _refused("unknown or replayed challenge", store.consume, third, DOMAIN)


def test_sqlite_store_shared_between_instances(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "challenges.sqlite"
    a, b = ChallengeStore(path), ChallengeStore(path)
    challenge = a.issue(DOMAIN)
    b.consume(challenge, DOMAIN)
    _refused("unknown or replayed challenge", a.consume, challenge, DOMAIN)
    _refused("unknown or replayed challenge", b.consume, challenge, DOMAIN)
    a.close()
    b.close()
    with sqlite3.connect(path) as db:
        columns = [(row[1], row[2]) for row in db.execute("PRAGMA table_info(challenges)")]
    assert columns == [
        ("challenge", "TEXT"),
        ("domain", "TEXT"),
        ("expires", "REAL"),
        ("used", "INTEGER"),
    ]


def test_concurrent_consumers_only_one_wins(tmp_path: Path) -> None:
    path = tmp_path / "challenges.sqlite"
    issuer = ChallengeStore(path)
    challenge = issuer.issue(DOMAIN)
    stores = [ChallengeStore(path) for _ in range(8)]
    barrier = threading.Barrier(len(stores))
    wins: list[int] = []

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            stores[i].consume(challenge, DOMAIN)
            wins.append(i)
        except CredentialRejected:
            pass

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    for store in [issuer, *stores]:
        store.close()


def test_replay_in_other_processes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "challenges.sqlite"
    with ChallengeStore(path) as store:
        challenge = store.issue(DOMAIN)
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from healthnft.credentials.challenges import ChallengeStore\n"
        "from healthnft.errors import CredentialRejected\n"
        "try:\n"
        "    ChallengeStore(Path(sys.argv[1])).consume(sys.argv[2], sys.argv[3])\n"
        "    print('ok')\n"
        "except CredentialRejected as exc:\n"
        "    print(exc)\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(path), challenge, DOMAIN],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for _ in range(4)
    ]
    outputs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outputs == ["ok"] + ["unknown or replayed challenge"] * 3


# --- timing ----------------------------------------------------------------------------


@pytest.mark.parametrize("issuer_fixture", ["hospital", "p256_hospital"])
def test_attestation_timing(
    request: pytest.FixtureRequest,
    issuer_fixture: str,
    patient: Party,
    capsys: pytest.CaptureFixture,
) -> None:
    issuer: Party = request.getfixturevalue(issuer_fixture)
    n = 2000
    tokens = []
    start = time.perf_counter()
    for i in range(n):
        tokens.append(_attest(issuer, patient, credential_id=f"urn:uuid:{i}"))
    issued = time.perf_counter()
    for token in tokens:
        _check(token, patient)
    verified = time.perf_counter()
    issue_us = (issued - start) / n * 1e6
    verify_us = (verified - issued) / n * 1e6
    with capsys.disabled():
        alg = "EdDSA" if issuer_fixture == "hospital" else "ES256"
        print(
            f"\n[{alg}] attest_record {issue_us:.1f} µs, verify_record_attestation "
            f"{verify_us:.1f} µs, issue+verify {issue_us + verify_us:.1f} µs per attestation"
        )
    assert issue_us < 1000 and verify_us < 2000  # generous: catches gross regressions only
