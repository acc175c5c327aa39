"""Read, validate, characterize, clean and canonicalize FHIR R4 resources.

Validation uses fhir.resources' R4B models (the 8.x line has no plain R4
module; R4B reads R4 and accepts every Synthea resource, R5 rejects a third).
Canonicalization is RFC 8785 (JCS) over the *original* JSON, cleaned, not over
a model dump: a pydantic dump rewrites timestamps (``.175`` → ``.175000``) and
would change the bytes the issuer commits to. For the same reason decimals are read
as ``Decimal`` and committed with the digits the hospital sent (``5.60`` stays
``5.60``; see :mod:`healthnft.records.jcs` for how that departs from JCS).

Terminology: fhir.resources checks no bindings, so every element with a *required*
binding is checked against its R4 value set (a wrong code refuses the record) and
every one with an *extensible* binding is reported as a warning carried by the
record (:mod:`healthnft.records.bindings`).

Error messages name the file, the entry and the field path, never a value:
pydantic's own messages quote the input, which may be health data.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rfc8785
from pydantic import ValidationError

from healthnft.errors import InputNotFound, InvalidRecord
from healthnft.records import bindings, exact_json, jcs

#: Resource types that describe the network, not a patient: never minted.
REFERENCE_TYPES = frozenset(
    {
        "Organization",
        "Practitioner",
        "PractitionerRole",
        "Location",
        "HealthcareService",
        "Endpoint",
        "Medication",
        "Substance",
        "Device",
    }
)

#: Coarse category per resource type (Observations use their own category).
_CATEGORY_BY_TYPE = {
    "Patient": "demographics",
    "Immunization": "immunization",
    "Condition": "condition",
    "Procedure": "procedure",
    "Encounter": "encounter",
    "Claim": "claim",
    "ExplanationOfBenefit": "claim",
    "Coverage": "claim",
    "DiagnosticReport": "diagnostic-report",
    "CarePlan": "care-plan",
    "CareTeam": "care-team",
    "Goal": "care-plan",
    "MedicationRequest": "medication",
    "MedicationStatement": "medication",
    "MedicationAdministration": "medication",
    "AllergyIntolerance": "allergy",
    "ImagingStudy": "imaging",
    "DocumentReference": "note",
    "Composition": "note",
    "SupplyDelivery": "other",
    "Provenance": "other",
}

#: Where each resource type keeps its clinically relevant date, in order.
_DATE_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    "Observation": (("effectiveDateTime",), ("effectivePeriod", "start"), ("issued",)),
    "Immunization": (("occurrenceDateTime",), ("recorded",)),
    "Condition": (("onsetDateTime",), ("recordedDate",)),
    "Procedure": (("performedDateTime",), ("performedPeriod", "start")),
    "Encounter": (("period", "start"),),
    "Claim": (("billablePeriod", "start"), ("created",)),
    "ExplanationOfBenefit": (("billablePeriod", "start"), ("created",)),
    "DiagnosticReport": (("effectiveDateTime",), ("effectivePeriod", "start"), ("issued",)),
    "CarePlan": (("period", "start"),),
    "MedicationRequest": (("authoredOn",),),
    "AllergyIntolerance": (("recordedDate",),),
    "ImagingStudy": (("started",),),
    "DocumentReference": (("date",),),
}

#: String fields whose whitespace is meaningful or that hold encoded data.
_KEEP_WHITESPACE = frozenset({"data", "div"})


@dataclass(frozen=True)
class SourceResource:
    """One resource read from a file, with a location for error messages."""

    resource: dict[str, Any]
    location: str


@dataclass(frozen=True)
class Record:
    """A validated, cleaned, canonical patient record, ready to commit and encrypt."""

    resource_type: str
    resource_id: str | None
    category: str
    effective_date: str | None
    canonical: bytes
    location: str
    subject_ref: str | None
    #: Codes outside an extensible binding's value set: worth a look, not a refusal.
    #: Each names the location and the element path, never the value.
    warnings: tuple[str, ...] = field(default=(), kw_only=True)

    @property
    def structured(self) -> bool:
        """FHIR resources are structured data (DICOM and notes are not)."""
        return True


def read_resources(path: Path, label: str | None = None) -> list[SourceResource]:
    """Read a FHIR JSON file: a Bundle (batch/transaction/collection/...) or one resource.

    ``label`` names the file in errors (default: its name). Callers handling
    patient files pass a positional label, because file names often carry the
    patient's name (Synthea writes ``Given_Family_uuid.json``).
    """
    name = label or path.name
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputNotFound(f"{name}: no such file") from None
    except IsADirectoryError:
        raise InputNotFound(f"{name}: is a folder, expected a FHIR JSON file") from None
    except OSError as exc:
        raise InputNotFound(f"{name}: cannot be read ({exc.strerror})") from None
    return parse_resources(raw, name)


def parse_resources(raw: bytes, name: str) -> list[SourceResource]:
    """Parse JSON bytes into the resources they hold (entries of a Bundle, or itself).

    Decimals are read as ``Decimal``, digits and precision as sent.
    """
    try:
        obj = exact_json.loads(raw)
    except exact_json.NotJSON as exc:
        raise InvalidRecord(f"{name}: not valid JSON ({exc})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("resourceType"), str):
        raise InvalidRecord(f"{name}: not a FHIR resource (no resourceType)")
    if obj["resourceType"] != "Bundle":
        return [SourceResource(obj, name)]
    entries = obj.get("entry", [])
    if not isinstance(entries, list):
        raise InvalidRecord(f"{name}: Bundle.entry is not a list")
    out = []
    for i, entry in enumerate(entries):
        res = entry.get("resource") if isinstance(entry, dict) else None
        where = f"{name} entry {i}"
        if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
            raise InvalidRecord(f"{where}: entry has no resource with a resourceType")
        if res["resourceType"] == "Bundle":
            raise InvalidRecord(f"{where}: nested Bundles are not supported")
        out.append(SourceResource(res, where))
    return out


def validate(src: SourceResource) -> tuple[str, ...]:
    """Validate against the R4B model of its type and the R4 required bindings.

    Raises InvalidRecord naming fields only; returns the extensible-binding warnings,
    each prefixed with the resource's location.
    """
    from fhir.resources.R4B import get_fhir_model_class

    rtype = src.resource["resourceType"]
    try:
        model = get_fhir_model_class(rtype)
    except (KeyError, ValueError):
        # The claimed type is input, and input may be anything: never echoed.
        raise InvalidRecord(f"{src.location}: unknown FHIR resource type") from None
    try:
        model.model_validate(src.resource)
    except ValidationError as exc:
        raise InvalidRecord(f"{src.location}: invalid {rtype}: {_describe(exc)}") from None
    found = bindings.check(src.resource)
    if found.errors:
        more = len(found.errors) - 3
        raise InvalidRecord(f"{src.location}: invalid {rtype}: " + "; ".join(found.errors[:3])
                            + (f"; and {more} more" if more > 0 else ""))  # fmt: skip
    return tuple(f"{src.location}: {rtype}.{w}" for w in found.warnings)


def _describe(exc: ValidationError) -> str:
    """Summarize a pydantic error by field path and error kind, without input values."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False)[:3]:
        path = list(err.get("loc", ()))
        kind = err.get("type", "invalid")
        if kind == "extra_forbidden":  # the last part is the input's own key: not shown
            path, kind = path[:-1], "unknown field"
        loc = ".".join(str(p) for p in path) or "(resource)"
        parts.append(f"{loc} ({kind})")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def is_reference_data(src: SourceResource) -> bool:
    """Organizations, practitioners and the like belong to the network, not to a patient."""
    return src.resource["resourceType"] in REFERENCE_TYPES


