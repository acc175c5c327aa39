"""A small synthetic FHIR R4 sample, generated, so the demo runs anywhere.

Everything here is made up by this module (names like ``Sample-Patient-1``);
it is not derived from any person. The demo uses it when ``../shared/data``
is not present.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

_NS = uuid.UUID("6f1c0d7e-0d2b-4a51-9b0e-2f6d1f1f0a11")


def _id(*parts: object) -> str:
    return str(uuid.uuid5(_NS, "/".join(map(str, parts))))


def _coding(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def sample_bundle(n: int) -> dict[str, Any]:
    """One synthetic patient's ``batch`` Bundle with a few record kinds."""
    pid = _id("patient", n)
    ref = {"reference": f"urn:uuid:{pid}"}
    enc_id = _id("encounter", n)
    resources: list[dict[str, Any]] = [
        {
            "resourceType": "Patient",
            "id": pid,
            "name": [{"family": f"Sample-Patient-{n}", "given": ["Synthetic"]}],
            "gender": "female" if n % 2 else "male",
            "birthDate": f"20{10 + n:02d}-0{1 + n % 9}-15",
        },
        {
            "resourceType": "Encounter",
            "id": enc_id,
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": ref,
            "period": {"start": "2021-03-01T09:00:00Z", "end": "2021-03-01T09:30:00Z"},
        },
        {
            "resourceType": "Immunization",
            "id": _id("imm", n),
            "status": "completed",
            "vaccineCode": _coding("http://hl7.org/fhir/sid/cvx", "140", "Influenza vaccine"),
            "patient": ref,
            "occurrenceDateTime": "2021-03-01T09:10:00Z",
        },
        {
            "resourceType": "Condition",
            "id": _id("cond", n),
            "subject": ref,
            "code": _coding("http://snomed.info/sct", "444814009", "Viral sinusitis"),
            "onsetDateTime": "2021-02-20T00:00:00Z",
        },
    ]
    labs = [("4548-4", "Hemoglobin A1c", 5.4 + n / 10, "%"), ("2339-0", "Glucose", 90 + n, "mg/dL")]
    for code, display, value, unit in labs:
        resources.append(
            {
                "resourceType": "Observation",
                "id": _id("obs", n, code),
                "status": "final",
                "category": [
                    _coding(
                        "http://terminology.hl7.org/CodeSystem/observation-category",
                        "laboratory",
                        "laboratory",
                    )
                ],
                "code": _coding("http://loinc.org", code, display),
                "subject": ref,
                "encounter": {"reference": f"urn:uuid:{enc_id}"},
                "effectiveDateTime": "2021-03-01T09:15:00Z",
                "valueQuantity": {
                    "value": round(value, 1),
                    "unit": unit,
                    "system": "http://unitsofmeasure.org",
                    "code": unit,
                },
            }
        )
    return {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
    }


def write_sample(folder: Path, patients: int = 3) -> Path:
    """Write the sample bundles into ``folder`` (idempotent) and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(1, patients + 1):
        path = folder / f"sample-patient-{n}.json"
        if not path.exists():
            path.write_text(json.dumps(sample_bundle(n), indent=1))
    return folder
