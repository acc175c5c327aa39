"""The fast JCS path produces exactly what the rfc8785 reference produces — for
decimals, their exact text instead of a double's (see healthnft.records.jcs)."""

from __future__ import annotations

import contextlib
import uuid
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from healthnft.records import exact_json, jcs
from healthnft.records.exact_json import number_text

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=1500, deadline=None)
@given(_json)
def test_equals_the_reference_on_any_json(value: object) -> None:
    try:
        expected = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, ValueError) as exc:
        try:
            jcs.dumps(value)
        except type(exc):
            return
        raise AssertionError("the reference refused a value the fast path accepted") from None
    assert jcs.dumps(value) == expected


def test_tricky_values() -> None:
    for value in [
        {"b": 1, "a": [1.0, -0.0, 1e21, 1e-7, 5e-324, 0.1, 123456789012.5]},
        {"\u00e9": 1, "z": 2, "\U0001f600": 3, "\u20ac": 4},  # non-ASCII keys: UTF-16 order
        {"s": "\x00\x08\x09\x0a\x0c\x0d\x1f\x7f\"\\/\u2028\u2029\U0001f600"},
        {"safe": 2**53 - 1, "neg": -(2**53) + 1},
    ]:
        assert jcs.dumps(value) == rfc8785.dumps(value)
    # Outside the I-JSON integer range both refuse, the same way.
    for bad in ({"big": 2**53}, [-(2**60)]):
        with contextlib.suppress(rfc8785.IntegerDomainError):
            rfc8785.dumps(bad)
        try:
            jcs.dumps(bad)
        except rfc8785.IntegerDomainError:
            continue
        raise AssertionError("the fast path accepted an out-of-range integer")


def test_every_resource_in_the_data(fhir_dir: Path) -> None:
    for path in sorted(fhir_dir.glob("*.json")):
        doc = orjson.loads(path.read_bytes())
        for entry in doc.get("entry", [doc]):
            resource = entry.get("resource", entry)
            assert jcs.dumps(resource) == rfc8785.dumps(resource)


# -- decimals: written exactly (the one deviation from RFC 8785) -----------------------

_decimals = st.decimals(allow_nan=False, allow_infinity=False)
_json_with_decimals = st.recursive(
    _scalars | _decimals,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


def _marked(value: object, marks: dict[str, str]) -> object:
    """``value`` with each Decimal replaced by a unique string; ``marks`` maps the
    string's JCS form to the decimal's exact text."""
    if isinstance(value, Decimal):
        mark = f"decimal-{uuid.uuid4()}"
        marks[f'"{mark}"'] = number_text(value)
        return mark
    if isinstance(value, dict):
        return {k: _marked(v, marks) for k, v in value.items()}
    if isinstance(value, list):
        return [_marked(v, marks) for v in value]
    return value


@settings(max_examples=1000, deadline=None)
@given(_json_with_decimals)
def test_decimals_are_written_exactly_and_all_else_as_the_reference(value: object) -> None:
    """Key order, escapes, integers and floats as rfc8785; each Decimal as its text.
    And the form is canonical: parse it back (decimals exact) and it serializes alike."""
    marks: dict[str, str] = {}
    try:
        expected = rfc8785.dumps(_marked(value, marks))
    except (rfc8785.CanonicalizationError, ValueError):
        return  # refused for a reason that has nothing to do with decimals (tested above)
    for mark, text in marks.items():
        expected = expected.replace(mark.encode(), text.encode())
    got = jcs.dumps(value)
    assert got == expected
    if not _has_float(value):  # what records hold: JCS writes 2.0**53 as an integer
        assert jcs.dumps(exact_json.loads(got)) == got


def _has_float(value: object) -> bool:
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return isinstance(value, float)


def test_decimal_text_keeps_digits_and_precision() -> None:
    cases = {"5.60": "5.60", "0.010": "0.010", "1234567890.12345678": "1234567890.12345678",
             "1.0e2": "1.0e+2", "10E1": "1.0e+2", "1e-7": "0.0000001", "-0.0": "0.0",
             "-1.50": "-1.50", "1E+400": "1e+400", "0E-3": "0.000",
             "12345678901234567890": "12345678901234567890"}  # fmt: skip
    for sent, text in cases.items():
        assert jcs.dumps([Decimal(sent)]) == f"[{text}]".encode(), sent
        assert exact_json.loads(text.encode()) == Decimal(sent)
    with pytest.raises(rfc8785.FloatDomainError):
        jcs.dumps({"x": Decimal("NaN")})
