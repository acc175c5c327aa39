"""SMART Health Card QR content: ``shc:/`` numeric encoding, chunk reading, the PNG.

Each JWS character becomes two digits ``ord(c) - 45``. A card is written as one QR code
of at most version 22 (:data:`QR_SINGLE_MAX_CHARS` characters of JWS): the spec
deprecates splitting a longer JWS into chunks ``shc:/<i>/<n>/<digits>``, so a card too
large for one code is refused (export its ``.smart-health-card`` file instead, or put
fewer resources on it), while chunked codes that older issuers printed are still read.
Pictures are drawn with segno.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import segno

from healthnft.credentials.shc.codec import COMPACT_JWS
from healthnft.errors import InvalidInput, InvalidRecord

__all__ = [
    "QR_PREFIX",
    "QR_SINGLE_MAX_CHARS",
    "decode_qr",
    "encode_qr",
    "qr_code",
]

#: QR limit from the spec: one QR code (version 22, error level L) holds a JWS of up to
#: 1195 characters; a card is never written as several codes.
QR_SINGLE_MAX_CHARS = 1195
QR_PREFIX = "shc:/"
#: One QR content: ``shc:/<digits>`` or (read only) a chunk ``shc:/<i>/<n>/<digits>``.
QR_CONTENT = re.compile(r"(?i:shc:/)(?:([0-9]{1,4})/([0-9]{1,4})/)?([0-9]*)")
#: Largest two-digit value in the numeric QR encoding: ``ord("z") - 45``.
_QR_MAX_PAIR = ord("z") - 45


def encode_qr(jws_compact: str) -> str:
    """The ``shc:/`` content of the one QR code (version 22 at most) holding a JWS.

    :class:`InvalidInput` when the JWS is longer than one such code holds
    (:data:`QR_SINGLE_MAX_CHARS`): chunked codes are deprecated and never written.
    """
    if not COMPACT_JWS.fullmatch(jws_compact):
        raise InvalidRecord("not a compact JWS")
    if len(jws_compact) > QR_SINGLE_MAX_CHARS:
        raise InvalidInput(
            f"the card is too large for one QR code ({len(jws_compact)} characters; one "
            f"version 22 code holds {QR_SINGLE_MAX_CHARS})"
        )
    return QR_PREFIX + _to_digits(jws_compact)


def _to_digits(text: str) -> str:
    return "".join(f"{ord(c) - 45:02d}" for c in text)


def decode_qr(contents: Sequence[str], where: str = "QR") -> str:
    """Reassemble one JWS from ``shc:/`` QR contents: a single code, or all its chunks
    (the deprecated form, still read: cards printed by other issuers use it).

    Chunks may come in any order (the spec asks scanners to allow that); every index
    from 1 to the total must be present exactly once and all must agree on the total.
    """
    if not contents:
        raise InvalidRecord(f"{where}: no shc:/ QR content")
    parsed = [_parse_qr(text, f"{where} #{n}") for n, text in enumerate(contents, 1)]
    if len(parsed) == 1 and parsed[0][0] is None:
        return _digits_to_jws(parsed[0][2], where)
    if any(index is None for index, _, _ in parsed):
        raise InvalidRecord(f"{where}: a single-code card cannot be combined with other codes")
    totals = {total for _, total, _ in parsed}
    if len(totals) != 1:
        raise InvalidRecord(
            f"{where}: chunks disagree on the total ({', '.join(map(str, sorted(totals)))})"
        )
    total = totals.pop()
    by_index: dict[int, str] = {}
    for index, _, digits in parsed:
        assert index is not None and total is not None
        if not 1 <= index <= total:
            raise InvalidRecord(f"{where}: chunk {index} of {total} is out of range")
        if index in by_index:
            raise InvalidRecord(f"{where}: chunk {index} of {total} appears twice")
        by_index[index] = digits
    missing = [i for i in range(1, total + 1) if i not in by_index]
    if missing:
        raise InvalidRecord(f"{where}: missing chunk {', '.join(map(str, missing))} of {total}")
    return _digits_to_jws("".join(by_index[i] for i in range(1, total + 1)), where)


def _parse_qr(text: str, where: str) -> tuple[int | None, int | None, str]:
    m = QR_CONTENT.fullmatch(text.strip())
    if not m:
        if text.strip()[:5].lower() == QR_PREFIX:
            raise InvalidRecord(f"{where}: shc:/ content has characters other than digits")
        raise InvalidRecord(f"{where}: not shc:/ QR content")
    if m.group(1) is None:
        return None, None, m.group(3)
    return int(m.group(1)), int(m.group(2)), m.group(3)


def _digits_to_jws(digits: str, where: str) -> str:
    if not digits:
        raise InvalidRecord(f"{where}: shc:/ content has no digits")
    if len(digits) % 2:
        raise InvalidRecord(f"{where}: odd number of digits in shc:/ content")
    chars = []
    for pos in range(0, len(digits), 2):
        value = int(digits[pos : pos + 2])
        if value > _QR_MAX_PAIR:
            raise InvalidRecord(f"{where}: digit pair at position {pos} is out of range")
        chars.append(chr(value + 45))
    text = "".join(chars)
    if not COMPACT_JWS.fullmatch(text):
        raise InvalidRecord(f"{where}: shc:/ content does not decode to a compact JWS")
    return text


def qr_code(content: str) -> segno.QRCode:
    """The QR code of one ``shc:/`` content: prefix in byte mode, digits in numeric mode.

    The two-segment form is what the spec prescribes; numeric mode packs the digits
    far tighter than a single byte-mode segment (a smaller, easier-to-scan code).
    """
    prefix_len = content.rfind("/") + 1
    return segno.make_qr(
        [
            (content[:prefix_len], segno.consts.MODE_BYTE),
            (content[prefix_len:], segno.consts.MODE_NUMERIC),
        ],
        error="L",
    )
