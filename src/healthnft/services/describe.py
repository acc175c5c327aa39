"""Plain-language views of FHIR records for people, not parsers.

A patient reads "Blood test — Hemoglobin A1c 5.6 % — 12 Mar 2019", not a JSON
tree. This module turns a decrypted resource into a one-line summary and, for
measurements, a table of values with their reference ranges. It reads only the
FHIR R4 fields Synthea and common EHR exports fill in, and falls back to the
resource type and date when a record has none of them: a summary is never a
reason to refuse a record. It runs after decryption, for the record's reader
only; nothing it produces is logged or stored.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from healthnft.records import exact_json

_KIND_WORDS = {
    "laboratory": "Blood test",
    "vital-signs": "Vital sign",
    "immunization": "Vaccination",
    "condition": "Condition",
    "procedure": "Procedure",
    "encounter": "Visit",
    "claim": "Insurance claim",
    "diagnostic-report": "Report",
    "care-plan": "Care plan",
    "care-team": "Care team",
    "medication": "Medication",
    "allergy": "Allergy",
    "imaging": "Imaging",
    "note": "Clinical note",
    "demographics": "Your details",
    "survey": "Questionnaire",
    "social-history": "Social history",
    "exam": "Examination",
    "observation": "Observation",
}

_CATEGORY_TITLES = {
    "laboratory": "Laboratory results",
    "vital-signs": "Vital signs",
    "immunization": "Vaccinations",
    "condition": "Conditions",
    "procedure": "Procedures",
    "encounter": "Visits",
    "claim": "Claims and billing",
    "diagnostic-report": "Reports",
    "medication": "Medications",
    "imaging": "Imaging",
    "note": "Clinical notes",
    "demographics": "Personal details",
}


def category_title(category: str) -> str:
    """A heading for a category ("laboratory" → "Laboratory results")."""
    return _CATEGORY_TITLES.get(category, category.replace("-", " ").capitalize())


def kind_word(category: str) -> str:
    return _KIND_WORDS.get(category, category.replace("-", " ").capitalize())


def human_date(value: str | None, month: str = "%b") -> str:
    """"2019-03-12T08:00:00-05:00" → "12 Mar 2019"; partial dates as far as they go.
    ``month``: the month's strftime form ("%B" for "12 March 2019", in a sentence)."""
    if not value:
        return ""
    try:
        if len(value) == 4:
            return value
        if len(value) == 7:
            return datetime.strptime(value, "%Y-%m").strftime(f"{month} %Y")
        moment = (datetime.fromisoformat(value.replace("Z", "+00:00"))
                  if "T" in value else date.fromisoformat(value[:10]))  # fmt: skip
    except ValueError:
        return value[:10]
    return f"{moment.day} {moment.strftime(f'{month} %Y')}"


def _concept(value: Any) -> str:
    """The readable name of a CodeableConcept (text, else the first display)."""
    if not isinstance(value, dict):
        return ""
    if isinstance(value.get("text"), str) and value["text"].strip():
        return value["text"].strip()
    for coding in value.get("coding") or []:
        if isinstance(coding, dict) and isinstance(coding.get("display"), str):
            return coding["display"].strip()
    return ""


def json_bytes(value: Any, *, indent: bool = False) -> bytes:
    """JSON for a reader, each decimal of a record written exactly as the hospital sent it
    (``5.60``, not ``5.6``): a float-based encoder would drop the digits FHIR says count."""
    return exact_json.dumps(value, indent=indent)


def _number(value: Any) -> str:
    if isinstance(value, Decimal):  # as measured: 5.60 stays 5.60; 1.0e+2 reads 100
        if value.is_finite() and value.as_tuple().exponent > 0 and value.adjusted() < 30:  # type: ignore[operator]
            return format(abs(value), "f") if value.is_zero() else format(value, "f")
        return exact_json.number_text(value)
    if isinstance(value, float):
        text = f"{value:.2f}".rstrip("0").rstrip(".")
        return text or "0"
    return str(value)


#: UCUM codes as people write them (Synthea puts the code in ``unit``).
_UNITS = {"Cel": "°C", "[degF]": "°F", "kg/m2": "kg/m²", "mm[Hg]": "mmHg", "{score}": "",
          "[lb_av]": "lb", "[in_i]": "in", "10*3/uL": "×10³/µL", "10*6/uL": "×10⁶/µL"}


def _quantity(q: Any) -> str:
    if not isinstance(q, dict) or "value" not in q or q["value"] is None:
        return ""
    unit = q.get("unit") or q.get("code") or ""
    unit = _UNITS.get(unit, unit)
    return f"{_number(q['value'])} {unit}".strip()


def _value(obj: dict[str, Any]) -> str:
    """An Observation's (or component's) value as text, whatever value[x] it uses."""
    if "valueQuantity" in obj:
        return _quantity(obj["valueQuantity"])
    if "valueCodeableConcept" in obj:
        return _concept(obj["valueCodeableConcept"])
    for key in ("valueString", "valueBoolean", "valueInteger", "valueDateTime"):
        if key in obj:
            return str(obj[key])
    return ""


