"""RFC 8785 (JCS) canonical JSON, fast, with the rfc8785 library as the reference —
and one deliberate deviation: a :class:`~decimal.Decimal` is written as its exact text.

Why not just ``rfc8785.dumps``: it is pure Python (~90 µs per FHIR resource,
a fifth of the minting pipeline). For the inputs FHIR gives us — ASCII member
names, strings, integers within ±2^53, floats — JCS output equals orjson's
with sorted keys, *except* for numbers, whose ECMAScript formatting orjson does
not do. So this module lets orjson sort and escape, and has rfc8785 format every
float (passed to orjson as a pre-serialized fragment). Anything outside that
domain (a non-ASCII key, whose UTF-16 sort order may differ; a big integer;
a lone surrogate) falls back to the reference whole. The equivalence is a
tested property (``tests/records/test_jcs.py``), not an assumption. ~5x faster.

The deviation. JCS writes every number as the shortest text of an IEEE 754 double,
which is exactly what must not happen to a FHIR decimal: ``5.60`` would be committed
as ``5.6`` and the measured precision lost before anyone signs. Records are read with
decimals as ``Decimal`` (:mod:`healthnft.records.exact_json`), and a Decimal is written
as :func:`~healthnft.records.exact_json.number_text` gives it: its own digits and
exponent, one spelling for each (``5.60``, ``0.010``, ``1.0e+2``). That keeps the
canonical form deterministic — the same decimal, however it was spelled in the input
(``1.0e2``, ``10E1``), canonicalizes to the same bytes, and parsing canonical bytes and
canonicalizing again gives them back — while two decimals of different precision stay
different, as FHIR says they are. Everything else (key order, string escapes,
integers, floats) is RFC 8785, so input without decimals canonicalizes exactly as the
reference does. Records minted before this change were canonicalized with floats;
their stored bytes are what their commitments open to, and nothing re-canonicalizes
them (see :mod:`healthnft.records.commitment`).
"""

from __future__ import annotations

from decimal import Decimal
from io import BytesIO
from typing import Any

import orjson
import rfc8785

from healthnft.records.exact_json import number_text

_MAX_SAFE_INT = 2**53 - 1


class _OutsideFastPath(Exception):
    """The value needs the reference implementation."""


def _prepare(value: Any) -> Any:
    if isinstance(value, str | bool) or value is None:
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise _OutsideFastPath
            out[key] = _prepare(item)
        return out
    if isinstance(value, list):
        return [_prepare(item) for item in value]
    if isinstance(value, Decimal):
        return orjson.Fragment(_decimal(value))
    if isinstance(value, float):
        return orjson.Fragment(rfc8785.dumps(value))
    if isinstance(value, int):
        if abs(value) > _MAX_SAFE_INT:
            raise _OutsideFastPath
        return value
    raise _OutsideFastPath


def _decimal(value: Decimal) -> str:
    try:
        return number_text(value)
    except ValueError:  # NaN or infinite: refused as the reference refuses a NaN float
        raise rfc8785.FloatDomainError(float(value)) from None


def dumps(value: Any) -> bytes:
    """The canonical serialization of ``value`` (raises what ``rfc8785.dumps`` raises)."""
    try:
        return orjson.dumps(_prepare(value), option=orjson.OPT_SORT_KEYS)
    except (_OutsideFastPath, orjson.JSONEncodeError, TypeError):
        sink = BytesIO()
        _slow_dump(value, sink)
        return sink.getvalue()


def _slow_dump(value: Any, sink: BytesIO) -> None:
    """The reference, with Decimals written exactly: containers walked here (sorted by
    UTF-16 code units, as RFC 8785 §3.2.3 says), every scalar and key by rfc8785."""
    if isinstance(value, Decimal):
        sink.write(_decimal(value).encode())
    elif isinstance(value, dict):
        if any(not isinstance(k, str) for k in value):
            raise rfc8785.CanonicalizationError("object keys must be strings")
        sink.write(b"{")
        for n, key in enumerate(sorted(value, key=lambda k: k.encode("utf-16be"))):
            sink.write(b"," if n else b"")
            sink.write(rfc8785.dumps(key) + b":")
            _slow_dump(value[key], sink)
        sink.write(b"}")
    elif isinstance(value, list | tuple):
        sink.write(b"[")
        for n, item in enumerate(value):
            sink.write(b"," if n else b"")
            _slow_dump(item, sink)
        sink.write(b"]")
    else:
        sink.write(rfc8785.dumps(value))
