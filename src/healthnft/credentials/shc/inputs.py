"""Reading SMART Health Cards from files: ``.smart-health-card``, compact JWS, ``shc:/``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import orjson

from healthnft.credentials.shc.codec import COMPACT_JWS
from healthnft.credentials.shc.qr import QR_CONTENT, QR_PREFIX, decode_qr
from healthnft.errors import InputNotFound, InvalidRecord

__all__ = ["MAX_INPUT_BYTES", "read_card_inputs"]

#: Largest input file read by :func:`read_card_inputs`.
MAX_INPUT_BYTES = 16 * 1024 * 1024


def read_card_inputs(paths: Sequence[Path]) -> list[str]:
    """Read SMART Health Cards from files into compact JWS strings, in input order.

    Each file is one of: a ``.smart-health-card`` JSON file (possibly several cards), a
    file holding a compact JWS, or a file holding ``shc:/`` QR content (one code per
    line). Chunked QR codes from all files are pooled and reassembled into one card,
    placed where its first chunk appeared, so the chunks of a card may be given as
    separate files in any order.
    """
    if not paths:
        raise InputNotFound("no card files given")
    cards: list[str | None] = []
    chunks: list[str] = []
    chunk_slot: int | None = None
    chunk_files: list[str] = []
    for given in paths:
        path = Path(given)
        text = _read_text(path)
        kind = text.lstrip()[:1]
        if kind == "{":
            cards.extend(_cards_from_file_json(text, path))
        elif text.lstrip()[:5].lower() == QR_PREFIX:
            for n, line in enumerate(text.split(), 1):
                m = QR_CONTENT.fullmatch(line)
                if m and m.group(1) is not None:
                    if chunk_slot is None:
                        chunk_slot = len(cards)
                        cards.append(None)
                    chunks.append(line)
                    chunk_files.append(path.name)
                else:
                    cards.append(decode_qr([line], f"{path} line {n}"))
        else:
            compact = text.strip()
            if not COMPACT_JWS.fullmatch(compact):
                raise InvalidRecord(
                    f"{path}: not a SMART Health Card (expected a .smart-health-card file, "
                    "a compact JWS or shc:/ QR content)"
                )
            cards.append(compact)
    if chunk_slot is not None:
        cards[chunk_slot] = decode_qr(chunks, "QR chunks from " + ", ".join(chunk_files))
    return [c for c in cards if c is not None]


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_INPUT_BYTES + 1)
    except FileNotFoundError:
        raise InputNotFound(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputNotFound(f"{path}: is a folder, expected a card file") from None
    except OSError as exc:
        raise InputNotFound(f"{path}: cannot be read ({exc.strerror})") from None
    if len(raw) > MAX_INPUT_BYTES:
        raise InvalidRecord(f"{path}: too large for a SMART Health Card file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidRecord(f"{path}: not UTF-8 text") from None


def _cards_from_file_json(text: str, path: Path) -> list[str]:
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InvalidRecord(f"{path}: not valid JSON") from None
    creds = obj.get("verifiableCredential") if isinstance(obj, dict) else None
    if not isinstance(creds, list) or not creds:
        raise InvalidRecord(f"{path}: no verifiableCredential array of cards")
    out = []
    for i, cred in enumerate(creds):
        if not isinstance(cred, str) or not COMPACT_JWS.fullmatch(cred.strip()):
            raise InvalidRecord(f"{path}: verifiableCredential[{i}] is not a compact JWS")
        out.append(cred.strip())
    return out
