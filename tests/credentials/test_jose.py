"""The one JOSE layer: base64url, compact JWS with joserfc, and the unverified peeks.

Real keys and real signatures throughout; jwcrypto, an independent JOSE stack, checks
that what joserfc signs here is a standard JWS.
"""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from jwcrypto import jwk, jws

from healthnft.credentials import presentation_nonce, unverified_claims
from healthnft.credentials.jose import (
    b64url_decode,
    b64url_encode,
    parse_compact,
    sign_compact,
    verify_signature,
)
from healthnft.errors import InvalidInput


@given(st.binary(max_size=200))
def test_b64url_round_trips(data: bytes) -> None:
    encoded = b64url_encode(data)
    assert "=" not in encoded and "+" not in encoded and "/" not in encoded
    assert b64url_decode(encoded) == data


@pytest.mark.parametrize(
    ("segment", "reason"),
    [
        ("e30=", "not base64url"),  # padding
        ("e3+w", "not base64url"),  # standard alphabet
        ("e3/w", "not base64url"),
        ("e30 ", "not base64url"),
        ("A", "not base64url"),  # impossible length
        ("e31", "not canonical base64url"),  # unused trailing bits set
        ("AB", "not canonical base64url"),
    ],
)
def test_b64url_refuses_garbage(segment: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason) as info:
        b64url_decode(segment)
    assert info.value.code == "invalid_input"


def test_b64url_refuses_what_is_not_a_string() -> None:
    with pytest.raises(InvalidInput):
        b64url_decode(b"e30")  # type: ignore[arg-type]


def _keys(alg: str):
    private = (
        Ed25519PrivateKey.generate() if alg == "EdDSA" else ec.generate_private_key(ec.SECP256R1())
    )
    return private, private.public_key()


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_sign_and_verify_both_algorithms(alg: str) -> None:
    private, public = _keys(alg)
    header = {"alg": alg, "kid": "k1", "typ": "test+jwt", "zip": "DEF"}
    token = sign_compact(header, b"\x00payload", private)
    parts = parse_compact(token, max_chars=10_000)
    assert parts.header == header and parts.payload == b"\x00payload"
    assert token.split(".")[0] == b64url_encode(
        json.dumps(header, separators=(",", ":")).encode()
    )  # the header is written minified, in the order given
    assert verify_signature(token, public, [alg])
    # jwcrypto, independently, agrees.
    checker = jws.JWS()
    checker.deserialize(token)
    checker.verify(jwk.JWK.from_pyca(public), alg=alg)


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_tampered_or_foreign_signatures_are_refused(alg: str) -> None:
    private, public = _keys(alg)
    token = sign_compact({"alg": alg}, b"{}", private)
    head, payload, signature = token.split(".")
    flipped = signature[:5] + ("A" if signature[5] != "A" else "B") + signature[6:]
    assert not verify_signature(f"{head}.{payload}.{flipped}", public, [alg])
    assert not verify_signature(f"{head}.{b64url_encode(b'{ }')}.{signature}", public, [alg])
    assert not verify_signature(token, _keys(alg)[1], [alg])  # someone else's key
    assert not verify_signature(token, public, ["ES384"])  # alg not allowed


def test_an_algorithm_must_fit_the_key() -> None:
    private, _ = _keys("EdDSA")
    with pytest.raises(InvalidInput, match="cannot sign ES256"):
        sign_compact({"alg": "ES256"}, b"{}", private)
    with pytest.raises(InvalidInput):
        sign_compact({"alg": "EdDSA"}, b"{}", object())


def test_unverified_claims_and_presentation_nonce() -> None:
    private, _ = _keys("EdDSA")
    token = sign_compact({"alg": "EdDSA"}, b'{"nonce":"abc","aud":"d"}', private)
    assert unverified_claims(token) == {"nonce": "abc", "aud": "d"}
    assert presentation_nonce(token) == "abc"


@pytest.mark.parametrize(
    "token",
    ["", "a.b", "e30.e30", "e30.W10.AA", "e30.e3+.AA", "e30.bm9wZQ.AA", None, 7],
)
def test_peeks_refuse_garbage_with_invalid_input(token) -> None:
    with pytest.raises(InvalidInput):
        unverified_claims(token)
    with pytest.raises(InvalidInput, match="not a presentation"):
        presentation_nonce(token)


def test_presentation_nonce_needs_a_nonce() -> None:
    with pytest.raises(InvalidInput, match="not a presentation"):
        presentation_nonce(f"e30.{b64url_encode(b'{}')}.AA")
