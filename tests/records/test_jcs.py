"""The fast JCS path produces exactly what the rfc8785 reference produces."""

from __future__ import annotations

import contextlib
from pathlib import Path

import orjson
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from healthnft.records import jcs

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
