"""records: every Synthea resource reads, validates, cleans and canonicalizes."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import orjson
import pytest

from healthnft.errors import InputNotFound, InvalidRecord
from healthnft.records import (
    commit,
    is_reference_data,
    matches,
    new_salt,
    parse_resources,
    prepare,
    read_resources,
)
from healthnft.records.fhir import SourceResource, canonicalize, characterize, clean


def _all_sources(folder: Path) -> list[SourceResource]:
    return [s for f in sorted(folder.glob("*.json")) for s in read_resources(f)]


def test_every_resource_in_the_data_prepares(fhir_dir: Path) -> None:
    sources = _all_sources(fhir_dir)
    patient = [s for s in sources if not is_reference_data(s)]
    records = [prepare(s) for s in patient]
    assert len(records) == len(patient) > 0
    types = {r.resource_type for r in records}
    assert {"Patient", "Observation", "Immunization", "Encounter"} <= types
    assert all(r.canonical and r.category for r in records)
    # Observations carry their own category; others map by type.
    cats = {(r.resource_type, r.category) for r in records}
    assert ("Observation", "laboratory") in cats
    assert ("Immunization", "immunization") in cats


def test_reference_data_is_not_a_patient_record(fhir_dir: Path) -> None:
    kinds = {s.resource["resourceType"] for s in _all_sources(fhir_dir) if is_reference_data(s)}
    assert kinds <= {"Organization", "Practitioner", "PractitionerRole", "Location"}


def test_canonical_bytes_keep_original_timestamps() -> None:
    res = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "Body temperature"},
        "issued": "2020-03-06T20:20:23.175-08:00",
        "effectiveDateTime": "2020-03-06T20:20:23-08:00",
        "valueQuantity": {"value": 40.894, "unit": "Cel"},
    }
    rec = prepare(SourceResource(res, "t"))
    # A pydantic dump would write .175000; JCS over the original keeps .175.
    assert b'"issued":"2020-03-06T20:20:23.175-08:00"' in rec.canonical
    assert rec.canonical == canonicalize(res)
    assert rec.effective_date == "2020-03-06"
    # Key order does not matter to the canonical form.
    assert canonicalize(dict(reversed(list(res.items())))) == rec.canonical


def test_clean_drops_generated_narrative_and_normalizes_whitespace() -> None:
    res = {
        "resourceType": "Condition",
        "text": {"status": "generated", "div": "<div>Sinusitis</div>"},
        "code": {"text": "  Viral   sinusitis\n (disorder) "},
        "subject": {"reference": "urn:uuid:abc"},
    }
    out = clean(res)
    assert "text" not in out
    assert out["code"]["text"] == "Viral sinusitis (disorder)"
    assert res["text"]["div"]  # the input is not modified
    assert characterize(out) == ("condition", None)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not a FHIR resource"),
        (b'{"hello": "world"}', "not a FHIR resource"),
        (b'{"resourceType": "Bundle", "entry": [{"fullUrl": "x"}]}', "entry has no resource"),
        (b'{"resourceType": "NotAType"}', "unknown FHIR resource type"),
    ],
)
def test_bad_input_is_refused_with_a_clear_reason(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidRecord, match=message):
        for src in parse_resources(raw, "input.json"):
            prepare(src)


def test_invalid_resource_error_names_fields_not_values(fhir_dir: Path) -> None:
    obs = next(
        s.resource for s in _all_sources(fhir_dir) if s.resource["resourceType"] == "Observation"
    )
    broken = copy.deepcopy(obs)
    broken["effectiveDateTime"] = "Secret-Value-1234"
    with pytest.raises(InvalidRecord) as info:
        prepare(SourceResource(broken, "f.json entry 3"))
    text = str(info.value)
    assert "f.json entry 3" in text and "effectiveDateTime" in text
    assert "Secret-Value-1234" not in text
    bad_status = copy.deepcopy(obs)
    bad_status["status"] = "bogus"
    with pytest.raises(InvalidRecord, match="status is not a code"):
        prepare(SourceResource(bad_status, "f.json"))


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InputNotFound, match="no such file"):
        read_resources(tmp_path / "missing.json")
    with pytest.raises(InputNotFound, match="is a folder"):
        read_resources(tmp_path)


def test_single_resource_file(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_bytes(
        orjson.dumps({"resourceType": "Patient", "id": "p1", "birthDate": "2001-02-03"})
    )
    (src,) = read_resources(path)
    rec = prepare(src)
    assert rec.subject_ref == "urn:uuid:p1" and rec.category == "demographics"
    assert json.loads(rec.canonical)["birthDate"] == "2001-02-03"


def test_commitment_is_salted() -> None:
    data = b'{"value":5.6}'
    s1, s2 = new_salt(), new_salt()
    assert commit(data, s1) != commit(data, s2)
    assert matches(data, s1, commit(data, s1))
    assert not matches(b'{"value":5.7}', s1, commit(data, s1))
    with pytest.raises(ValueError):
        commit(data, b"short")