def clean(resource: dict[str, Any]) -> dict[str, Any]:
    """Drop generated narrative and normalize whitespace; returns a new dict.

    The narrative (``text.div``) is a rendering of the structured data that
    Synthea generates; FHIR requires ``div`` whenever ``text`` is present, so the
    whole ``text`` element goes when its status is ``generated``.
    """
    out = _clean_value(resource, "")
    text = out.get("text")
    if isinstance(text, dict) and text.get("status") in ("generated", "extensions", None):
        del out["text"]
    return out


def _clean_value(value: Any, key: str) -> Any:
    if isinstance(value, str):
        # str.split() splits on exactly the Unicode whitespace \s matches, ~3x faster.
        return value if key in _KEEP_WHITESPACE else " ".join(value.split())
    if isinstance(value, dict):
        return {k: _clean_value(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_value(v, key) for v in value]
    return value


def canonicalize(resource: dict[str, Any]) -> bytes:
    """RFC 8785 JSON Canonicalization Scheme bytes."""
    try:
        return jcs.dumps(resource)
    except (rfc8785.CanonicalizationError, ValueError) as exc:
        raise InvalidRecord(f"cannot canonicalize: {type(exc).__name__}") from None


def characterize(resource: dict[str, Any]) -> tuple[str, str | None]:
    """Return (coarse category, effective date YYYY-MM-DD or None)."""
    rtype = resource["resourceType"]
    if rtype == "Observation":
        category = _observation_category(resource)
    elif rtype == "DiagnosticReport" and _has_code(resource.get("category"), "LAB"):
        category = "laboratory"
    else:
        category = _CATEGORY_BY_TYPE.get(rtype, "other")
    return category, _effective_date(resource)


def _observation_category(resource: dict[str, Any]) -> str:
    for cat in resource.get("category", []) or []:
        for coding in cat.get("coding", []) or []:
            code = coding.get("code")
            if isinstance(code, str) and re.fullmatch(r"[a-z-]{2,32}", code):
                return code
    return "observation"


def _has_code(concepts: Any, code: str) -> bool:
    return any(
        c.get("code") == code for cc in (concepts or []) for c in (cc.get("coding") or [])
    )


def _effective_date(resource: dict[str, Any]) -> str | None:
    for path in _DATE_PATHS.get(resource["resourceType"], ()):
        value: Any = resource
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, str) and len(value) >= 4:
            return value[:10]
    return None


def subject_reference(resource: dict[str, Any]) -> str | None:
    """The patient a resource is about (``urn:uuid:…`` or ``Patient/…``), if it says."""
    if resource["resourceType"] == "Patient":
        rid = resource.get("id")
        return f"urn:uuid:{rid}" if rid else None
    for name in ("subject", "patient", "beneficiary"):
        ref = resource.get(name)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            return _normalize_ref(ref["reference"])
    return None


def _normalize_ref(ref: str) -> str:
    if ref.startswith("Patient/"):
        return "urn:uuid:" + ref.removeprefix("Patient/")
    return ref


def prepare(src: SourceResource) -> Record:
    """Validate, clean, characterize and canonicalize one patient resource."""
    warnings = validate(src)
    cleaned = clean(src.resource)
    category, effective = characterize(cleaned)
    return Record(
        resource_type=cleaned["resourceType"],
        resource_id=cleaned.get("id") if isinstance(cleaned.get("id"), str) else None,
        category=category,
        effective_date=effective,
        canonical=canonicalize(cleaned),
        location=src.location,
        subject_ref=subject_reference(cleaned),
        warnings=warnings,
    )


def iter_json_files(paths: list[Path]) -> Iterator[Path]:
    """Expand folders into their ``*.json`` files (sorted); files pass through."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.glob("*.json") if p.is_file())
        else:
            yield path