def _range(obj: dict[str, Any]) -> str:
    for rng in obj.get("referenceRange") or []:
        if not isinstance(rng, dict):
            continue
        low, high = _quantity(rng.get("low")), _quantity(rng.get("high"))
        if low and high:
            return f"{low} – {high}"
        if low:
            return f"≥ {low}"
        if high:
            return f"≤ {high}"
        if isinstance(rng.get("text"), str):
            return rng["text"]
    return ""


def _interpretation(obj: dict[str, Any]) -> str:
    return ", ".join(filter(None, (_concept(i) for i in obj.get("interpretation") or [])))


def record_date(resource: dict[str, Any]) -> str | None:
    """The date a person would file this record under."""
    for key in ("effectiveDateTime", "occurrenceDateTime", "issued", "recordedDate",
                "onsetDateTime", "performedDateTime", "authoredOn", "created", "date",
                "birthDate"):  # fmt: skip
        if isinstance(resource.get(key), str):
            return resource[key]
    for key in ("effectivePeriod", "performedPeriod", "period", "billablePeriod"):
        period = resource.get(key)
        if isinstance(period, dict) and isinstance(period.get("start"), str):
            return period["start"]
    return None


def _what(resource: dict[str, Any]) -> str:
    rtype = resource.get("resourceType")
    if rtype == "Observation":
        name = _concept(resource.get("code"))
        comps = [c for c in resource.get("component") or [] if isinstance(c, dict)]
        if comps and all(_value(c) for c in comps):
            values = [_value(c) for c in comps]
            units = {v.split(" ", 1)[1] for v in values if " " in v}
            if len(units) == 1:  # "120/80 mmHg"
                return f"{name} {'/'.join(v.split(' ', 1)[0] for v in values)} {units.pop()}"
            return f"{name}: " + ", ".join(values)
        value = _value(resource)
        return f"{name} {value}".strip()
    if rtype == "Immunization":
        return _concept(resource.get("vaccineCode"))
    if rtype in ("MedicationRequest", "MedicationStatement", "MedicationAdministration"):
        return _concept(resource.get("medicationCodeableConcept")) or "prescription"
    if rtype == "Encounter":
        types = resource.get("type") or []
        return _concept(types[0]) if types else _concept(resource.get("class"))
    if rtype in ("Claim", "ExplanationOfBenefit"):
        total = resource.get("total")
        if isinstance(total, dict):
            return _quantity({"value": total.get("value"), "unit": total.get("currency", "")})
        if isinstance(total, list) and total and isinstance(total[0], dict):
            amount = total[0].get("amount") or {}
            return _quantity({"value": amount.get("value"), "unit": amount.get("currency", "")})
        return ""
    if rtype == "Patient":
        return "name, birth date and contact details"
    if rtype == "DocumentReference":
        return _concept(resource.get("type")) or (resource.get("description") or "")
    for key in ("code", "type", "category"):
        value = resource.get(key)
        text = _concept(value[0] if isinstance(value, list) and value else value)
        if text:
            return text
    return ""


def summary(resource: dict[str, Any], category: str) -> str:
    """One line: kind — what — when ("Blood test — Hemoglobin A1c 5.6 % — 12 Mar 2019")."""
    parts = [kind_word(category), _what(resource), human_date(record_date(resource))]
    return " — ".join(p for p in parts if p)


def measurements(resource: dict[str, Any]) -> list[dict[str, str]]:
    """Rows of (test, value, reference range, interpretation) for an Observation."""
    if resource.get("resourceType") != "Observation":
        return []
    name = _concept(resource.get("code"))
    comps = [c for c in resource.get("component") or [] if isinstance(c, dict)]
    rows = [{"test": _concept(c.get("code")), "value": _value(c), "range": _range(c),
             "interpretation": _interpretation(c)} for c in comps]  # fmt: skip
    if _value(resource) or not rows:
        rows.insert(0, {"test": name, "value": _value(resource), "range": _range(resource),
                        "interpretation": _interpretation(resource)})  # fmt: skip
    return [r for r in rows if r["test"] or r["value"]]


_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
_MAX_ATTACHMENT = 8 * 2**20


def attachments(resource: dict[str, Any]) -> list[dict[str, str]]:
    """The record's embedded notes (as text) and pictures (as data: URLs) for display.

    Only inline ``data`` is shown: a URL pointing elsewhere is never fetched.
    """
    import base64
    import binascii

    out: list[dict[str, str]] = []
    from healthnft.records.notes import attachments_of

    for att in attachments_of(resource):
        ctype = str(att.get("contentType") or "").split(";")[0].strip().lower()
        title = str(att.get("title") or "")
        data = att.get("data")
        if not isinstance(data, str) or len(data) > _MAX_ATTACHMENT * 4 // 3 + 4:
            if ctype or title:
                out.append({"kind": "file", "content_type": ctype, "title": title})
            continue
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            out.append({"kind": "file", "content_type": ctype, "title": title})
            continue
        if ctype.startswith("text/"):
            out.append({"kind": "text", "title": title,
                        "text": raw.decode("utf-8", errors="replace")})  # fmt: skip
        elif ctype in _IMAGE_TYPES:
            out.append({"kind": "image", "title": title, "src": f"data:{ctype};base64,{data}"})
        else:
            out.append({"kind": "file", "content_type": ctype, "title": title})
    return out
