"""A batch's history as an EPCIS 2.0 JSON-LD document (issue 15, point 6).

Input: plain records of what happened to one batch (commission, dispense, undo, recall,
quarantine, release), in time order — the caller reads them from the chain and, for the
serials, from the manufacturer's own salts. Output: an ``EPCISDocument`` as GS1's EPCIS
2.0 JSON binding defines it (``@context``, ``type``, ``schemaVersion``, ``creationDate``,
``epcisBody.eventList``), using Core Business Vocabulary (CBV 2.0) terms:

============  ==========================================================================
record        EPCIS event
============  ==========================================================================
commission    ObjectEvent ADD, bizStep ``commissioning``, disposition ``active``, one
              SGTIN per pack, lot and expiry as ILMD (``cbvmda:lotNumber``,
              ``cbvmda:itemExpirationDate``)
dispense      one ObjectEvent OBSERVE per pack, bizStep ``dispensing``, disposition
              ``dispensed`` (EU FMD decommissioning at the point of dispensing)
undo          the dispense event stated again with an ``errorDeclaration`` (reason
              ``did_not_occur``): CBV has no "undo" step, and EPCIS's own way to
              withdraw an event is to declare it in error — a reader then returns the
              pack to its earlier state, ``active``, which is what an FMD undo does
recall       ObjectEvent OBSERVE on the lot (``quantityList``, LGTIN class, no quantity),
              disposition ``recalled`` (no bizStep: a decision, not a physical step)
quarantine    ObjectEvent OBSERVE on the lot, bizStep ``holding``, disposition
              ``non_sellable_other`` (held by a regulator, not sellable for now)
release       ObjectEvent OBSERVE on the lot, bizStep ``inspecting``, disposition
              ``conformant`` (the regulator found the lot fit again)
============  ==========================================================================

Identifiers: a pack is ``urn:epc:id:sgtin:CompanyPrefix.ItemRef.Serial`` and a lot
``urn:epc:class:lgtin:CompanyPrefix.ItemRef.Lot`` (GS1 Tag Data Standard). The
company-prefix length is not in the GTIN; **biip** knows it from GS1's published prefix
list. When biip does not know the prefix, the GS1 Digital Link URI (``https://id.gs1.org/01/
…/21/…``, written by biip) is used instead, which EPCIS 2.0 accepts as an identifier in
its JSON-LD binding; one form is used for a whole document.

Privacy: the export is the manufacturer's, for its own batch. Records carry no
dispenser, location or patient, so the document has none (a verification never reveals
who dispensed, and neither does this). Every dispensed or undone serial must be one the
same export commissioned, so a serial from outside the batch cannot slip in.

Written by hand: this mapping, the SGTIN/LGTIN strings (with the Tag Data Standard's
percent-escapes), deterministic event ids. No Python package ships EPCIS 2.0 JSON
writing that fits (the PyPI EPCIS packages are XML-era or platform clients); the tests
check the shape with **jsonschema**.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from biip import ParseError
from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from biip.gs1_element_strings import GS1ElementString, GS1ElementStrings
from biip.gtin import Gtin

from healthnft.errors import InvalidInput

EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/epcis-context.jsonld"
SCHEMA_VERSION = "2.0"

#: Characters of GS1 AI encodable set 82 that stay as they are in an EPC URI; the others
#: of the set (" % & / < > ?) are percent-escaped (Tag Data Standard, EPC URI syntax).
_EPC_SAFE = "!'()*+,-.:;=_"

#: Event ids are UUIDs derived from the event itself (name-based, RFC 9562 v5), so the
#: same history always exports the same ids and an error declaration can point at one.
_EVENT_NAMESPACE = uuid.UUID("5b0f3d0e-1d2c-4f49-9d1e-6f0c5a9e0d15")


class Kind(StrEnum):
    """What happened to the batch or to some of its packs."""

    COMMISSION = "commission"
    DISPENSE = "dispense"
    UNDO = "undo"
    RECALL = "recall"
    QUARANTINE = "quarantine"
    RELEASE = "release"


#: Kinds that concern single packs (and carry serials); the others concern the lot.
_PACK_KINDS = {Kind.COMMISSION, Kind.DISPENSE, Kind.UNDO}


@dataclass(frozen=True)
class EventRecord:
    """One thing that happened: when, what, and for pack events which serials."""

    kind: Kind
    time: datetime  # timezone-aware (the block's time)
    serials: tuple[str, ...] = ()


@dataclass(frozen=True)
class Batch:
    """The batch being exported: what every pack of it carries but its serial."""

    gtin14: str
    lot: str
    expiry: date
    expiry_raw: str


def epcis_document(
    batch: Batch, records: Iterable[EventRecord], *, created: datetime
) -> dict[str, Any]:
    """The EPCIS 2.0 JSON-LD document of ``batch``'s ``records`` (in time order).

    Raises ``InvalidInput`` for a naive time, a pack event without serials or a lot
    event with some, and a dispensed or undone serial the export did not commission
    (or an undo with no dispense before it).
    """
    ids = _Identifiers(batch)
    commissioned: set[str] = set()
    last_dispense: dict[str, dict[str, Any]] = {}
    events: list[dict[str, Any]] = []
    for record in records:
        _check(record)
        if record.kind is Kind.COMMISSION:
            commissioned.update(record.serials)
            events.append(_commission(record, ids, batch))
        elif record.kind is Kind.DISPENSE:
            for serial in record.serials:
                _require_commissioned(serial, commissioned)
                event = _object_event(
                    record, "OBSERVE", epcs=[ids.pack(serial)], step="dispensing",
                    disposition="dispensed",
                )  # fmt: skip
                last_dispense[serial] = event
                events.append(event)
        elif record.kind is Kind.UNDO:
            for serial in record.serials:
                _require_commissioned(serial, commissioned)
                dispensed = last_dispense.pop(serial, None)
                if dispensed is None:
                    raise InvalidInput("an undo in the batch history has no dispense before it")
                events.append(_declared_in_error(dispensed, record.time))
        else:
            events.append(_lot_event(record, ids))
    return {
        "@context": [EPCIS_CONTEXT],
        "type": "EPCISDocument",
        "schemaVersion": SCHEMA_VERSION,
        "creationDate": _time(created),
        "epcisBody": {"eventList": events},
    }


# -- events ------------------------------------------------------------------------------


def _commission(record: EventRecord, ids: _Identifiers, batch: Batch) -> dict[str, Any]:
    event = _object_event(
        record, "ADD", epcs=[ids.pack(serial) for serial in record.serials],
        step="commissioning", disposition="active",
    )  # fmt: skip
    event["ilmd"] = {
        "cbvmda:lotNumber": batch.lot,
        "cbvmda:itemExpirationDate": batch.expiry.isoformat(),
    }
    return event


_LOT_EVENTS: dict[Kind, tuple[str | None, str]] = {
    Kind.RECALL: (None, "recalled"),
    Kind.QUARANTINE: ("holding", "non_sellable_other"),
    Kind.RELEASE: ("inspecting", "conformant"),
}


def _lot_event(record: EventRecord, ids: _Identifiers) -> dict[str, Any]:
    step, disposition = _LOT_EVENTS[record.kind]
    return _object_event(
        record, "OBSERVE", quantities=[{"epcClass": ids.lot()}], step=step,
        disposition=disposition,
    )  # fmt: skip


def _object_event(
    record: EventRecord,
    action: str,
    *,
    epcs: Sequence[str] = (),
    quantities: Sequence[dict[str, Any]] = (),
    step: str | None,
    disposition: str,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventTime": _time(record.time),
        "eventTimeZoneOffset": "+00:00",
        "action": action,
    }
    if epcs:
        event["epcList"] = list(epcs)
    if quantities:
        event["quantityList"] = list(quantities)
    if step is not None:
        event["bizStep"] = step
    event["disposition"] = disposition
    name = "|".join([record.kind.value, event["eventTime"], *epcs,
                     *(q["epcClass"] for q in quantities)])  # fmt: skip
    return {"eventID": f"urn:uuid:{uuid.uuid5(_EVENT_NAMESPACE, name)}", **event}


def _declared_in_error(event: dict[str, Any], when: datetime) -> dict[str, Any]:
    """``event`` stated again, declared in error: EPCIS 2.0's way to withdraw it."""
    return {**event, "errorDeclaration": {"declarationTime": _time(when),
                                          "reason": "did_not_occur"}}  # fmt: skip


