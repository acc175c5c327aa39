"""FHIR R4 terminology bindings: a code outside a *required* value set refuses the record,
one outside an *extensible* value set is reported as a warning.

fhir.resources checks structure and datatypes but no bindings, so ``Patient.gender =
"Bibi254"`` or a phone number in ``telecom.system`` would be minted as valid. The
bindings and their value sets come from HL7's R4 (4.0.1) definitions, derived offline
by ``tools/fhir_bindings.py`` (``make fhir-bindings``) into ``fhir_r4_bindings.json``
(package data, nothing fetched at run time): every ``code``, ``Coding``,
``CodeableConcept`` and quantity element with a required or extensible binding, in
every resource and datatype, whose value set the definitions enumerate. What they do
not enumerate (MIME types, currencies, UCUM units) is named in that file under
``unchecked`` and left to the validator's datatype checks.

Written by hand: fhir.resources (and its fhir-core) checks no binding, and the
validators that do (HL7's, HAPI) are Java. It is a walk over the resource's own keys,
each looked up in a per-type table compiled once per process: its cost grows with the
resource, not with the specification (~15 µs for a Synthea resource).

How a value is judged against a value set (FHIR R4, "Terminology bindings"):
- ``code``: the code is one of the value set's codes (the system is implied).
- ``Coding`` / quantity units: ``system`` and ``code`` are a pair of the value set, or
  the system is one whose codes the specification does not list (any code of it passes);
  a Coding without a system passes when its code is one of the value set's.
- ``CodeableConcept``: at least one coding passes as above. For an extensible binding a
  concept with only ``text`` is allowed (the binding says "if no code fits, use text").

Messages name the element path and the value set, never the value: it may be health data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

DATA_FILE = "fhir_r4_bindings.json"


@dataclass(frozen=True)
class _Binding:
    """One element's binding, its value set precompiled into sets (a lookup per value)."""

    kind: str  # "code", "Coding", "CodeableConcept" or "Quantity"
    required: bool
    url: str
    codes: frozenset[str]  # every listed code, whatever its system
    pairs: frozenset[tuple[str, str]]  # (system, code)
    open_systems: frozenset[str]  # systems whose codes are not listed: any code passes

    def accepts_coding(self, coding: Any) -> bool:
        """A Coding (or a quantity's system and code) from the value set."""
        if not isinstance(coding, dict):
            return False
        code, system = coding.get("code"), coding.get("system")
        if system is None:
            return code in self.codes
        return system in self.open_systems or (system, code) in self.pairs

    def accepts(self, value: Any) -> bool | None:
        """True or False; None when an extensible concept has only text (allowed)."""
        if self.kind == "code":
            return isinstance(value, str) and value in self.codes
        if self.kind == "CodeableConcept":
            if not isinstance(value, dict):
                return False
            codings = value.get("coding")
            if not codings:
                return None if not self.required and value.get("text") else False
            return any(self.accepts_coding(c) for c in codings)
        return self.accepts_coding(value)


#: Per type: element name -> (the element's own type table or None, its binding or None,
#: whether that type matters only through its extensions). The table of ``contained``
#: is :data:`_CONTAINED`: look the type up by resourceType.
_Plan = dict[str, tuple[Any, "_Binding | None", bool]]
_CONTAINED: _Plan = {}
_EXTENSIONS = frozenset({"extension", "modifierExtension"})


@dataclass
class Findings:
    """What a walk found: required-binding violations and extensible-binding warnings."""

    errors: list[str]
    warnings: list[str]


@cache
def _plans() -> dict[str, _Plan]:
    """The compiled tables, built once per process from the package data."""
    doc = json.loads(resources.files("healthnft.records").joinpath(DATA_FILE).read_bytes())
    bindings: dict[tuple[str, str, str], _Binding] = {}

    def binding(kind: str, strength: str, url: str) -> _Binding:
        key = (kind, strength, url)
        if key not in bindings:
            systems = doc["valuesets"][url]
            bindings[key] = _Binding(
                kind=kind,
                required=strength == "required",
                url=url,
                codes=frozenset(c for codes in systems.values() for c in codes or ()),
                pairs=frozenset((s, c) for s, codes in systems.items() for c in codes or ()),
                open_systems=frozenset(s for s, codes in systems.items() if codes is None),
            )
        return bindings[key]

    types = doc["types"]
    plans: dict[str, _Plan] = {name: {} for name in types}
    for name, elements in types.items():
        plan = plans[name]
        for elem, (etype, kind, strength, url) in elements.items():
            child = _CONTAINED if etype == "Resource" else plans.get(etype)
            # Most datatypes (Coding, Period, Reference...) lead to a binding only through
            # an extension's value: walk into one only when it has extensions.
            ext_only = etype in types and set(types[etype]) <= _EXTENSIONS
            plan[elem] = (child, binding(kind, strength, url) if strength else None, ext_only)
    return plans


def check(resource: dict[str, Any]) -> Findings:
    """Check every bound element of ``resource`` (of any R4 type; unknown types pass)."""
    found = Findings([], [])
    plan = _plans().get(resource.get("resourceType"))  # type: ignore[arg-type]
    if plan is not None:
        _walk(resource, plan, [], found)
    return found


def _walk(obj: dict[str, Any], plan: _Plan, path: list[Any], found: Findings) -> None:
    """Visit the keys of ``obj`` the plan knows; ``path`` holds (key, index or None) steps.

    The common case, an element with no binding of its own, is inlined: this runs over
    every element of every record minted.
    """
    for key, value in obj.items():
        step = plan.get(key)
        if step is None:
            continue
        child, bound, ext_only = step
        if type(value) is list:
            for i, item in enumerate(value):
                if bound is not None:
                    _judge(item, bound, path, key, i, found)
                if (child is not None and type(item) is dict
                        and (not ext_only or not _EXTENSIONS.isdisjoint(item))):
                    _descend(item, child, path, key, i, found)
        else:
            if bound is not None:
                _judge(value, bound, path, key, None, found)
            if (child is not None and type(value) is dict
                    and (not ext_only or not _EXTENSIONS.isdisjoint(value))):
                _descend(value, child, path, key, None, found)


def _descend(value: dict[str, Any], child: Any, path: list[Any], key: str, index: int | None,
             found: Findings) -> None:  # fmt: skip
    if child is _CONTAINED:  # a contained resource: its own type's table
        child = _plans().get(value.get("resourceType"))  # type: ignore[arg-type]
        if child is None:
            return
    path.append((key, index))
    _walk(value, child, path, found)
    path.pop()


def _judge(value: Any, bound: _Binding, path: list[Any], key: str, index: int | None,
           found: Findings) -> None:  # fmt: skip
    if bound.accepts(value) is not False:
        return
    where = ".".join(k if i is None else f"{k}[{i}]" for k, i in [*path, (key, index)])
    if bound.required:
        found.errors.append(f"{where} is not a code of its required value set ({bound.url})")
    else:
        found.warnings.append(f"{where} has no code from its extensible value set "
                              f"({bound.url})")  # fmt: skip
