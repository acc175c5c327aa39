"""Decimals travel exactly, from the hospital's file to the wallet (issue #12).

FHIR gives a decimal's precision meaning: ``5.60`` is not ``5.6``. These tests mint
a bundle written by hand (so the exact digits are known) through the real CLI, open
it as the patient would, and check every numeric datatype FHIR has — decimal
(``valueQuantity``, ``referenceRange`` low/high, component quantities, ``SampledData``,
ratios, dose quantities), integer, positiveInt and unsignedInt — comes back as sent,
that ``verify`` still holds, and that a changed digit (or a trailing zero) is a
different record with a different commitment, not a duplicate of the first.
"""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import rfc8785

from conftest import run_cli
from healthnft.network import DEMO_PASSPHRASE, Network
from healthnft.records import SourceResource, commit, prepare

PATIENT = "urn:uuid:5a1e0000-0000-4000-8000-000000000001"

#: The bundle as the hospital wrote it: each number's spelling is part of the test.
BUNDLE = """{"resourceType": "Bundle", "type": "collection", "entry": [
 {"resource": {"resourceType": "Patient", "id": "5a1e0000-0000-4000-8000-000000000001",
   "gender": "female", "birthDate": "1970-01-02", "multipleBirthInteger": 2}},
 {"resource": {"resourceType": "Observation", "id": "obs-1", "status": "final",
   "code": {"text": "Hemoglobin A1c"}, "subject": {"reference": "PATIENT_REF"},
   "effectiveDateTime": "2020-01-02",
   "valueQuantity": {"value": 5.60, "unit": "%"},
   "referenceRange": [{"low": {"value": 0.010, "unit": "%"},
                       "high": {"value": 1.0e2, "unit": "%"}}],
   "component": [
     {"code": {"text": "big"}, "valueQuantity": {"value": 1234567890.12345678, "unit": "1"}},
     {"code": {"text": "tiny"}, "valueQuantity": {"value": 0.0000001, "unit": "1"}},
     {"code": {"text": "negative"}, "valueQuantity": {"value": -0.50, "unit": "1"}},
     {"code": {"text": "count"}, "valueInteger": 7},
     {"code": {"text": "ratio"}, "valueRatio": {"numerator": {"value": 1.50},
                                                "denominator": {"value": 2.000}}},
     {"code": {"text": "trace"}, "valueSampledData": {
        "origin": {"value": 0.00}, "period": 10.0, "factor": 1.000, "lowerLimit": -0.50,
        "upperLimit": 2.50, "dimensions": 1, "data": "1 2 3"}}]}},
 {"resource": {"resourceType": "Immunization", "id": "imm-1", "status": "completed",
   "vaccineCode": {"text": "flu"}, "patient": {"reference": "PATIENT_REF"},
   "occurrenceDateTime": "2020-01-03", "doseQuantity": {"value": 0.50, "unit": "mL"},
   "protocolApplied": [{"doseNumberPositiveInt": 1}]}},
 {"resource": {"resourceType": "ImagingStudy", "id": "img-1", "status": "available",
   "subject": {"reference": "PATIENT_REF"}, "started": "2020-01-04",
   "numberOfSeries": 1, "numberOfInstances": 0,
   "series": [{"uid": "1.2.3", "number": 0,
               "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM",
                            "code": "CT"}}]}}
]}""".replace("PATIENT_REF", PATIENT)

#: Where each number is, and how it was written.
NUMBERS: dict[str, list[tuple[tuple[Any, ...], str]]] = {
    "Patient": [(("multipleBirthInteger",), "2")],
    "Observation": [
        (("valueQuantity", "value"), "5.60"),
        (("referenceRange", 0, "low", "value"), "0.010"),
        (("referenceRange", 0, "high", "value"), "1.0e2"),
        (("component", 0, "valueQuantity", "value"), "1234567890.12345678"),
        (("component", 1, "valueQuantity", "value"), "0.0000001"),
        (("component", 2, "valueQuantity", "value"), "-0.50"),
        (("component", 3, "valueInteger"), "7"),
        (("component", 4, "valueRatio", "numerator", "value"), "1.50"),
        (("component", 4, "valueRatio", "denominator", "value"), "2.000"),
        (("component", 5, "valueSampledData", "origin", "value"), "0.00"),
        (("component", 5, "valueSampledData", "period"), "10.0"),
        (("component", 5, "valueSampledData", "factor"), "1.000"),
        (("component", 5, "valueSampledData", "lowerLimit"), "-0.50"),
        (("component", 5, "valueSampledData", "upperLimit"), "2.50"),
        (("component", 5, "valueSampledData", "dimensions"), "1"),
    ],
    "Immunization": [
        (("doseQuantity", "value"), "0.50"),
        (("protocolApplied", 0, "doseNumberPositiveInt"), "1"),
    ],
    "ImagingStudy": [
        (("numberOfSeries",), "1"),
        (("numberOfInstances",), "0"),
        (("series", 0, "number"), "0"),
    ],
}


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


