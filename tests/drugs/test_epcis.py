"""The EPCIS 2.0 export of a batch's history: its shape, its vocabulary, what it leaves out."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from healthnft.drugs.epcis import Batch, EventRecord, Kind, epcis_document
from healthnft.errors import InvalidInput

SUBSET_SCHEMA = json.loads(
    (Path(__file__).parent / "epcis-2.0-subset.schema.json").read_text(encoding="utf-8")
)
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
BATCH = Batch(gtin14="09501101530003", lot="LOT/42", expiry=date(2027, 12, 31),
              expiry_raw="271231")  # fmt: skip
HISTORY = [
    EventRecord(Kind.COMMISSION, T0, ("S1", "S/2", "S3")),
    EventRecord(Kind.DISPENSE, T0 + timedelta(days=1), ("S1", "S/2")),
    EventRecord(Kind.UNDO, T0 + timedelta(days=2), ("S/2",)),
    EventRecord(Kind.QUARANTINE, T0 + timedelta(days=3)),
    EventRecord(Kind.RELEASE, T0 + timedelta(days=4)),
    EventRecord(Kind.RECALL, T0 + timedelta(days=5)),
]


def _export(batch: Batch = BATCH, history: list[EventRecord] = HISTORY) -> dict[str, Any]:
    return epcis_document(batch, history, created=T0 + timedelta(days=6))


def _validate(document: dict[str, Any], schema: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
    assert not errors, errors


def test_the_document_fits_the_epcis_2_0_json_shape() -> None:
    document = _export()
    _validate(document, SUBSET_SCHEMA)
    assert document["@context"] == ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"]
    assert (document["type"], document["schemaVersion"]) == ("EPCISDocument", "2.0")
    assert document["creationDate"] == "2026-12-07T09:00:00.000Z"
    json.dumps(document)


@pytest.mark.skipif(not os.environ.get("EPCIS_JSON_SCHEMA"), reason="official schema not given")
def test_the_document_fits_gs1s_own_schema() -> None:
    """GS1's EPCIS 2.0 JSON schema is not vendored (no licence to copy it); point
    EPCIS_JSON_SCHEMA at a copy (e.g. gs1/EPCIS, EPCIS-JSON-Schema.json) to run this."""
    schema = json.loads(Path(os.environ["EPCIS_JSON_SCHEMA"]).read_text(encoding="utf-8"))
    _validate(_export(), schema)


def test_each_record_becomes_its_cbv_event() -> None:
    events = _export()["epcisBody"]["eventList"]
    shapes = [(e["action"], e.get("bizStep"), e["disposition"], "errorDeclaration" in e)
              for e in events]  # fmt: skip
    assert shapes == [
        ("ADD", "commissioning", "active", False),
        ("OBSERVE", "dispensing", "dispensed", False),  # one event per pack dispensed
        ("OBSERVE", "dispensing", "dispensed", False),
        ("OBSERVE", "dispensing", "dispensed", True),  # the undo: that dispense withdrawn
        ("OBSERVE", "holding", "non_sellable_other", False),  # quarantine
        ("OBSERVE", "inspecting", "conformant", False),  # release
        ("OBSERVE", None, "recalled", False),
    ]
    commission, first, second, undo, quarantine, *_ = events
    assert commission["epcList"] == [
        "urn:epc:id:sgtin:950110153.0000.S1",
        "urn:epc:id:sgtin:950110153.0000.S%2F2",  # Tag Data Standard escape of "/"
        "urn:epc:id:sgtin:950110153.0000.S3",
    ]
    assert commission["ilmd"] == {"cbvmda:lotNumber": "LOT/42",
                                  "cbvmda:itemExpirationDate": "2027-12-31"}  # fmt: skip
    assert first["epcList"] == ["urn:epc:id:sgtin:950110153.0000.S1"]
    # The error declaration restates the withdrawn event, same id, and says why and when.
    assert {k: v for k, v in undo.items() if k != "errorDeclaration"} == second
    assert undo["errorDeclaration"] == {"declarationTime": "2026-12-03T09:00:00.000Z",
                                        "reason": "did_not_occur"}  # fmt: skip
    # Lot-level events name the lot as a class, with no quantity (batch sizes stay private).
    assert quarantine["quantityList"] == [
        {"epcClass": "urn:epc:class:lgtin:950110153.0000.LOT%2F42"}
    ]


def test_event_ids_are_unique_and_stable() -> None:
    events = _export()["epcisBody"]["eventList"]
    ids = [e["eventID"] for e in events if "errorDeclaration" not in e]
    assert len(set(ids)) == len(ids) and all(i.startswith("urn:uuid:") for i in ids)
    assert _export() == _export()


def test_nothing_about_who_dispensed_or_to_whom() -> None:
    text = json.dumps(_export())
    for member in ("readPoint", "bizLocation", "sourceList", "destinationList",
                   "bizTransactionList"):  # fmt: skip
        assert member not in text


def test_a_gtin_whose_company_prefix_is_unknown_uses_digital_link_uris() -> None:
    # 0200… is a restricted-circulation (in-store) range: GS1 lists no company prefix.
    batch = Batch("02000000000008", "L1", date(2027, 12, 31), "271231")
    document = _export(batch, [EventRecord(Kind.COMMISSION, T0, ("A/1",)),
                               EventRecord(Kind.RECALL, T0 + timedelta(days=1))])  # fmt: skip
    _validate(document, SUBSET_SCHEMA)
    commission, recall = document["epcisBody"]["eventList"]
    assert commission["epcList"] == ["https://id.gs1.org/01/02000000000008/21/A%2F1"]
    assert recall["quantityList"] == [{"epcClass": "https://id.gs1.org/01/02000000000008/10/L1"}]


@pytest.mark.parametrize(
    ("history", "words"),
    [
        ([EventRecord(Kind.COMMISSION, T0, ("S1",)), EventRecord(Kind.DISPENSE, T0, ("X9",))],
         "not commissioned in this export"),
        ([EventRecord(Kind.COMMISSION, T0, ("S1",)), EventRecord(Kind.UNDO, T0, ("S1",))],
         "no dispense before it"),
        ([EventRecord(Kind.DISPENSE, T0, ())], "needs serials"),
        ([EventRecord(Kind.RECALL, T0, ("S1",))], "concerns the lot"),
        ([EventRecord(Kind.RECALL, datetime(2026, 12, 1))], "time zone"),
    ],
)  # fmt: skip
def test_histories_that_cannot_be_exported(history: list[EventRecord], words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        _export(history=history)
