"""JSON whose decimals stay exactly as written: ``5.60`` is read and written as ``5.60``.

FHIR gives a decimal's precision meaning (``5.60`` was measured to two places, ``5.6``
to one), so a record must not pass through a binary float: orjson and ``json`` read
``5.60`` as ``5.6``, ``0.010`` as ``0.01`` and ``1234567890.12345678`` as
``1234567890.1234567``. Here a JSON number with a fraction or an exponent is read as a
:class:`decimal.Decimal`, which keeps its digits and its exponent, and integers stay
``int`` (exact already; beyond ±2^53 a Decimal too, see :func:`_integer`). Writing gives
each Decimal back as its exact text (:func:`number_text`).

Reading uses the standard library's C scanner with ``parse_float=Decimal`` (orjson has
no decimal mode; ``json`` with the hook costs ~2x orjson on Synthea bundles, a few
microseconds a resource). It is kept as strict as orjson was: ``NaN`` and ``Infinity``
are refused (they are not JSON). Writing uses orjson with Decimals handed over as
pre-serialized fragments.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson


class NotJSON(ValueError):
    """The bytes are not JSON; the message says where, never what."""


def _no_constant(name: str) -> Any:
    raise NotJSON("NaN and Infinity are not JSON numbers")


_MAX_SAFE_INT = 2**53 - 1


def _integer(text: str) -> int | Decimal:
    """An int, exact; past ±2^53 (where JSON tools lose digits) a Decimal, so that it is
    kept and written exactly rather than refused by JCS's integer domain."""
    value = int(text)
    return value if len(text) < 16 or abs(value) <= _MAX_SAFE_INT else Decimal(text)


_DECODER = json.JSONDecoder(parse_float=Decimal, parse_int=_integer,
                            parse_constant=_no_constant)  # fmt: skip


def loads(raw: bytes | str) -> Any:
    """Parse JSON (UTF-8 bytes or text), numbers with a fraction or exponent as Decimal."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
    except UnicodeDecodeError as exc:
        raise NotJSON(f"not UTF-8 at byte {exc.start}") from None
    try:
        return _DECODER.decode(text)
    except NotJSON:
        raise
    except json.JSONDecodeError as exc:
        # exc.msg is the parser's reason ("Expecting value"); it quotes no input.
        raise NotJSON(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError:  # Python refuses integers of more than 4,300 digits
        raise NotJSON("an integer too long to read") from None
    except RecursionError:
        raise NotJSON("nested too deeply") from None


#: Leading zeros written out at most (``0.000…01``); past this, scientific notation, so
#: a 12-byte input such as ``1e-999999999`` cannot become a gigabyte of zeros.
MAX_LEADING_ZEROS = 100


def number_text(value: Decimal) -> str:
    """The exact text of a decimal: digits and exponent as they are, one spelling each.

    Plain notation when the exponent is zero or negative (``5.60``, ``0.010``,
    ``0.0000001``), so a number written without an exponent comes back character for
    character (up to :data:`MAX_LEADING_ZEROS` zeros after the point); scientific
    notation with a lower-case ``e`` otherwise (``1.0e2`` is ``1.0e+2``: two significant
    digits, not ``100``). Negative zero is written without its sign, as JCS writes -0.
    Refuses NaN and infinities (not JSON).
    """
    if not value.is_finite():
        raise ValueError("NaN and Infinity are not JSON numbers")
    text = str(value)  # plain already unless the exponent is positive or the number tiny
    if "E" in text:
        plain = value.as_tuple().exponent <= 0 and value.adjusted() >= -MAX_LEADING_ZEROS  # type: ignore[operator]
        text = format(value, "f") if plain else text.lower()
    if text[0] == "-" and value.is_zero():
        text = text[1:]
    return text


def default(value: Any) -> Any:
    """The ``orjson.dumps`` ``default=`` hook that writes a Decimal as its exact text."""
    if isinstance(value, Decimal):
        return orjson.Fragment(number_text(value))
    raise TypeError(f"{type(value).__name__} is not JSON data")


def dumps(value: Any, *, indent: bool = False) -> bytes:
    """JSON bytes with each Decimal written as its exact text (for files and screens)."""
    return orjson.dumps(value, default=default,
                        option=orjson.OPT_INDENT_2 if indent else 0)  # fmt: skip