def _check(record: EventRecord) -> None:
    if record.time.tzinfo is None:
        raise InvalidInput("batch history: event times must carry a time zone")
    if (record.kind in _PACK_KINDS) != bool(record.serials):
        raise InvalidInput(
            f"batch history: a {record.kind.value} event "
            + ("needs serials" if record.kind in _PACK_KINDS else "concerns the lot, not serials")
        )


def _require_commissioned(serial: str, commissioned: set[str]) -> None:
    if serial not in commissioned:
        raise InvalidInput(
            "batch history: a dispensed or undone pack was not commissioned in this export"
        )


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- identifiers ---------------------------------------------------------------------------


class _Identifiers:
    """The EPC of a pack and of the lot: SGTIN/LGTIN URNs when biip knows the company
    prefix, GS1 Digital Link URIs otherwise."""

    def __init__(self, batch: Batch) -> None:
        self._batch = batch
        self._prefix = _company_prefix(batch.gtin14)

    def pack(self, serial: str) -> str:
        if self._prefix is None:
            return _digital_link(self._batch.gtin14, "21", serial)
        return f"urn:epc:id:sgtin:{self._prefix}.{_escape(serial)}"

    def lot(self) -> str:
        if self._prefix is None:
            return _digital_link(self._batch.gtin14, "10", self._batch.lot)
        return f"urn:epc:class:lgtin:{self._prefix}.{_escape(self._batch.lot)}"


def _digital_link(gtin14: str, ai: str, value: str) -> str:
    """``https://id.gs1.org/01/<gtin>/<ai>/<value>``, written by biip."""
    try:
        elements = GS1ElementStrings(
            [GS1ElementString.parse("01" + gtin14), GS1ElementString.parse(ai + value)]
        )
    except ParseError:
        raise InvalidInput(f"batch history: a value does not fit GS1 AI {ai}") from None
    return GS1DigitalLinkURI.from_element_strings(elements).as_canonical_uri()


def _company_prefix(gtin14: str) -> str | None:
    """``CompanyPrefix.IndicatorItemRef`` of an SGTIN for ``gtin14``, or ``None`` when
    biip does not know the company prefix's length."""
    try:
        prefix = Gtin.parse(gtin14).company_prefix
    except ParseError:
        raise InvalidInput("batch history: the GTIN is not valid") from None
    digits = gtin14[1:13]  # the GTIN-13 form without its check digit
    if prefix is None or not digits.startswith(prefix.value):
        return None
    return f"{prefix.value}.{gtin14[0]}{digits[len(prefix.value) :]}"


def _escape(value: str) -> str:
    return quote(value, safe=_EPC_SAFE)