def _same_number(got: Any, sent: str) -> bool:
    """The same digits and exponent (1.0e2 is 1.0e+2, two significant digits, not 100)."""
    if isinstance(got, int) and not isinstance(got, bool):
        return "." not in sent and "e" not in sent and got == int(sent)
    return isinstance(got, Decimal) and got.as_tuple() == Decimal(sent).as_tuple()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A home with a hospital ``h1`` and one patient wallet (returned: home, address)."""
    home = tmp_path_factory.mktemp("decimals") / "home"
    net = Network.create(home, DEMO_PASSPHRASE, demo=True)
    try:
        net.add_participant("hospital", "h1")
        patient = net.add_participant("patient", "p1").address
    finally:
        net.close()
    return home, patient


def _mint(home: Path, patient: str, text: str, name: str) -> dict[str, Any]:
    path = home.parent / name
    path.write_text(text)
    proc = run_cli(home, "mint", str(path), "--issuer", "h1", "--patient", patient, "--json",
                   check=True)  # fmt: skip
    return json.loads(proc.stdout)


def _show(home: Path, token_id: int) -> tuple[str, dict[str, Any]]:
    proc = run_cli(home, "wallet", "show", str(token_id), "--json", check=True)
    return proc.stdout, json.loads(proc.stdout, parse_float=Decimal)


def test_every_numeric_type_comes_back_as_sent(home: tuple[Path, str]) -> None:
    path, patient = home
    minted = _mint(path, patient, BUNDLE, "decimals.json")
    assert minted["records_minted"] == 4 and minted["already_minted"] == 0
    seen = set()
    for token_id in minted["token_ids"]:
        text, shown = _show(path, token_id)
        resource = shown["resource"]
        rtype = resource["resourceType"]
        seen.add(rtype)
        for where, sent in NUMBERS[rtype]:
            got = _at(resource, where)
            assert _same_number(got, sent), f"{rtype}.{where}: sent {sent}, shown {got!r}"
        if rtype == "Observation":
            # Written without an exponent, a number is shown character for character.
            for sent in ("5.60", "0.010", "1234567890.12345678", "0.0000001", "-0.50",
                         "2.000", "0.00", "10.0", "1.000"):
                assert f": {sent}" in text, sent
            # What the hospital signed is what the chain's commitment opens to.
            verdict = run_cli(path, "verify", str(token_id), "--json")
            assert verdict.returncode == 0, verdict.stdout + verdict.stderr
            assert json.loads(verdict.stdout)["valid"] is True
            # A person reading it in the terminal sees them too.
            shown = run_cli(path, "wallet", "show", str(token_id), check=True).stdout
            assert '"value": 5.60' in shown and "1234567890.12345678" in shown
            # The file a patient saves carries the same digits.
            out = path.parent / f"record-{token_id}.json"
            run_cli(path, "wallet", "show", str(token_id), "--out", str(out), check=True)
            saved = json.loads(out.read_text(), parse_float=Decimal)
            assert _same_number(_at(saved, ("valueQuantity", "value")), "5.60")
            assert b"1234567890.12345678" in out.read_bytes()
    assert seen == set(NUMBERS)


@pytest.mark.parametrize(
    ("sent", "changed"),
    [("5.60", "5.600"), ("5.60", "5.61"),
     ("1234567890.12345678", "1234567890.12345679")],  # beyond a double's 17 digits
)
def test_a_changed_digit_is_a_different_record(home: tuple[Path, str], sent: str,
                                               changed: str) -> None:  # fmt: skip
    """Not deduplicated as "already minted", and committed to differently."""
    path, patient = home
    variant = BUNDLE.replace(f'"value": {sent},', f'"value": {changed},', 1)
    assert variant != BUNDLE
    minted = _mint(path, patient, variant, f"variant-{changed}.json")
    assert minted["records_minted"] >= 1  # the Observation is new; the others are not
    obs = [s for s in (_show(path, t)[1]["resource"] for t in minted["token_ids"])
           if s["resourceType"] == "Observation"]  # fmt: skip
    assert len(obs) == 1
    where = next(w for w, s in NUMBERS["Observation"] if s == sent)
    assert _same_number(_at(obs[0], where), changed)
    # Under one salt the commitments differ: the canonical bytes do.
    salt = bytes(32)
    first = prepare(SourceResource(_parsed(BUNDLE)[1], "a"))
    second = prepare(SourceResource(_parsed(variant)[1], "b"))
    assert commit(first.canonical, salt) != commit(second.canonical, salt)


def _parsed(text: str) -> list[dict[str, Any]]:
    from healthnft.records import parse_resources

    return [s.resource for s in parse_resources(text.encode(), "t")]


def test_a_decimal_written_as_a_big_integer_is_kept(home: tuple[Path, str]) -> None:
    """Past 2^53 an integer literal is kept exactly (FHIR decimals may be written without
    a point), not refused by JCS's integer domain nor rounded through a double."""
    path, patient = home
    big = BUNDLE.replace('"value": 5.60,', '"value": 12345678901234567890,', 1)
    minted = _mint(path, patient, big, "big-integer.json")
    (obs,) = [s for s in (_show(path, t) for t in minted["token_ids"])
              if s[1]["resource"]["resourceType"] == "Observation"]  # fmt: skip
    assert obs[1]["resource"]["valueQuantity"]["value"] == 12345678901234567890
    assert '"value": 12345678901234567890' in obs[0]


