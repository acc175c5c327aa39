"""The web wallet shows what the hospital sent (5.60, not 5.6), and a mint job carries
its warnings (where, never what)."""

from __future__ import annotations

import json
import time
from typing import Any

OBSERVATION = """{"resourceType": "Observation", "id": "web-decimal-1", "status": "final",
 "category": [{"coding": [{"system":
   "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
 "code": {"text": "Glucose"}, "subject": {"reference": "urn:uuid:web-decimal-patient"},
 "effectiveDateTime": "2024-05-01T08:00:00Z",
 "valueQuantity": {"value": 5.60, "unit": "mmol/L"},
 "referenceRange": [{"low": {"value": 0.010, "unit": "mmol/L"},
                     "high": {"value": 1234567890.12345678, "unit": "mmol/L"}}],
 "interpretation": [{"coding": [{"system": "http://example.org/lab-flags",
                                 "code": "Secret-Flag"}]}]}"""


def _finish(client: Any, job: dict[str, Any]) -> dict[str, Any]:
    while job["state"] == "running":
        time.sleep(0.05)
        job = client.get(f"/api/jobs/{job['job_id']}").json()
    return job


def test_an_opened_record_shows_the_decimals_as_sent(served) -> None:
    hospital, patient = served.client(), served.client()
    served.sign_in(hospital, served.hospital)
    served.sign_in(patient, served.patient(4))
    r = hospital.post("/api/mint", data={"patient": served.patient(4)},
                      files={"files": ("lab.json", OBSERVATION.encode())})  # fmt: skip
    job = _finish(hospital, r.json())
    assert job["state"] == "done", job
    (token_id,) = job["result"]["token_ids"]

    r = patient.get(f"/api/records/{token_id}")
    assert r.status_code == 200
    assert '"value":5.60' in r.text and '"value":1234567890.12345678' in r.text
    opened = r.json()
    assert '"value": 5.60' in opened["resource_json"]
    assert '"value": 0.010' in opened["resource_json"]
    assert opened["summary"] == "Blood test — Glucose 5.60 mmol/L — 1 May 2024"
    (row,) = opened["measurements"]
    assert row["value"] == "5.60 mmol/L"
    assert row["range"] == "0.010 mmol/L – 1234567890.12345678 mmol/L"
    assert opened["verification"]["badge"] == "authentic"


def test_a_mint_job_carries_its_warnings_without_values(served) -> None:
    hospital = served.client()
    served.sign_in(hospital, served.hospital)
    other = OBSERVATION.replace("web-decimal-1", "web-decimal-2")
    r = hospital.post("/api/mint", data={"patient": served.patient(4)},
                      files={"files": ("lab.json", other.encode())})  # fmt: skip
    job = _finish(hospital, r.json())
    assert job["state"] == "done", job
    assert job["result"]["warnings"] == [
        "input file 1 of 1: Observation.interpretation[0] has no code from its extensible "
        "value set (http://hl7.org/fhir/ValueSet/observation-interpretation)"
    ]
    assert "Secret-Flag" not in json.dumps(job)
