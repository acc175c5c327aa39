"""The FHIR Bundle inside a card: minimized as the spec's QR guidance asks.

A card should carry what it is about and nothing more: no resource ids, narratives or
display texts, no references leaving the card, and of the Patient only name and birth
date. :func:`build_bundle` turns a patient's resources into such a ``collection``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from healthnft.errors import InvalidRecord

__all__ = ["build_bundle"]


#: Patient elements kept in a card: who the card is about, nothing more (data
#: minimization; the SMART vaccination profile asks for name and birth date).
_PATIENT_ELEMENTS = ("name", "birthDate")


def build_bundle(resources: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A minimal ``collection`` Bundle for a card, following the spec's QR guidance.

    Each resource becomes entry ``resource:N``; references to resources in the card
    (``Type/id`` or ``urn:uuid:id``) become ``resource:N`` and references to anything
    else are dropped (they would point outside the card and leak identifiers). Removed
    as the spec asks: ``Resource.id``, ``meta`` (except ``meta.security``),
    ``DomainResource.text``, ``CodeableConcept.text``, ``Coding.display``. A Patient keeps
    only its official name and birth date.
    """
    index: dict[str, str] = {}
    for n, res in enumerate(resources):
        if not isinstance(res, Mapping) or not isinstance(res.get("resourceType"), str):
            raise InvalidRecord(f"resource {n}: not a FHIR resource (no resourceType)")
        rid = res.get("id")
        if isinstance(rid, str) and rid:
            index[f"{res['resourceType']}/{rid}"] = f"resource:{n}"
            index[f"urn:uuid:{rid}"] = f"resource:{n}"
    entries = []
    for n, res in enumerate(resources):
        slim = _minimize_resource(dict(res), index)
        entries.append({"fullUrl": f"resource:{n}", "resource": slim})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def _minimize_resource(res: dict[str, Any], index: Mapping[str, str]) -> dict[str, Any]:
    rtype = res["resourceType"]
    if rtype == "Patient":
        res = {"resourceType": "Patient", **{k: res[k] for k in _PATIENT_ELEMENTS if k in res}}
        names = res.get("name")
        if isinstance(names, list) and names:
            chosen = next(
                (n for n in names if isinstance(n, dict) and n.get("use") in (None, "official")),
                names[0],
            )
            if isinstance(chosen, dict):
                res["name"] = [{k: chosen[k] for k in ("family", "given") if k in chosen}]
    res.pop("id", None)
    res.pop("text", None)
    meta = res.pop("meta", None)
    if isinstance(meta, dict) and meta.get("security"):
        res["meta"] = {"security": meta["security"]}
    out = _minimize_value(res, index, in_coding=False)
    assert isinstance(out, dict)
    out["resourceType"] = rtype
    return out


_DROP = object()


def _minimize_value(value: Any, index: Mapping[str, str], *, in_coding: bool) -> Any:
    if isinstance(value, list):
        items = [_minimize_value(v, index, in_coding=in_coding) for v in value]
        kept = [v for v in items if v is not _DROP]
        return kept if kept else _DROP
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key == "contained":
            out[key] = item  # local "#id" references need the contained ids intact
            continue
        if key == "text" and "coding" in value:
            continue  # CodeableConcept.text
        if key == "display" and in_coding:
            continue  # Coding.display
        if key == "reference" and isinstance(item, str):
            if item.startswith("#"):
                out[key] = item
            elif (target := _resolve(item, index)) is not None:
                out[key] = target
            continue  # a reference leaving the card is dropped
        minimized = _minimize_value(item, index, in_coding=key == "coding")
        if minimized is not _DROP:
            out[key] = minimized
    return out if out else _DROP


def _resolve(reference: str, index: Mapping[str, str]) -> str | None:
    if reference in index:
        return index[reference]
    if "://" in reference:  # absolute URL: match on its trailing Type/id
        tail = "/".join(reference.split("/_history/")[0].rstrip("/").split("/")[-2:])
        return index.get(tail)
    return None
