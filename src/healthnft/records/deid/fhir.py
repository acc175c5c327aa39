"""HIPAA Safe Harbor de-identification of FHIR R4 resources and bundles (dict in, new dict out).

Safe Harbor (45 CFR 164.514(b)(2)) lists 18 kinds of identifier of the patient
and of their relatives, employers and household members. What happens to each
here, for any resource type (the walk is generic: it recognizes FHIR datatypes
by their shape and element names, not a list of resource paths):

1. **Names** — every HumanName (``name`` with family/given/text…) is removed,
   the patient's, practitioners', relatives'; ``Patient.contact`` (relatives) goes
   whole, and so does the mother's-maiden-name extension. Organizations,
   locations and services keep a ``name`` placeholder (``[ORGANIZATION]``), since a
   clinic's name places the patient.
2. **Geography smaller than a state** — every Address keeps only ``use``,
   ``type``, ``state`` and ``country``; ``line``, ``city``, ``district``, ``text``,
   geolocation extensions and ``Location.position`` go. ``postalCode``: a US ZIP
   keeps its first three digits unless its three-digit area holds 20,000 people or
   fewer (HHS's list from the 2000 Census, :data:`RESTRICTED_ZIP3`), which become
   ``000`` as Safe Harbor prescribes; other countries' postal codes are removed.
   The birth-place extension is removed whole.
3. **Dates** — every date, dateTime and Period value is reduced to its **year**
   (Safe Harbor allows the year; we chose that over shifting dates, which Safe
   Harbor does not recognize and which leaves intervals that can be matched).
   ``instant`` elements cannot hold a year alone: optional ones (``issued``,
   ``meta.lastUpdated``, ``DocumentReference.date``…) are removed; the few
   required ones (``AuditEvent.recorded``, ``Provenance.recorded``, ``Slot.start``/
   ``end``) become 1 January of their year, 00:00 UTC, which says no more than the
   year. **Ages over 89**: a patient aged 90 or more (at death, or at ``today``)
   loses ``birthDate`` altogether and gets the extension :data:`AGE_90_PLUS`;
   any age quantity (UCUM ``a``/``mo``/``wk``/``d``) of 90 years or more becomes
   ``>= 90 a``.
4. **Telephone, 5. fax, 6. e-mail** — every ``telecom`` (ContactPoint) is removed.
7.–13. **SSN, MRN, health plan, account, certificate/licence, vehicle and
   device numbers** — every ``identifier`` element, anywhere (resources,
   references, qualifications), is removed, and so are ``Device.udiCarrier``,
   ``serialNumber``, ``distinctIdentifier``, ``Coverage.subscriberId`` and
   ``preAuthRef``.
14. **URLs, 15. IP addresses** — attachment URLs, ``Bundle.link``, network
   addresses, ``meta.source`` and conditional-reference queries are removed
   (``Endpoint.address``, required, becomes an opaque ``urn:uuid:``), absolute
   fullUrls and references become ``urn:uuid:`` pseudonyms;
   free text is scrubbed of URLs and IPs (below).
16. **Biometrics, 17. photographs** — ``photo`` is removed; any attachment that is
   not text (images, video, audio, other files) loses its data and URL.
18. **Other unique codes** — every resource ``id`` (and element id) and every
   reference (``urn:uuid:…``, ``Type/id``, absolute and contained ``#id``) is
   rewritten to a pseudonym: a UUID made from HMAC-SHA256 under a key, so the same
   id always gets the same pseudonym in one call (references stay consistent
   within a bundle) and, only if the caller passes the same ``key``, across calls.
   Without a key a fresh random one is used and thrown away: pseudonyms of two
   calls cannot be linked, which is what Safe Harbor's re-identification-code rule
   (164.514(c): not derived from the individual's information) asks for. A
   caller-kept key gives linkable pseudonyms (one research cohort across
   releases) — then the key is the re-identification secret and must never leave
   the issuer.

Narrative: ``text`` (the XHTML ``div``) is removed whole. Other free text —
``CodeableConcept.text``, annotations (``note``), descriptions, comments, display
strings of references that have nothing else, titles, and the text of
``text/plain`` and PDF attachments (a PDF becomes its scrubbed text) — is
scrubbed by :mod:`healthnft.records.deid.notes` with every identifier the call
knows from its input (names, identifier values, phones, e-mails, address parts,
birth dates: :func:`known_identifiers`) plus its patterns. That part is
best-effort (see that module's list of what it cannot catch); where free text
must go regardless, pass ``drop_free_text=True``, which removes annotations,
comments, descriptions and every attachment's data instead. Reference
``display`` is removed whenever the reference itself is kept.

Kept: clinical content — codes and their displays, values, units, statuses,
categories, the state and country, the year of everything, gender, language,
marital status and the like (none is a Safe Harbor identifier). The output is
still valid FHIR R4 for every Synthea resource (the tests check it with
fhir.resources), carries ``meta.security`` ANONYED (v3-ObservationValue), and
the input is never changed.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from healthnft.errors import InvalidRecord
from healthnft.records.deid.notes import KnownIdentifiers, scrub_text

#: Extension marking a patient aged 90 or over (Safe Harbor's single category).
AGE_90_PLUS = "https://healthnft.local/fhir/StructureDefinition/age-90-or-older"

#: Security label added to every de-identified resource.
ANONYMIZED_LABEL = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "ANONYED",
    "display": "anonymized",
}

#: Three-digit ZIP areas of 20,000 people or fewer (HHS Safe Harbor guidance, 2000 Census).
RESTRICTED_ZIP3 = frozenset({
    "036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831",
    "878", "879", "884", "890", "893",
})  # fmt: skip

#: Extensions removed whole (identifying by definition).
DROPPED_EXTENSIONS = frozenset(
    {
        "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
        "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName",
        "http://hl7.org/fhir/StructureDefinition/geolocation",
        "http://hl7.org/fhir/StructureDefinition/patient-congregation",
        "http://hl7.org/fhir/StructureDefinition/patient-relatedPerson",
        "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-streetAddressLine",
        "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation",
    }
)

#: Extension value types that are identifiers by nature.
_IDENTIFYING_VALUES = ("valueHumanName", "valueContactPoint", "valueIdentifier", "valueSignature")

#: Elements removed wherever they appear.
_DROPPED_KEYS = frozenset(
    {
        "identifier",
        "telecom",
        "photo",
        "contact",
        "link",
        "udiCarrier",
        "serialNumber",
        "distinctIdentifier",
        "subscriberId",
        "preAuthRef",
        "signature",
        "ifNoneExist",
        "ifMatch",
        "ifNoneMatch",
        "ifModifiedSince",
        "response",
        "alias",
        "valueUrl",  # a web address: of the person, for all we know
        "valueBase64Binary",  # opaque bytes: a picture, a signature, a document
    }
)

#: Resource types that name a place or an organization (their ``name`` places the patient).
_PLACE_TYPES = {
    "Organization": "[ORGANIZATION]",
    "OrganizationAffiliation": "[ORGANIZATION]",
    "InsurancePlan": "[ORGANIZATION]",
    "HealthcareService": "[ORGANIZATION]",
    "Endpoint": "[ORGANIZATION]",
    "Location": "[LOCATION]",
    "Group": "[GROUP]",
}

#: String elements that are codes, URIs or enumerations: kept as they are.
_STRUCTURAL_KEYS = frozenset(
    {
        "resourceType", "system", "code", "version", "url", "unit", "currency", "status",
        "use", "gender", "language", "contentType", "intent", "priority", "mode", "profile",
        "valueSet", "method", "comparator", "severity", "criticality", "outcome", "kind",
        "docStatus", "fullUrl", "reference", "valueCode", "valueUri", "valueCanonical",
        "valueUuid", "valueOid", "valueId",
    }
)  # fmt: skip

#: Free-text elements removed with ``drop_free_text=True``.
_FREE_TEXT_KEYS = frozenset(
    {"note", "comment", "description", "patientInstruction", "conclusion", "summary"}
)

#: ``instant`` elements, by name (anywhere) or by (resource type, name) on the resource itself.
_INSTANT_KEYS = frozenset(
    {"issued", "lastUpdated", "timestamp", "lastModified", "valueInstant", "effectiveInstant"}
)
_INSTANT_ON_RESOURCE = {
    ("AuditEvent", "recorded"): True,  # True: required — kept as 1 January of the year
    ("Provenance", "recorded"): True,
    ("Slot", "start"): True,
    ("Slot", "end"): True,
    ("DocumentReference", "date"): False,
    ("Appointment", "start"): False,
    ("Appointment", "end"): False,
    ("AppointmentResponse", "start"): False,
    ("AppointmentResponse", "end"): False,
    ("Subscription", "end"): False,
}

_TYPE_ID = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")

_DATE_VALUE = re.compile(
    r"(\d{4})(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01])(T[0-9:.]+(Z|[+-]\d{2}:\d{2})?)?)?)?"
)

_UCUM = "http://unitsofmeasure.org"
#: How many of each UCUM time unit make a year (for ages over 89).
_PER_YEAR = {"a": 1.0, "mo": 12.0, "wk": 52.1775, "d": 365.25, "h": 8766.0, "min": 525960.0}
_YEAR_WORDS = {"a", "yr", "yrs", "year", "years", "y"}

_DROP = object()


class FhirDeidentifier:
    """De-identifies resources and bundles with one pseudonym key (see the module docstring).

    Reuse one instance for several calls whose references must agree (e.g. a
    patient's bundle and a note about them) without keeping a key of your own.
    ``today`` fixes the date ages are computed at (default: the current date).
    ``known`` adds identifiers to scrub from free text, beyond those found in
    the input.
    """

    def __init__(
        self,
        *,
        key: bytes | None = None,
        today: date | None = None,
        known: KnownIdentifiers | Mapping[str, Iterable[str]] | Iterable[str] | None = None,
        drop_free_text: bool = False,
    ) -> None:
        if key is not None and (not isinstance(key, bytes) or len(key) < 16):
            raise ValueError("key must be at least 16 bytes")
        self._key = key if key is not None else secrets.token_bytes(32)
        self._today = today
        self._extra_known = known
        self.drop_free_text = drop_free_text
        self._known = KnownIdentifiers()
        self._elderly: set[str] = set()  # ids of patients aged 90 or over
        self._entries: set[tuple[str, str]] = set()  # (type, id) of the bundle's resources

    # -- public ----------------------------------------------------------------------------

    def pseudonym(self, value: str) -> str:
        """The pseudonymous id (a UUID) that ``value`` becomes under this key."""
        digest = hmac.new(self._key, b"healthnft/fhir-id/v1\x00" + value.encode(), hashlib.sha256)
        return str(uuid.UUID(bytes=digest.digest()[:16], version=4))

    def resource(self, resource: dict[str, Any]) -> dict[str, Any]:
        """A de-identified copy of one resource (references rewritten like ids)."""
        self._prepare([resource])
        return self._resource(resource)

    def bundle(self, bundle: dict[str, Any]) -> dict[str, Any]:
        """A de-identified copy of a Bundle: entries, fullUrls and requests consistent."""
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise InvalidRecord("input is not a FHIR Bundle")
        entries = bundle.get("entry") or []
        resources = [
            e["resource"]
            for e in entries
            if isinstance(e, dict) and isinstance(e.get("resource"), dict)
        ]
        self._prepare(resources)
        self._entries = {
            (r["resourceType"], r["id"]) for r in resources if isinstance(r.get("id"), str)
        }
        out: dict[str, Any] = {"resourceType": "Bundle"}
        for key, value in bundle.items():
            if key in ("resourceType", "entry", "link", "signature", "identifier", "timestamp"):
                continue
            if key == "id" and isinstance(value, str):
                out["id"] = self.pseudonym(value)
            elif key == "meta":
                meta = self._meta(value)
                if meta:
                    out["meta"] = meta
            elif key == "type":
                out["type"] = value
            elif key == "total":
                out["total"] = value
        new_entries = []
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            new: dict[str, Any] = {}
            if isinstance(entry.get("fullUrl"), str):
                new["fullUrl"] = self._reference(entry["fullUrl"])
            if isinstance(entry.get("resource"), dict):
                new["resource"] = self._resource(entry["resource"])
            request = entry.get("request")
            if isinstance(request, dict):
                new["request"] = self._request(request)
            if isinstance(entry.get("search"), dict):
                new["search"] = copy.deepcopy(entry["search"])
            new_entries.append(new)
        if new_entries:
            out["entry"] = new_entries
        return out

    def resources(self, resources: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """De-identified copies of several resources sharing identifiers and references."""
        items = list(resources)
        self._prepare(items)
        return [self._resource(r) for r in items]

    # -- preparation: what the input tells about its people -----------------------------

    def _prepare(self, resources: list[dict[str, Any]]) -> None:
        for r in resources:
            if not isinstance(r, dict) or not isinstance(r.get("resourceType"), str):
                raise InvalidRecord("input is not a FHIR resource (no resourceType)")
        known = known_identifiers(resources)
        if self._extra_known is not None:
            extra = self._extra_known
            if not isinstance(extra, KnownIdentifiers):
                extra = KnownIdentifiers(extra)
            for kind, values in extra.values.items():
                for v in values:
                    known.add(kind, v)
        for kind, values in self._known.values.items():  # earlier calls of this instance
            for v in values:
                known.add(kind, v)
        self._known = known
        today = self._today or date.today()
        for r in resources:
            if r["resourceType"] == "Patient" and _aged_90_or_more(r, today):
                self._elderly.add(str(r.get("id")))

    # -- the walk ----------------------------------------------------------------------------

    def _resource(self, resource: dict[str, Any]) -> dict[str, Any]:
        rtype = resource["resourceType"]
        out = self._object(resource, "", rtype, on_resource=True)
        if not isinstance(out, dict):  # pragma: no cover - a resource always keeps its type
            out = {"resourceType": rtype}
        if rtype == "Patient" and str(resource.get("id")) in self._elderly:
            out.pop("birthDate", None)
            out.setdefault("extension", []).append({"url": AGE_90_PLUS, "valueBoolean": True})
        if rtype == "Binary":  # its data is a whole document or picture
            out.pop("data", None)
            out.pop("securityContext", None)
        meta = out.get("meta") if isinstance(out.get("meta"), dict) else {}
        security = [s for s in meta.get("security", []) if s != ANONYMIZED_LABEL]
        meta["security"] = [*security, dict(ANONYMIZED_LABEL)]
        out["meta"] = meta
        return _ordered(out, rtype)

    def _value(self, value: Any, key: str, rtype: str, parent: dict[str, Any]) -> Any:
        if isinstance(value, dict):
            return self._object(value, key, rtype, on_resource=False)
        if isinstance(value, list):
            items = [self._value(v, key, rtype, parent) for v in value]
            items = [v for v in items if v is not _DROP and v not in ({}, [])]
            if key == "content" and rtype == "DocumentReference":
                items = _dedupe_attachments(items)
            return items or _DROP
        if isinstance(value, str):
            return self._string(value, key, rtype, parent, on_resource=False)
        return value

    def _object(self, obj: dict[str, Any], key: str, rtype: str, *, on_resource: bool) -> Any:
        if isinstance(obj.get("resourceType"), str) and not on_resource:
            return self._resource(obj)  # contained resource
        if key == "text" and "div" in obj:
            return _DROP  # narrative
        if key == "meta":
            return self._meta(obj) or _DROP
        if _is_human_name(key, obj):
            return _DROP
        if key in ("address", "valueAddress") or _is_address(obj):
            return _address(obj)
        if _is_attachment(key, obj):
            return self._attachment(obj)
        if _is_time_quantity(obj):
            capped = _cap_age(obj)
            if capped is not None:
                return capped
        if isinstance(obj.get("reference"), str):
            return self._reference_object(obj)
        out: dict[str, Any] = {}
        for k, v in obj.items():
            if k in _DROPPED_KEYS:
                continue
            if self.drop_free_text and k in _FREE_TEXT_KEYS:
                continue
            if k in ("extension", "modifierExtension") and isinstance(v, list):
                v = [e for e in v if not _dropped_extension(e)]
            if on_resource and k == "position" and rtype == "Location":
                continue
            if on_resource and k == "name" and isinstance(v, str) and rtype in _PLACE_TYPES:
                out[k] = _PLACE_TYPES[rtype]
                continue
            if isinstance(v, str):
                nv = self._string(v, k, rtype, obj, on_resource=on_resource)
            else:
                nv = self._value(v, k, rtype, obj)
            if nv is _DROP or nv in ({}, []):
                continue
            out[k] = nv
        return out

    def _string(
        self, value: str, key: str, rtype: str, parent: dict[str, Any], *, on_resource: bool
    ) -> Any:
        if key == "id":
            return self.pseudonym(value)
        if key in ("reference", "fullUrl"):
            return self._reference(value)
        if key == "address":  # Endpoint.address, AuditEvent's network address: a URL or an IP
            # Endpoint.address is required: it becomes an opaque URN that reaches nothing.
            return _urn(self, value) if on_resource and rtype == "Endpoint" else _DROP
        if key in _STRUCTURAL_KEYS:
            return value
        m = _DATE_VALUE.fullmatch(value)
        if m:
            required = _INSTANT_ON_RESOURCE.get((rtype, key)) if on_resource else None
            if key in _INSTANT_KEYS or required is False:
                return _DROP
            if required:
                return f"{m.group(1)}-01-01T00:00:00Z"
            return m.group(1)
        if key == "display" and _is_coding(parent):
            return value
        if self.drop_free_text and key in _FREE_TEXT_KEYS:
            return _DROP
        return scrub_text(value, self._known).text

    def _meta(self, meta: Any) -> dict[str, Any]:
        if not isinstance(meta, dict):
            return {}
        out: dict[str, Any] = {}
        for k in ("profile", "security", "tag"):
            if isinstance(meta.get(k), list):
                out[k] = copy.deepcopy(meta[k])
        return out

    def _reference_object(self, ref: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"reference": self._reference(ref["reference"])}
        if isinstance(ref.get("type"), str):
            out["type"] = ref["type"]
        return out

    def _reference(self, ref: str) -> str:
        """Rewrite a reference or fullUrl so it points at the target's pseudonym."""
        if ref.startswith("urn:uuid:"):
            return "urn:uuid:" + self.pseudonym(ref.removeprefix("urn:uuid:"))
        if ref.startswith("#"):
            return "#" + self.pseudonym(ref[1:]) if len(ref) > 1 else ref
        head, _, query = ref.partition("?")
        if query:  # conditional reference: its query holds identifiers
            rtype = head.rstrip("/").rsplit("/", 1)[-1]
            return f"{rtype}/{self.pseudonym(ref)}" if rtype[:1].isupper() else _urn(self, ref)
        m = _TYPE_ID.search(ref)
        if m:
            if (m.group(1), m.group(2)) in self._entries or "://" in ref:
                # A bundle entry (or an absolute fullUrl): urn:uuid, which resolves in a bundle
                # whatever its base was, and says nothing of the server it came from.
                return "urn:uuid:" + self.pseudonym(m.group(2))
            return f"{m.group(1)}/{self.pseudonym(m.group(2))}"
        return _urn(self, ref)

    def _request(self, request: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if isinstance(request.get("method"), str):
            out["method"] = request["method"]
        url = request.get("url")
        if isinstance(url, str):  # "Patient", "Patient/123", "Patient?identifier=…"
            base = url.partition("?")[0]
            m = _TYPE_ID.search(base)
            out["url"] = f"{m.group(1)}/{self.pseudonym(m.group(2))}" if m else base.split("/")[0]
        return out

    def _attachment(self, att: dict[str, Any]) -> dict[str, Any]:
        from healthnft.records.notes import EXTRACTED_TEXT_TITLE, decode_text, extract_pdf_text

        ctype = str(att.get("contentType") or "")
        base = ctype.split(";")[0].strip().lower()
        out: dict[str, Any] = {}
        if ctype:
            out["contentType"] = ctype
        if isinstance(att.get("language"), str):
            out["language"] = att["language"]
        if isinstance(att.get("title"), str) and not self.drop_free_text:
            out["title"] = scrub_text(att["title"], self._known).text
        if isinstance(att.get("creation"), str):
            m = _DATE_VALUE.fullmatch(att["creation"])
            if m:
                out["creation"] = m.group(1)
        data = att.get("data")
        if not isinstance(data, str) or self.drop_free_text:
            return out
        try:
            raw = base64.b64decode(data, validate=True)
            if base == "text/plain":
                from healthnft.records.notes import _charset

                text, _ = decode_text(raw, "attachment", encoding=_charset(ctype))
            elif base == "application/pdf":
                text, _, _ = extract_pdf_text(raw, "attachment")
                out["title"] = EXTRACTED_TEXT_TITLE
            else:
                return out  # images, video, audio, other files: data removed
        except (InvalidRecord, ValueError):
            return out  # unreadable: its data cannot be checked, so it goes
        clean = scrub_text(text, self._known).text.encode("utf-8")
        out["contentType"] = "text/plain; charset=utf-8"
        out["data"] = base64.b64encode(clean).decode("ascii")
        out["size"] = len(clean)
        out["hash"] = base64.b64encode(hashlib.sha1(clean).digest()).decode("ascii")
        return out


def _urn(deid: FhirDeidentifier, ref: str) -> str:
    return "urn:uuid:" + deid.pseudonym(ref)


# -- shapes ---------------------------------------------------------------------------------

_NAME_PARTS = frozenset({"family", "given", "text", "prefix", "suffix"})


def _is_human_name(key: str, obj: dict[str, Any]) -> bool:
    return (
        (key in ("name", "valueHumanName") or key.endswith("Name"))
        and bool(_NAME_PARTS & obj.keys())
        and "system" not in obj
        and "code" not in obj
    )


def _is_address(obj: dict[str, Any]) -> bool:
    return (
        bool({"line", "city", "postalCode", "district"} & obj.keys()) and "resourceType" not in obj
    )


def _is_attachment(key: str, obj: dict[str, Any]) -> bool:
    if key in ("attachment", "valueAttachment", "presentedForm", "contentAttachment"):
        return True
    return "resourceType" not in obj and (
        "contentType" in obj
        or (isinstance(obj.get("data"), str) and "url" not in obj)
        or ("url" in obj and bool({"size", "hash", "title", "creation"} & obj.keys()))
    )


def _is_coding(obj: dict[str, Any]) -> bool:
    return "code" in obj and "display" in obj and "reference" not in obj


def _is_time_quantity(obj: dict[str, Any]) -> bool:
    value = obj.get("value")
    if not isinstance(value, int | float | Decimal) or isinstance(value, bool):
        return False
    code, unit = obj.get("code"), str(obj.get("unit") or "").lower()
    return (code in _PER_YEAR and obj.get("system") in (None, _UCUM)) or unit in _YEAR_WORDS


def _cap_age(obj: dict[str, Any]) -> dict[str, Any] | None:
    code = obj.get("code") if obj.get("code") in _PER_YEAR else "a"
    years = float(obj["value"]) / _PER_YEAR[code]  # a threshold: a float is exact enough
    if years < 90:
        return None
    return {"value": 90, "comparator": ">=", "unit": "years", "system": _UCUM, "code": "a"}


def _dropped_extension(ext: Any) -> bool:
    if not isinstance(ext, dict):
        return True
    if ext.get("url") in DROPPED_EXTENSIONS:
        return True
    return any(k in ext for k in _IDENTIFYING_VALUES)


def _address(addr: dict[str, Any]) -> dict[str, Any] | object:
    if not isinstance(addr, dict):
        return _DROP
    out: dict[str, Any] = {
        k: addr[k] for k in ("use", "type", "state", "country") if isinstance(addr.get(k), str)
    }
    zip3 = generalize_postal_code(addr.get("postalCode"), addr.get("country"))
    if zip3:
        out["postalCode"] = zip3
    return out or _DROP


def generalize_postal_code(code: Any, country: Any = None) -> str | None:
    """A US ZIP's first three digits (``000`` for the restricted areas); None otherwise."""
    if not isinstance(code, str):
        return None
    us = country is None or str(country).strip().upper() in ("US", "USA", "UNITED STATES")
    m = re.fullmatch(r"\s*(\d{3})\d{2}(?:-?\d{4})?\s*", code)
    if not us or not m:
        return None
    return "000" if m.group(1) in RESTRICTED_ZIP3 else m.group(1)


def _dedupe_attachments(items: list[Any]) -> list[Any]:
    """A PDF and its extracted text become the same scrubbed text: keep it once."""
    seen: set[str] = set()
    out = []
    for item in items:
        data = item.get("attachment", {}).get("data") if isinstance(item, dict) else None
        if isinstance(data, str):
            if data in seen:
                continue
            seen.add(data)
        out.append(item)
    return out


def _ordered(resource: dict[str, Any], rtype: str) -> dict[str, Any]:
    out = {"resourceType": rtype}
    out.update((k, v) for k, v in resource.items() if k != "resourceType")
    return out


# -- ages -----------------------------------------------------------------------------------


def _aged_90_or_more(patient: dict[str, Any], today: date) -> bool:
    """Whether the patient is (or was, at death) 90 or older — or may be, from a partial date."""
    birth = patient.get("birthDate")
    if not isinstance(birth, str):
        return False
    m = _DATE_VALUE.fullmatch(birth)
    if not m:
        return False
    at = today
    deceased = patient.get("deceasedDateTime")
    dm = _DATE_VALUE.fullmatch(deceased) if isinstance(deceased, str) else None
    if dm:
        at = _partial_date(dm) or at
    year = int(m.group(1))
    full = _partial_date(m) if m.group(5) else None
    if full is None:  # year or year-month only: 90+ as soon as it may be
        return at.year - year >= 90
    age = at.year - full.year - ((at.month, at.day) < (full.month, full.day))
    return age >= 90


def _partial_date(m: re.Match[str]) -> date | None:
    try:
        return date(int(m.group(1)), int(m.group(3) or 1), int(m.group(5) or 1))
    except ValueError:
        return None


# -- what the input tells about its people -------------------------------------------------------

_UUID = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)


def known_identifiers(resources: Iterable[dict[str, Any]]) -> KnownIdentifiers:
    """Every identifying string in these resources, for scrubbing free text about them.

    Names (every HumanName, and the mother's maiden name), identifier values,
    telecom values (phones, e-mails, URLs), address lines, cities, districts and
    postal codes (birth place included), and full birth dates. UUID-shaped
    values are left to the scrubber's UUID pattern (any UUID is scrubbed).
    """
    known = KnownIdentifiers()
    for resource in resources:
        _collect(resource, "", known)
    return known


def _collect(value: Any, key: str, known: KnownIdentifiers) -> None:
    if isinstance(value, list):
        for v in value:
            _collect(v, key, known)
        return
    if not isinstance(value, dict):
        return
    if _is_human_name(key, value):
        parts = [*_strings(value.get("given")), *_strings(value.get("family"))]
        for part in [*parts, *_strings(value.get("text"))]:
            known.add("NAME", part)
        if parts:
            known.add("NAME", " ".join(parts))
        return
    if key == "identifier" and isinstance(value.get("value"), str):
        v = value["value"]
        if not _UUID.fullmatch(v.strip()):
            code = _first_code(value.get("type"))
            known.add("SSN" if code == "SS" else "ID", v)
    if key == "telecom" and isinstance(value.get("value"), str):
        system = value.get("system")
        kind = {"email": "EMAIL", "url": "URL"}.get(str(system), "PHONE")
        known.add(kind, value["value"])
    if key in ("address", "valueAddress") or _is_address(value):
        for line in _strings(value.get("line")):
            known.add("ADDRESS", line)
        for k in ("city", "district", "text"):
            for v in _strings(value.get(k)):
                known.add("ADDRESS", v)
        for v in _strings(value.get("postalCode")):
            known.add("ZIP", v)
            known.add("ZIP", v.split("-")[0])
    if value.get("url") == "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName":
        for v in _strings(value.get("valueString")):
            known.add("NAME", v)
    birth = value.get("birthDate") if value.get("resourceType") == "Patient" else None
    if isinstance(birth, str) and len(birth) >= 10:
        known.add("DATE", birth[:10])
    for k, v in value.items():
        if isinstance(v, dict | list):
            _collect(v, k, known)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _first_code(concept: Any) -> str | None:
    if isinstance(concept, dict):
        for coding in concept.get("coding") or []:
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                return coding["code"]
    return None


# -- functions ------------------------------------------------------------------------------


def deidentify_resource(
    resource: dict[str, Any],
    *,
    key: bytes | None = None,
    today: date | None = None,
    known: KnownIdentifiers | Mapping[str, Iterable[str]] | Iterable[str] | None = None,
    drop_free_text: bool = False,
) -> dict[str, Any]:
    """A Safe Harbor de-identified copy of one FHIR resource (the input is not changed).

    Without ``key`` its pseudonyms are random: de-identify resources that refer to
    each other together, with :func:`deidentify_bundle`, or pass one ``key``.
    """
    deid = FhirDeidentifier(key=key, today=today, known=known, drop_free_text=drop_free_text)
    return deid.resource(resource)


def deidentify_bundle(
    bundle: dict[str, Any] | list[dict[str, Any]],
    *,
    key: bytes | None = None,
    today: date | None = None,
    known: KnownIdentifiers | Mapping[str, Iterable[str]] | Iterable[str] | None = None,
    drop_free_text: bool = False,
) -> dict[str, Any] | list[dict[str, Any]]:
    """A de-identified copy of a Bundle (or a list of resources), references kept consistent.

    Every identifier any entry holds is scrubbed from every entry's free text
    (a note naming the patient is cleaned with the Patient resource's names).
    """
    deid = FhirDeidentifier(key=key, today=today, known=known, drop_free_text=drop_free_text)
    if isinstance(bundle, list):
        return deid.resources(bundle)
    return deid.bundle(bundle)
