"""Plain-language views of real Synthea records and of notes and pictures written here."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from healthnft.services import describe

# A 1×1 PNG, made here (not health data).
PIXEL = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf00000301010018dd8db40000000049454e44ae426082"
)).decode()


def _resources(fhir_dir: Path) -> list[dict]:
    out = []
    for path in sorted(fhir_dir.glob("*.json")):
        doc = json.loads(path.read_text())
        out += [e["resource"] for e in doc.get("entry", [])] if "entry" in doc else [doc]
    return out


def test_every_real_record_gets_a_summary_with_its_kind_and_date(fhir_dir: Path) -> None:
    seen = set()
    for res in _resources(fhir_dir):
        if res["resourceType"] in ("Organization", "Practitioner"):
            continue
        text = describe.summary(res, "laboratory" if res["resourceType"] == "Observation"
                                else "other")
        assert text and "None" not in text, res["resourceType"]
        seen.add(res["resourceType"])
    assert {"Observation", "Immunization", "Condition"} <= seen


def test_lab_summary_and_table_with_reference_range() -> None:
    obs = {"resourceType": "Observation", "code": {"text": "Hemoglobin A1c"},
           "effectiveDateTime": "2019-03-12T08:00:00-05:00",
           "valueQuantity": {"value": 5.6, "unit": "%"},
           "referenceRange": [{"low": {"value": 4.0, "unit": "%"},
                               "high": {"value": 5.6, "unit": "%"}}],
           "interpretation": [{"text": "Normal"}]}
    assert describe.summary(obs, "laboratory") == "Blood test — Hemoglobin A1c 5.6 % — 12 Mar 2019"
    assert describe.measurements(obs) == [{"test": "Hemoglobin A1c", "value": "5.6 %",
                                           "range": "4 % – 5.6 %", "interpretation": "Normal"}]
    bp = {"resourceType": "Observation", "code": {"text": "Blood pressure"},
          "effectiveDateTime": "2020-01-02",
          "component": [{"code": {"text": "Systolic"}, "valueQuantity": {"value": 120,
                                                                         "unit": "mm[Hg]"}},
                        {"code": {"text": "Diastolic"}, "valueQuantity": {"value": 80,
                                                                          "unit": "mm[Hg]"}}]}
    expected = "Vital sign — Blood pressure 120/80 mmHg — 2 Jan 2020"
    assert describe.summary(bp, "vital-signs") == expected
    assert [r["test"] for r in describe.measurements(bp)] == ["Systolic", "Diastolic"]


def test_notes_show_as_text_and_pictures_as_images_never_fetched() -> None:
    note = "Patient seen for follow-up.\nPlan: recheck in 3 months."
    doc = {"resourceType": "DocumentReference", "type": {"text": "Progress note"},
           "date": "2024-06-01T10:00:00Z",
           "content": [{"attachment": {"contentType": "text/plain; charset=utf-8",
                                       "data": base64.b64encode(note.encode()).decode(),
                                       "title": "Follow-up"}},
                       {"attachment": {"contentType": "image/png", "data": PIXEL,
                                       "title": "Wound photo"}},
                       {"attachment": {"contentType": "application/pdf",
                                       "url": "http://example.invalid/x.pdf"}}]}
    assert describe.summary(doc, "note") == "Clinical note — Progress note — 1 Jun 2024"
    shown = describe.attachments(doc)
    assert shown[0] == {"kind": "text", "title": "Follow-up", "text": note}
    assert shown[1] == {"kind": "image", "title": "Wound photo",
                        "src": f"data:image/png;base64,{PIXEL}"}
    assert shown[2] == {"kind": "file", "content_type": "application/pdf", "title": ""}
    report = {"resourceType": "DiagnosticReport", "code": {"text": "Chest X-ray report"},
              "presentedForm": [{"contentType": "text/plain", "data": "bm90IGJhc2U2NCE@"}]}
    assert describe.attachments(report) == [{"kind": "file", "content_type": "text/plain",
                                              "title": ""}]  # invalid base64: not shown


def test_dates_are_the_records_own_day() -> None:
    assert describe.human_date("2020-03-06T21:09:23-08:00") == "6 Mar 2020"
    assert describe.human_date("2019-07") == "Jul 2019"
    assert describe.human_date("1984") == "1984"
    assert describe.human_date(None) == ""
