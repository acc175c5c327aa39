"""Reading SMART Health Cards from files: ``.smart-health-card``, compact JWS, ``shc:/``.

A card's file is often named after its patient, so neither messages nor verdicts name
files: they say where a card came from by position ("file 2 of 3", "file 1 of 1, card
2 of 4", "QR chunks in files 1, 3 of 3").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from healthnft.credentials.shc.codec import COMPACT_JWS
from healthnft.credentials.shc.qr import QR_CONTENT, QR_PREFIX, decode_qr
from healthnft.errors import InputNotFound, InvalidRecord

__all__ = ["MAX_INPUT_BYTES", "CardInput", "read_card_inputs", "read_cards"]

#: Largest input file read by :func:`read_cards`.
MAX_INPUT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class CardInput:
    """One card read from the files given: where it came from (by position), its JWS."""

    source: str
    jws: str


def read_card_inputs(paths: Sequence[Path]) -> list[str]:
    """The compact JWS of every card in ``paths``, in input order (see :func:`read_cards`)."""
    return [card.jws for card in read_cards(paths)]


def read_cards(paths: Sequence[Path]) -> list[CardInput]:
    """Read SMART Health Cards from files, in input order, each with its position.

    Each file is one of: a ``.smart-health-card`` JSON file (possibly several cards), a
    file holding a compact JWS, or a file holding ``shc:/`` QR content (one code per
    line). Chunked QR codes from all files are pooled and reassembled into one card,
    placed where its first chunk appeared, so the chunks of a card may be given as
    separate files in any order.
    """
    if not paths:
        raise InputNotFound("no card files given")
    total = len(paths)
    cards: list[CardInput | None] = []
    chunks: list[str] = []
    chunk_slot: int | None = None
    chunk_files: list[int] = []
    for number, given in enumerate(paths, 1):
        where = f"file {number} of {total}"
        text = _read_text(Path(given), where)
        kind = text.lstrip()[:1]
        if kind == "{":
            found = _cards_from_file_json(text, where)
            cards.extend(
                CardInput(where if len(found) == 1 else f"{where}, card {k} of {len(found)}", jws)
                for k, jws in enumerate(found, 1)
            )
        elif text.lstrip()[:5].lower() == QR_PREFIX:
            lines = text.split()
            for n, line in enumerate(lines, 1):
                m = QR_CONTENT.fullmatch(line)
                if m and m.group(1) is not None:
                    if chunk_slot is None:
                        chunk_slot = len(cards)
                        cards.append(None)
                    chunks.append(line)
                    if number not in chunk_files:
                        chunk_files.append(number)
                else:
                    line_where = where if len(lines) == 1 else f"{where}, line {n}"
                    cards.append(CardInput(line_where, decode_qr([line], line_where)))
        else:
            compact = text.strip()
            if not COMPACT_JWS.fullmatch(compact):
                raise InvalidRecord(
                    f"{where}: not a SMART Health Card (expected a .smart-health-card file, "
                    "a compact JWS or shc:/ QR content)"
                )
            cards.append(CardInput(where, compact))
    if chunk_slot is not None:
        files = "file" if len(chunk_files) == 1 else "files"
        where = f"QR chunks in {files} {', '.join(map(str, sorted(chunk_files)))} of {total}"
        cards[chunk_slot] = CardInput(where, decode_qr(chunks, where))
    return [c for c in cards if c is not None]


def _read_text(path: Path, where: str) -> str:
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_INPUT_BYTES + 1)
    except FileNotFoundError:
        raise InputNotFound(f"{where}: no such file") from None
    except IsADirectoryError:
        raise InputNotFound(f"{where}: is a folder, expected a card file") from None
    except OSError as exc:
        raise InputNotFound(f"{where}: cannot be read ({exc.strerror})") from None
    if len(raw) > MAX_INPUT_BYTES:
        raise InvalidRecord(f"{where}: too large for a SMART Health Card file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidRecord(f"{where}: not UTF-8 text") from None


def _cards_from_file_json(text: str, where: str) -> list[str]:
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InvalidRecord(f"{where}: not valid JSON") from None
    creds = obj.get("verifiableCredential") if isinstance(obj, dict) else None
    if not isinstance(creds, list) or not creds:
        raise InvalidRecord(f"{where}: no verifiableCredential array of cards")
    out = []
    for i, cred in enumerate(creds):
        if not isinstance(cred, str) or not COMPACT_JWS.fullmatch(cred.strip()):
            raise InvalidRecord(f"{where}: verifiableCredential[{i}] is not a compact JWS")
        out.append(cred.strip())
    return out
