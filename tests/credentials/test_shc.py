"""SMART Health Cards against the specification's own example cards and real bytes.

The example cards, issuer keys and CRL come unchanged from the spec repository
(../shared/data/shc); every refusal below is produced from real signed bytes — flipped,
re-compressed, re-signed or re-encoded — never from a mocked verifier.
"""

from __future__ import annotations

import base64
import json
import random
import shutil
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc.jwk import ECKey
from jwcrypto import jwk, jws

from healthnft.credentials import (
    TrustStore,
    build_bundle,
    decode_qr,
    encode_qr,
    export_card,
    new_issuer_key,
    read_card_inputs,
    verify_card,
)
from healthnft.credentials.shc import HEALTH_CARD_TYPE, QR_SINGLE_MAX_CHARS
from healthnft.credentials.shc.qr import QR_CONTENT
from healthnft.errors import (
    Conflict,
    CredentialRejected,
    InputNotFound,
    InvalidInput,
    InvalidRecord,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SHC = SHARED / "shc"
SYNTHEA = SHARED / "synthea"
EXAMPLE_ISS = "https://spec.smarthealth.cards/examples/issuer"
EXAMPLES = ("00", "01", "02", "03")
#: Example 03 (patient "Revoked, Johnny") carries rid vwAjHdarZuc; the example CRL lists
#: "vwAjHdarZuc.1687450765" and the card's nbf is 1687450764.657, i.e. before the cutoff.
REVOKED = {"03": "vwAjHdarZuc"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

needs_examples = pytest.mark.skipif(not SHC.is_dir(), reason="../shared/data/shc not present")


# --------------------------------------------------------------------------- helpers


def b64d(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def example_jws(n: str) -> str:
    return (SHC / f"example-{n}-d-jws.txt").read_text().strip()


def claims_of(compact: str) -> dict[str, Any]:
    return json.loads(zlib.decompress(b64d(compact.split(".")[1]), -15))


def deflate(claims: dict[str, Any]) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(orjson.dumps(claims)) + c.flush()


def sign(header: dict[str, Any] | str, payload: bytes, key) -> str:
    """Sign with jwcrypto, a JOSE stack independent of the one under test."""
    if isinstance(key, ECKey):
        key = jwk.JWK(**key.as_dict(private=True))
    token = jws.JWS(payload)
    protected = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    token.add_signature(key, alg="ES256", protected=protected)
    return token.serialize(compact=True)


def bundle_types(bundle: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] not in out:
            out.append(entry["resource"]["resourceType"])
    return out


@pytest.fixture(scope="module")
def trust() -> TrustStore:
    return TrustStore.from_pairs([f"{EXAMPLE_ISS}={SHC / 'issuer'}"])


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory):
    """A fresh issuer of our own, its key published in a folder, and a trust store for it."""
    key = new_issuer_key()
    out = tmp_path_factory.mktemp("issuer")
    iss = "https://hospital.example/shc"
    card = export_card(sample_resources(), key, iss, out, "base")
    return key, iss, out, TrustStore.from_folders({iss: out / "issuer"}), card


def sample_resources() -> list[dict[str, Any]]:
    """A Patient, an Immunization and an Observation, referencing each other as an EHR would."""
    return [
        {
            "resourceType": "Patient",
            "id": "p1",
            "meta": {"versionId": "3", "lastUpdated": "2024-01-01T00:00:00Z"},
            "text": {
                "status": "generated",
                "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>',
            },
            "identifier": [{"system": "http://hl7.org/fhir/sid/us-ssn", "value": "999-99-9999"}],
            "name": [
                {"use": "official", "family": "Example", "given": ["Pat"], "prefix": ["Ms."]},
                {"use": "maiden", "family": "Maiden"},
            ],
            "telecom": [{"system": "phone", "value": "555-0100"}],
            "gender": "female",
            "birthDate": "1980-02-03",
            "address": [{"city": "Boston"}],
        },
        {
            "resourceType": "Immunization",
            "id": "i1",
            "status": "completed",
            "vaccineCode": {
                "coding": [
                    {"system": "http://hl7.org/fhir/sid/cvx", "code": "207", "display": "x"}
                ],
                "text": "COVID-19 vaccine",
            },
            "patient": {"reference": "Patient/p1"},
            "encounter": {"reference": "urn:uuid:0f0f0f0f-outside-the-card"},
            "occurrenceDateTime": "2021-01-01",
            "lotNumber": "LOT1",
            "performer": [{"actor": {"display": "Example Hospital"}}],
        },
        {
            "resourceType": "Observation",
            "id": "o1",
            "status": "final",
            "code": {
                "coding": [{"system": "http://loinc.org", "code": "8310-5", "display": "Temp"}],
                "text": "Body temperature",
            },
            "subject": {"reference": "urn:uuid:p1"},
            "effectiveDateTime": "2021-01-02T10:00:00Z",
            "valueQuantity": {"value": 37.1, "unit": "Cel", "system": "http://unitsofmeasure.org"},
        },
    ]


# --------------------------------------------------------------------------- spec examples


def _inputs(n: str, form: str, rng: random.Random) -> list[Path]:
    if form == "file":
        return [SHC / f"example-{n}-e-file.smart-health-card"]
    if form == "jws":
        return [SHC / f"example-{n}-d-jws.txt"]
    chunks = sorted(SHC.glob(f"example-{n}-f-qr-code-numeric-value-*.txt"))
    while len(chunks) > 1 and chunks == sorted(chunks):
        rng.shuffle(chunks)
    return chunks


@needs_examples
@pytest.mark.parametrize("form", ["file", "jws", "qr"])
@pytest.mark.parametrize("n", EXAMPLES)
def test_spec_examples_verify_from_every_input_form(n: str, form: str, trust: TrustStore) -> None:
    paths = _inputs(n, form, random.Random(int(n)))
    if n == "02" and form == "qr":
        assert len(paths) == 3 and paths != sorted(paths)  # three chunks, out of order
    cards = read_card_inputs(paths)
    assert cards == [example_jws(n)]

    result = verify_card(cards[0], trust)
    source_bundle = json.loads((SHC / f"example-{n}-a-fhirBundle.json").read_text())
    assert result.iss == EXAMPLE_ISS
    if n in REVOKED:
        assert not result.valid
        assert result.reason.startswith(f"revoked (rid {REVOKED[n]}")
        assert result.payload is None and result.resource_types == []
    else:
        assert (result.valid, result.reason) == (True, "valid")
        assert result.resource_types == bundle_types(source_bundle)
        assert result.payload is not None
        assert result.payload["vc"]["credentialSubject"]["fhirBundle"] == source_bundle
    assert set(result.as_dict()) == {"valid", "reason", "iss", "resource_types"}
    assert "payload" not in repr(result)


@needs_examples
def test_example_03_is_revoked_by_the_crl_whatever_the_clock(trust: TrustStore) -> None:
    compact = example_jws("03")
    nbf = claims_of(compact)["nbf"]
    for now in (nbf + 60, time.time()):  # inside its validity window, and today (expired)
        result = verify_card(compact, trust, now=now)
        assert result.reason.startswith("revoked (rid vwAjHdarZuc"), result.reason


@needs_examples
def test_crl_timestamp_revokes_only_cards_issued_before_it(tmp_path: Path) -> None:
    compact = example_jws("03")
    nbf = claims_of(compact)["nbf"]  # 1687450764.657
    folder = tmp_path / "issuer"
    shutil.copytree(SHC / "issuer", folder)
    crl_path = next((folder / ".well-known" / "crl").glob("*.json"))
    crl = json.loads(crl_path.read_text())

    crl["rids"] = ["vwAjHdarZuc.1687450764"]  # cutoff just before the card's nbf
    crl_path.write_text(json.dumps(crl))
    store = TrustStore.from_folders({EXAMPLE_ISS: folder})
    assert verify_card(compact, store, now=nbf + 60).reason == "valid"

    crl["rids"] = ["vwAjHdarZuc.nan"]  # an unreadable cutoff fails closed
    crl_path.write_text(json.dumps(crl))
    store = TrustStore.from_folders({EXAMPLE_ISS: folder})
    assert verify_card(compact, store, now=nbf + 60).reason == "revoked (rid vwAjHdarZuc)"

    crl["rids"] = ["vwAjHdarZuc"]  # no cutoff: every card with this rid
    crl_path.write_text(json.dumps(crl))
    store = TrustStore.from_folders({EXAMPLE_ISS: folder})
    assert verify_card(compact, store, now=nbf + 60).reason == "revoked (rid vwAjHdarZuc)"

    crl_path.unlink()  # the key declares crlVersion: no list means unknown status
    store = TrustStore.from_folders({EXAMPLE_ISS: folder})
    result = verify_card(example_jws("00"), store)
    assert not result.valid and result.reason.startswith("revocation status unknown")


# --------------------------------------------------------------------------- refusals


def _with_signature(compact: str, signature: bytes) -> str:
    header, payload, _ = compact.split(".")
    return f"{header}.{payload}.{b64e(signature)}"


@needs_examples
def test_flipped_signature_byte_is_refused(trust: TrustStore) -> None:
    compact = example_jws("00")
    sig = bytearray(b64d(compact.split(".")[2]))
    sig[10] ^= 0x01
    result = verify_card(_with_signature(compact, bytes(sig)), trust)
    assert not result.valid
    assert result.reason.startswith("bad signature"), result.reason
    assert result.payload is None


@needs_examples
def test_any_changed_signature_character_is_refused(trust: TrustStore) -> None:
    compact = example_jws("00")
    header, payload, sig = compact.split(".")
    for i, ch in enumerate(sig):
        other = "A" if ch != "A" else "B"
        changed = f"{header}.{payload}.{sig[:i]}{other}{sig[i + 1 :]}"
        result = verify_card(changed, trust)
        assert not result.valid, f"signature char {i} changed, card still valid"
    # the last character carries 4 unused bits: a change there leaves the decoded bytes
    # identical, and is still refused, by name
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = sig[:-1] + alphabet[alphabet.index(sig[-1]) ^ 1]
    assert b64d(last) == b64d(sig)
    assert verify_card(f"{header}.{payload}.{last}", trust).reason == (
        "malformed JWS: signature is not canonical base64url"
    )


@needs_examples
def test_modified_payload_under_old_signature_is_refused(trust: TrustStore) -> None:
    compact = example_jws("00")
    header, _, sig = compact.split(".")
    claims = claims_of(compact)
    claims["vc"]["credentialSubject"]["fhirBundle"]["entry"][0]["resource"]["birthDate"] = (
        "1999-12-31"
    )
    forged = f"{header}.{b64e(deflate(claims))}.{sig}"
    result = verify_card(forged, trust)
    assert not result.valid
    assert result.reason.startswith("bad signature"), result.reason
    assert "1999" not in result.reason and "Anyperson" not in result.reason


@needs_examples
def test_changed_payload_characters_are_refused(trust: TrustStore) -> None:
    compact = example_jws("00")
    header, payload, sig = compact.split(".")
    for i in range(0, len(payload), max(1, len(payload) // 60)):
        other = "A" if payload[i] != "A" else "B"
        changed = f"{header}.{payload[:i]}{other}{payload[i + 1 :]}.{sig}"
        assert not verify_card(changed, trust).valid, f"payload char {i} changed, still valid"


@needs_examples
def test_unknown_issuer_is_refused(trust: TrustStore, issuer) -> None:
    result = verify_card(example_jws("00"), TrustStore())
    assert not result.valid
    assert result.reason.startswith(f"unknown issuer {EXAMPLE_ISS}"), result.reason
    assert result.iss == EXAMPLE_ISS

    *_, own_card = issuer  # a genuine card of an issuer the example store does not trust
    result = verify_card(own_card.jws, trust)
    assert result.reason.startswith("unknown issuer https://hospital.example/shc")


@needs_examples
def test_card_signed_by_another_key_with_the_same_kid_is_refused(trust: TrustStore) -> None:
    compact = example_jws("00")
    header_b64, payload_b64, _ = compact.split(".")
    impostor = new_issuer_key()
    forged = sign(b64d(header_b64).decode(), b64d(payload_b64), impostor)
    assert forged.split(".")[:2] == [header_b64, payload_b64]  # same header, kid, payload
    result = verify_card(forged, trust)
    assert not result.valid
    assert result.reason.startswith("bad signature"), result.reason


@needs_examples
@pytest.mark.parametrize("n", ["00", "01"])
def test_der_encoded_signature_is_refused_by_name(n: str, trust: TrustStore) -> None:
    compact = example_jws(n)
    raw = b64d(compact.split(".")[2])
    assert len(raw) == 64
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    result = verify_card(_with_signature(compact, der), trust)
    assert not result.valid
    assert result.reason == "DER-encoded signature: JWS requires raw r||s"


@needs_examples
def test_nbf_in_the_future_is_refused(trust: TrustStore, issuer, tmp_path: Path) -> None:
    nbf = claims_of(example_jws("00"))["nbf"]
    result = verify_card(example_jws("00"), trust, now=nbf - 3600)
    assert not result.valid and result.reason == "not yet valid: nbf is in the future"

    key, iss, _, store, _ = issuer
    card = export_card(sample_resources(), key, iss, tmp_path, "later", nbf=time.time() + 86400)
    assert verify_card(card.jws, store).reason == "not yet valid: nbf is in the future"
    assert verify_card(card.jws, store, now=time.time() + 2 * 86400).reason == "valid"


def test_refusals_from_our_own_signed_bytes(issuer) -> None:
    key, iss, _, store, card = issuer
    header = {"zip": "DEF", "alg": "ES256", "kid": card.kid}
    claims = claims_of(card.jws)

    zlib_wrapped = sign(header, zlib.compress(orjson.dumps(claims)), key)
    assert verify_card(zlib_wrapped, store).reason == "payload is not raw DEFLATE"

    uncompressed = sign({"alg": "ES256", "kid": card.kid}, orjson.dumps(claims), key)
    assert verify_card(uncompressed, store).reason.startswith("header zip must be DEF")

    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb_bytes = bomb.compress(b" " * (8 * 1024 * 1024)) + bomb.flush()
    assert verify_card(sign(header, bomb_bytes, key), store).reason.startswith(
        "payload inflates beyond"
    )

    other_kid = sign({**header, "kid": new_issuer_key().thumbprint()}, deflate(claims), key)
    assert verify_card(other_kid, store).reason.startswith("unknown key")

    not_a_card = {**claims, "vc": {**claims["vc"], "type": ["VerifiableCredential"]}}
    assert verify_card(sign(header, deflate(not_a_card), key), store).reason.startswith(
        "not a health card"
    )

    expired = {**claims, "exp": time.time() - 86400}
    assert verify_card(sign(header, deflate(expired), key), store).reason.startswith("expired")

    bad_fhir = json.loads(json.dumps(claims))
    bad_fhir["vc"]["credentialSubject"]["fhirBundle"]["entry"][1]["resource"]["status"] = "done"
    reason = verify_card(sign(header, deflate(bad_fhir), key), store).reason
    assert reason.startswith("invalid FHIR: entry 1") and "done" not in reason

    assert verify_card(sign(header, deflate(claims), key), store).reason == "valid"


def test_garbage_is_refused_not_raised(issuer) -> None:
    store = issuer[3]
    for junk in ("", "a.b", "a.b.c.d", "!!.??.**", "e30.e30.e30", "x" * 10):
        result = verify_card(junk, store)
        assert not result.valid and result.reason


# --------------------------------------------------------------------------- inputs


@needs_examples
def test_inputs_mixed_forms_keep_their_order() -> None:
    chunks = sorted(SHC.glob("example-02-f-qr-code-numeric-value-*.txt"))
    paths = [
        SHC / "example-01-d-jws.txt",
        chunks[2],
        SHC / "example-00-e-file.smart-health-card",
        chunks[0],
        chunks[1],
    ]
    assert read_card_inputs(paths) == [example_jws("01"), example_jws("02"), example_jws("00")]


@needs_examples
def test_smart_health_card_file_with_several_cards(tmp_path: Path, trust: TrustStore) -> None:
    f = tmp_path / "two.smart-health-card"
    f.write_text(json.dumps({"verifiableCredential": [example_jws("00"), example_jws("01")]}))
    cards = read_card_inputs([f])
    assert [verify_card(c, trust).valid for c in cards] == [True, True]


@needs_examples
def test_chunked_qr_errors_are_clear(tmp_path: Path) -> None:
    chunks = sorted(SHC.glob("example-02-f-qr-code-numeric-value-*.txt"))
    with pytest.raises(InvalidRecord, match="missing chunk 2 of 3"):
        read_card_inputs([chunks[2], chunks[0]])
    with pytest.raises(InvalidRecord, match="appears twice"):
        read_card_inputs([chunks[0], chunks[0], chunks[1], chunks[2]])

    text = chunks[1].read_text().strip()
    mixed = tmp_path / "mixed.txt"
    mixed.write_text(text.replace("shc:/2/3/", "shc:/2/4/", 1))
    with pytest.raises(InvalidRecord, match="disagree on the total"):
        read_card_inputs([chunks[0], mixed, chunks[2]])

    single = (SHC / "example-00-f-qr-code-numeric-value-0.txt").read_text().strip()
    for name, content, message in [
        ("odd.txt", single + "1", "odd number of digits"),
        ("range.txt", single[:5] + "99" + single[7:], "out of range"),
        ("letters.txt", single[:20] + "x" + single[21:], "other than digits"),
        ("empty.txt", "shc:/", "no digits"),
        ("notjws.txt", "shc:/" + "00" * 30, "does not decode to a compact JWS"),
    ]:
        bad = tmp_path / name
        bad.write_text(content)
        with pytest.raises(InvalidRecord, match=message) as info:
            read_card_inputs([bad])
        assert single[5:40] not in str(info.value)  # digits are encoded health data


def test_input_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputNotFound):
        read_card_inputs([tmp_path / "absent.smart-health-card"])
    with pytest.raises(InputNotFound):
        read_card_inputs([])
    prose = tmp_path / "note.txt"
    prose.write_text("Patient John Doe, vaccinated")
    with pytest.raises(InvalidRecord, match="not a SMART Health Card") as info:
        read_card_inputs([prose])
    assert "John" not in str(info.value)
    for content, message in [
        ("{not json", "not valid JSON"),
        ('{"verifiableCredential": []}', "no verifiableCredential"),
        ('{"verifiableCredential": ["abc"]}', r"verifiableCredential\[0\] is not a compact JWS"),
    ]:
        f = tmp_path / "bad.smart-health-card"
        f.write_text(content)
        with pytest.raises(InvalidRecord, match=message):
            read_card_inputs([f])


def test_qr_encoding_is_one_code_and_chunks_are_still_read() -> None:
    """One code is written (chunking is deprecated by the spec); chunks are still read."""
    short = "eyJ6aXAiOiJERUYifQ.abc-_.XYZ"
    code = encode_qr(short)
    assert code.startswith("shc:/") and code[5:].isdigit()
    assert decode_qr([code]) == short
    head, sig = "eyJ6aXAiOiJERUYifQ.", ".sig"
    longest = head + "A" * (QR_SINGLE_MAX_CHARS - len(head) - len(sig)) + sig
    assert len(longest) == QR_SINGLE_MAX_CHARS and decode_qr([encode_qr(longest)]) == longest
    too_long = "eyJ6aXAiOiJERUYifQ." + "A" * 3000 + ".sig"
    with pytest.raises(InvalidInput, match="too large for one QR code"):
        encode_qr(too_long)
    # Chunks as an older issuer printed them: read back in any order.
    digits = encode_qr("eyJ6aXAiOiJERUYifQ.abc.sig")[5:]
    chunks = [f"shc:/{i}/3/{digits[a:b]}" for i, (a, b) in
              enumerate([(0, 16), (16, 34), (34, len(digits))], 1)]  # fmt: skip
    assert decode_qr(chunks[::-1]) == "eyJ6aXAiOiJERUYifQ.abc.sig"


# --------------------------------------------------------------------------- trust store


def test_trust_store_entries_are_checked_up_front(tmp_path: Path) -> None:
    with pytest.raises(CredentialRejected, match="ISS=FOLDER"):
        TrustStore.from_pairs(["https://x.example/issuer"])
    with pytest.raises(InputNotFound):
        TrustStore.from_pairs([f"https://x.example/issuer={tmp_path / 'absent'}"])
    with pytest.raises(CredentialRejected, match="jwks.json"):
        TrustStore.from_pairs([f"https://x.example/issuer={tmp_path}"])
    (tmp_path / ".well-known").mkdir()
    (tmp_path / ".well-known" / "jwks.json").write_text('{"keys": "nope"}')
    with pytest.raises(CredentialRejected, match="not a JWK set"):
        TrustStore.from_pairs([f"https://x.example/issuer={tmp_path}"])


@needs_examples
def test_trust_store_accepts_a_trailing_slash(trust: TrustStore) -> None:
    store = TrustStore.from_pairs([f"{EXAMPLE_ISS}/={SHC / 'issuer'}"])
    assert store.issuers == (EXAMPLE_ISS,) and EXAMPLE_ISS in store
    assert verify_card(example_jws("00"), store).valid


@needs_examples
def test_any_issuer_source_plugs_into_the_trust_store() -> None:
    """The seam a network fetcher would use: anything with jwks() and crl(kid)."""

    class InMemory:
        def __init__(self, folder: Path) -> None:
            self.keys = json.loads((folder / ".well-known" / "jwks.json").read_text())
            self.crls = {
                p.stem: json.loads(p.read_text())
                for p in (folder / ".well-known" / "crl").glob("*.json")
            }

        def jwks(self) -> dict[str, Any]:
            return self.keys

        def crl(self, kid: str) -> dict[str, Any] | None:
            return self.crls.get(kid)

    store = TrustStore({EXAMPLE_ISS: InMemory(SHC / "issuer")})
    assert verify_card(example_jws("00"), store).valid
    assert verify_card(example_jws("03"), store).reason.startswith("revoked")


# --------------------------------------------------------------------------- export


def test_export_round_trip(issuer) -> None:
    key, iss, out, store, card = issuer
    result = verify_card(card.jws, store)
    assert (result.valid, result.reason, result.iss) == (True, "valid", iss)
    assert result.resource_types == ["Patient", "Immunization", "Observation"]
    assert card.resource_types == ("Patient", "Immunization", "Observation")

    header_b64, payload_b64, sig_b64 = card.jws.split(".")
    assert b64d(header_b64) == orjson.dumps({"zip": "DEF", "alg": "ES256", "kid": key.thumbprint()})
    assert len(b64d(sig_b64)) == 64
    with pytest.raises(zlib.error):
        zlib.decompress(b64d(payload_b64))  # raw DEFLATE: no zlib header
    minified = zlib.decompress(b64d(payload_b64), -15)
    assert minified == orjson.dumps(orjson.loads(minified))  # minified JSON

    # the same files a holder would present, through the same reader
    assert card.card_file.name == "base.smart-health-card"
    assert read_card_inputs([card.card_file]) == [card.jws]
    assert [p.name for p in card.qr_text_files] == ["base-qr.txt"]
    assert read_card_inputs(list(card.qr_text_files)) == [card.jws]
    assert decode_qr([card.qr_text_files[0].read_text()]) == card.jws
    (png,) = card.qr_png_files
    assert png.read_bytes()[:8] == PNG_MAGIC

    jwks = json.loads(card.jwks_file.read_text())
    assert card.jwks_file == out / "issuer" / ".well-known" / "jwks.json"
    (published,) = jwks["keys"]
    assert published["kid"] == card.kid == key.thumbprint()
    assert (published["use"], published["alg"], published["crv"]) == ("sig", "ES256", "P-256")
    assert "d" not in published
    assert set(card.as_dict()) >= {"iss", "kid", "card_file", "qr_png_files", "jwks_file"}


def test_export_minimizes_resources_as_the_spec_asks(issuer) -> None:
    *_, card = issuer
    claims = claims_of(card.jws)
    assert claims["iss"] == "https://hospital.example/shc"
    assert claims["vc"]["type"] == [HEALTH_CARD_TYPE]
    subject = claims["vc"]["credentialSubject"]
    assert subject["fhirVersion"] == "4.0.1"
    bundle = subject["fhirBundle"]
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "collection")
    assert [e["fullUrl"] for e in bundle["entry"]] == ["resource:0", "resource:1", "resource:2"]
    patient, immunization, observation = (e["resource"] for e in bundle["entry"])
    assert patient == {
        "resourceType": "Patient",
        "name": [{"family": "Example", "given": ["Pat"]}],
        "birthDate": "1980-02-03",
    }
    assert immunization["patient"] == {"reference": "resource:0"}
    assert "encounter" not in immunization  # pointed outside the card
    assert immunization["vaccineCode"] == {
        "coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "207"}]
    }
    assert immunization["performer"] == [{"actor": {"display": "Example Hospital"}}]
    assert observation["subject"] == {"reference": "resource:0"}
    assert "text" not in observation["code"]
    for res in (patient, immunization, observation):
        assert not {"id", "meta", "text"} & set(res)


def _many_observations(n: int) -> list[dict[str, Any]]:
    resources = sample_resources()[:1]
    rng = random.Random(7)
    for i in range(n):
        resources.append(
            {
                "resourceType": "Observation",
                "id": f"o{i}",
                "status": "final",
                "code": {
                    "coding": [{"system": "http://loinc.org", "code": f"{1000 + i}-{i % 10}"}]
                },
                "subject": {"reference": "Patient/p1"},
                "valueQuantity": {"value": rng.randint(1, 10**6), "unit": "mg"},
            }
        )
    return resources


def test_a_card_is_one_qr_code_of_version_22_at_most(issuer) -> None:
    *_, card = issuer
    (text,) = card.qr_text_files
    content = text.read_text().strip()
    assert QR_CONTENT.fullmatch(content).group(1) is None  # shc:/<digits>, not a chunk
    (png,) = card.qr_png_files
    data = png.read_bytes()
    assert data[:8] == PNG_MAGIC
    width = struct.unpack(">I", data[16:20])[0]
    assert width <= (17 + 4 * 22 + 2 * 4) * 4  # version 22 at scale 4, border 4


def test_a_card_too_large_for_one_qr_code_is_refused_not_chunked(issuer, tmp_path: Path) -> None:
    """Chunked QR codes are deprecated by the spec: a card too large for one version 22
    code is refused before anything is written (it used to be split in chunks); the
    card file alone (``qr=False``) is what such a card can be exported as."""
    key, iss, _, store, _ = issuer
    resources = _many_observations(60)
    out = tmp_path / "card"
    with pytest.raises(InvalidInput, match="too large for one QR code") as info:
        export_card(resources, key, iss, out, "labs")
    assert "--no-qr" in str(info.value) and "fewer records" in str(info.value)
    assert not out.exists()
    card = export_card(resources, key, iss, out, "labs", qr=False)
    assert len(card.jws) > QR_SINGLE_MAX_CHARS
    assert card.qr_text_files == () and card.qr_png_files == ()
    assert sorted(p.name for p in out.iterdir()) == ["issuer", "labs.smart-health-card"]
    assert read_card_inputs([card.card_file]) == [card.jws]
    assert verify_card(card.jws, store).valid


def test_export_never_overwrites_a_card_unless_asked(issuer, tmp_path: Path) -> None:
    key, iss, _, _, _ = issuer
    first = export_card(sample_resources(), key, iss, tmp_path, "card")
    kept = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert set(kept) == {"card.smart-health-card", "card-qr.txt", "card-qr.png"}
    with pytest.raises(Conflict, match="--force"):
        export_card(sample_resources(), key, iss, tmp_path, "card")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == kept
    second = export_card(sample_resources(), key, iss, tmp_path, "card", replace=True,
                         nbf=time.time() + 1)  # fmt: skip
    assert second.jws != first.jws
    assert read_card_inputs([second.card_file]) == [second.jws]
    assert read_card_inputs(list(second.qr_text_files)) == [second.jws]
    # A card replaced without a QR code leaves no QR code of the card before it.
    export_card(sample_resources(), key, iss, tmp_path, "card", replace=True, qr=False)
    assert not (tmp_path / "card-qr.txt").exists() and not (tmp_path / "card-qr.png").exists()


def test_export_into_a_file_is_refused_and_the_file_kept(issuer, tmp_path: Path) -> None:
    key, iss, _, _, _ = issuer
    existing = tmp_path / "Jane Roe.pdf"
    existing.write_bytes(b"%PDF-1.7 kept")
    for out in (existing, existing / "inside"):
        with pytest.raises(InvalidInput, match="not a folder") as info:
            export_card(sample_resources(), key, iss, out, "card")
        assert "Jane" not in str(info.value)
    assert existing.read_bytes() == b"%PDF-1.7 kept"
    assert [p.name for p in tmp_path.iterdir()] == ["Jane Roe.pdf"]


def test_an_exported_card_and_its_qr_code_are_private(issuer) -> None:
    *_, card = issuer
    for path in (card.card_file, *card.qr_text_files, *card.qr_png_files):
        assert path.stat().st_mode & 0o077 == 0, path.name  # health data: owner only
    assert card.jwks_file.stat().st_mode & 0o044  # a public key, to be published


def test_export_merges_keys_into_an_existing_jwks(tmp_path: Path) -> None:
    iss = "https://clinic.example/issuer"
    first, second = new_issuer_key(), new_issuer_key()
    old = export_card(sample_resources(), first, iss, tmp_path, "old")
    new = export_card(sample_resources(), second, iss, tmp_path, "new")
    kids = [k["kid"] for k in json.loads(new.jwks_file.read_text())["keys"]]
    assert kids == [first.thumbprint(), second.thumbprint()]
    store = TrustStore.from_folders({iss: tmp_path / "issuer"})
    assert verify_card(old.jws, store).valid and verify_card(new.jws, store).valid


def test_export_refuses_bad_input(tmp_path: Path) -> None:
    key = new_issuer_key()
    with pytest.raises(InvalidRecord, match="https"):
        export_card(sample_resources(), key, "http://insecure.example", tmp_path, "x")
    with pytest.raises(InvalidRecord, match="https"):
        export_card(sample_resources(), key, "https://trailing.example/", tmp_path, "x")
    with pytest.raises(InvalidRecord, match="file name"):
        export_card(sample_resources(), key, "https://a.example", tmp_path, "../escape")
    with pytest.raises(CredentialRejected):
        public_only = ECKey.import_key(key.as_dict(private=False))
        export_card(sample_resources(), public_only, "https://a.example", tmp_path, "x")
    without_patient = sample_resources()[1:]  # Immunization.patient cannot point anywhere
    with pytest.raises(InvalidRecord, match="resource 0: invalid Immunization: patient"):
        export_card(without_patient, key, "https://a.example", tmp_path, "x")


def test_new_issuer_key_is_a_p256_signing_key_named_by_its_thumbprint() -> None:
    key = new_issuer_key()
    assert key.is_private
    assert (key["kty"], key["crv"], key["kid"]) == ("EC", "P-256", key.thumbprint())
    assert new_issuer_key().thumbprint() != key.thumbprint()


@pytest.mark.skipif(not SYNTHEA.is_dir(), reason="../shared/data/synthea not present")
def test_export_from_a_synthea_patient(tmp_path: Path) -> None:
    source = next(p for p in sorted(SYNTHEA.glob("*.json")) if "Information" not in p.name)
    entries = json.loads(source.read_text())["entry"]
    picked = []
    for rtype in ("Patient", "Immunization", "Observation"):
        picked.append(
            next(e["resource"] for e in entries if e["resource"]["resourceType"] == rtype)
        )
    key, iss = new_issuer_key(), "https://synthea.example/issuer"
    card = export_card(picked, key, iss, tmp_path, "synthea")
    result = verify_card(card.jws, TrustStore.from_folders({iss: tmp_path / "issuer"}))
    assert result.valid, result.reason
    assert result.resource_types == ["Patient", "Immunization", "Observation"]
    bundle = claims_of(card.jws)["vc"]["credentialSubject"]["fhirBundle"]
    assert bundle["entry"][1]["resource"]["patient"] == {"reference": "resource:0"}  # urn:uuid
    assert "urn:uuid" not in json.dumps(bundle)  # nothing points outside the card
    assert set(bundle["entry"][0]["resource"]) == {"resourceType", "name", "birthDate"}


def test_build_bundle_keeps_local_and_resolves_absolute_references() -> None:
    bundle = build_bundle(
        [
            {"resourceType": "Patient", "id": "p", "birthDate": "2000-01-01"},
            {
                "resourceType": "Observation",
                "id": "o",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "1-8"}]},
                "subject": {"reference": "https://ehr.example/fhir/Patient/p/_history/2"},
                "contained": [{"resourceType": "Device", "id": "d1"}],
                "device": {"reference": "#d1"},
            },
        ]
    )
    obs = bundle["entry"][1]["resource"]
    assert obs["subject"] == {"reference": "resource:0"}
    assert obs["device"] == {"reference": "#d1"}
    assert obs["contained"] == [{"resourceType": "Device", "id": "d1"}]