def test_canonical_bytes_keep_the_digits() -> None:
    """The committed bytes carry each decimal as written (no exponent) or, with an
    exponent, with its digits and exponent: one canonical spelling for each decimal."""
    obs = prepare(SourceResource(_parsed(BUNDLE)[1], "t")).canonical
    for sent in (b"5.60", b"0.010", b"1234567890.12345678", b"0.0000001", b"-0.50",
                 b"2.000", b"10.0"):
        assert b":" + sent in obs, sent
    assert b'"high":{"unit":"%","value":1.0e+2}' in obs
    # The same decimal however spelled canonicalizes alike; a different precision does not.
    spelled = BUNDLE.replace('"value": 1.0e2', '"value": 10E1')
    assert prepare(SourceResource(_parsed(spelled)[1], "t")).canonical == obs
    hundred = BUNDLE.replace('"value": 1.0e2', '"value": 100')
    assert prepare(SourceResource(_parsed(hundred)[1], "t")).canonical != obs


def test_a_record_minted_with_float_canonicalization_still_opens_and_verifies(
    tmp_path: Path,
) -> None:
    """Homes minted before exact decimals hold RFC 8785 float bytes (``5.6``, ``1e-7``):
    verification compares the stored bytes with the commitment, never a re-canonicalized
    copy (re-canonicalizing ``1e-7`` today would write ``0.0000001``)."""
    from healthnft.services import records as record_service

    home = tmp_path / "home"
    net = Network.create(home, DEMO_PASSPHRASE, demo=True)
    try:
        hospital = net.identity(net.add_participant("hospital", "h1").address)
        owner = net.add_participant("patient", "p1")
        resource = _parsed(BUNDLE)[1]
        legacy_bytes = rfc8785.dumps(orjson.loads(orjson.dumps(resource, default=float)))
        assert b'"value":5.6}' in legacy_bytes and b"1e-7" in legacy_bytes
        legacy = replace(prepare(SourceResource(resource, "legacy")), canonical=legacy_bytes)
        (token_id,) = net.minter().mint(hospital, owner.address, owner.enc_key,
                                        [legacy]).token_ids  # fmt: skip
        check = record_service.verify_record(net, token_id)
        assert check.valid, check.reason
        opened = record_service.open_record(net, None, token_id)
        assert str(opened.resource["valueQuantity"]["value"]) == "5.6"
        assert b"1e-7" in legacy_bytes and opened.resource_json().count(b"0.0000001") == 1
    finally:
        net.close()
