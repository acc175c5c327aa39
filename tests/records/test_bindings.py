"""Terminology bindings (issue #12): a code outside a required value set refuses the
record, naming file, entry and element path but never the value; one outside an
extensible value set is a warning that travels with the record to the mint's result."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from healthnft.errors import InvalidRecord
from healthnft.network import DEMO_PASSPHRASE, Network
from healthnft.records import SourceResource, parse_resources, prepare, read_resources

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "b1d1e000-0000-4000-8000-000000000001",
    "gender": "female",
    "birthDate": "1970-01-02",
    "telecom": [{"system": "phone", "value": "555-0100", "use": "home"}],
    "maritalStatus": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}]},
}  # fmt: skip
CONDITION: dict[str, Any] = {
    "resourceType": "Condition",
    "clinicalStatus": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
    "code": {"text": "Sinusitis"},
    "subject": {"reference": "urn:uuid:b1d1e000-0000-4000-8000-000000000001"},
}  # fmt: skip


def _bundle(*resources: dict[str, Any]) -> bytes:
    return json.dumps({"resourceType": "Bundle", "type": "collection",
                       "entry": [{"resource": r} for r in resources]}).encode()  # fmt: skip


def _prepare_all(raw: bytes, name: str = "input file 1 of 1") -> list[Any]:
    return [prepare(s) for s in parse_resources(raw, name)]


def _refused(raw: bytes) -> str:
    with pytest.raises(InvalidRecord) as info:
        _prepare_all(raw)
    return str(info.value)


def _with(resource: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(resource)
    node = out
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return out


def test_valid_codes_pass_without_warnings() -> None:
    records = _prepare_all(_bundle(PATIENT, CONDITION))
    assert [r.warnings for r in records] == [(), ()]


@pytest.mark.parametrize(
    ("resource", "path", "value", "where"),
    [
        (PATIENT, ("gender",), "Bibi254", "invalid Patient: gender is not"),
        (PATIENT, ("telecom", 0, "system"), "555-0199", "Patient: telecom[0].system"),
        (PATIENT, ("telecom", 0, "use"), "Secret-Use", "Patient: telecom[0].use"),
        # A CodeableConcept with a required binding: no coding of the value set.
        (CONDITION, ("clinicalStatus", "coding", 0, "code"), "Secret-Status",
         "Condition: clinicalStatus is not"),
        # Nested in a backbone element and a datatype (HumanName.use).
        (PATIENT, ("contact",), [{"name": {"use": "Secret-Name-Use", "family": "X"}}],
         "Patient: contact[0].name.use"),
        # A datatype inside an extension's value (Address.use).
        (PATIENT, ("extension",), [{"url": "http://example.org/x",
                                    "valueAddress": {"use": "Secret-Address-Use"}}],
         "Patient: extension[0].valueAddress.use"),
        # A contained resource is checked against its own type.
        (CONDITION, ("contained",), [{**PATIENT, "id": "p", "gender": "Secret-Gender"}],
         "Condition: contained[0].gender"),
    ],
)
def test_a_code_outside_a_required_value_set_is_refused(
    resource: dict[str, Any], path: tuple[Any, ...], value: Any, where: str
) -> None:
    bad = _with(resource, path, value)
    message = _refused(_bundle(PATIENT, bad) if resource is CONDITION else _bundle(bad))
    assert "input file 1 of 1 entry" in message and where in message, message
    assert "is not a code of its required value set (http://hl7.org/fhir/ValueSet/" in message
    for secret in ("Bibi254", "555-0199", "Secret"):
        assert secret not in message


def test_status_value_sets_are_the_r4_ones() -> None:
    """Derived from the value set definitions, not the element's short description:
    Observation may be ``corrected`` (a child of ``amended``), Immunization only
    completed / entered-in-error / not-done (not every code of its code system)."""
    obs = {"resourceType": "Observation", "status": "corrected", "code": {"text": "x"}}
    assert prepare(SourceResource(obs, "t")).warnings == ()
    imm = {"resourceType": "Immunization", "status": "not-done", "vaccineCode": {"text": "x"},
           "patient": {"reference": "urn:uuid:x"}, "occurrenceString": "2020"}  # fmt: skip
    prepare(SourceResource(imm, "t"))
    with pytest.raises(InvalidRecord, match="status is not a code"):
        prepare(SourceResource({**imm, "status": "in-progress"}, "t"))


def test_an_extensible_binding_warns_and_the_record_is_kept() -> None:
    odd = _with(PATIENT, ("maritalStatus", "coding", 0), {"system": "http://example.org/private",
                                                         "code": "Secret-Marital"})  # fmt: skip
    (record,) = _prepare_all(_bundle(odd))
    assert record.warnings == (
        "input file 1 of 1 entry 0: Patient.maritalStatus has no code from its extensible "
        "value set (http://hl7.org/fhir/ValueSet/marital-status)",
    )
    # Text alone is what an extensible binding allows when no code fits: no warning.
    text_only = _with(PATIENT, ("maritalStatus",), {"text": "it is complicated"})
    assert _prepare_all(_bundle(text_only))[0].warnings == ()


def test_every_synthea_resource_meets_its_required_bindings(fhir_dir: Path) -> None:
    warnings = []
    for path in sorted(fhir_dir.glob("*.json")):
        for src in read_resources(path):
            warnings += prepare(src).warnings  # raises on any required-binding violation
    # Synthea's social security number identifier uses v2 code SS, outside R4's
    # extensible identifier-type value set: a warning per patient, nothing worse.
    assert all("has no code from its extensible value set" in w for w in warnings)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    home = tmp_path_factory.mktemp("bindings") / "home"
    net = Network.create(home, DEMO_PASSPHRASE, demo=True)
    try:
        net.add_participant("hospital", "h1")
        patient = net.add_participant("patient", "p1").address
    finally:
        net.close()
    return home, patient


def test_mint_refuses_an_invalid_code_and_mints_nothing(home: tuple[Path, str]) -> None:
    path, patient = home
    bad = path.parent / "Bibi254_Schowalter414.json"
    bad.write_bytes(_bundle(PATIENT, _with(PATIENT, ("gender",), "Bibi254")))
    proc = run_cli(path, "mint", str(bad), "--issuer", "h1", "--patient", patient)
    assert proc.returncode != 0
    assert "input file 1 of 1 entry 1: invalid Patient: gender is not a code" in proc.stderr
    assert "Bibi254" not in proc.stderr + proc.stdout
    listed = run_cli(path, "wallet", "list", "--owner", patient, "--json", check=True)
    assert json.loads(listed.stdout) == []


def test_mint_carries_warnings_without_values(home: tuple[Path, str]) -> None:
    path, patient = home
    odd = _with(PATIENT, ("maritalStatus", "coding", 0), {"system": "http://example.org/private",
                                                         "code": "Secret-Marital"})  # fmt: skip
    file = path.parent / "warned.json"
    file.write_bytes(_bundle(odd, CONDITION))
    proc = run_cli(path, "mint", str(file), "--issuer", "h1", "--patient", patient, "--json",
                   check=True)  # fmt: skip
    result = json.loads(proc.stdout)
    assert result["records_minted"] == 2
    assert result["warnings"] == [
        "input file 1 of 1 entry 0: Patient.maritalStatus has no code from its extensible "
        "value set (http://hl7.org/fhir/ValueSet/marital-status)"
    ]
    # People see it on stderr (the record is minted all the same: already, this time).
    again = run_cli(path, "mint", str(file), "--issuer", "h1", "--patient", patient, check=True)
    assert "warning: input file 1 of 1 entry 0: Patient.maritalStatus" in again.stderr
    assert "Secret-Marital" not in again.stderr + proc.stdout
