"""Give a record back as a file a person can open: a note as text, a PDF as the PDF.

``healthnft wallet show TOKEN --out FILE`` chooses by FILE's suffix: ``.txt``
writes a note's text, ``.pdf`` the original PDF that was minted, ``.png`` an
attached picture, ``.json`` the FHIR resource itself. Only data inside the
decrypted record is written (an attachment's URL is never fetched), and the
file is created with owner-only permissions, because it is health data.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Any

import orjson

from healthnft.errors import HealthNFTError

_CHOICES = ".txt (a note's text), .pdf (the original PDF), .png (a picture) or .json"


def _attachments(resource: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[Any] = []
    content = resource.get("content")
    if isinstance(content, list):
        found += [c.get("attachment") for c in content if isinstance(c, dict)]
    elif isinstance(content, dict):
        found.append(content)
    found += resource.get("presentedForm") or []
    return [a for a in found if isinstance(a, dict) and isinstance(a.get("data"), str)]


def _data(att: dict[str, Any]) -> bytes:
    try:
        return base64.b64decode(att["data"], validate=True)
    except (binascii.Error, ValueError):
        raise HealthNFTError("the record's attachment is not valid base64") from None


def _media(att: dict[str, Any]) -> str:
    return str(att.get("contentType") or "").split(";")[0].strip().lower()


def note_text(resource: dict[str, Any]) -> str | None:
    """The note's readable text: its extracted-text attachment, else its text attachment."""
    texts = [a for a in _attachments(resource) if _media(a).startswith("text/")]
    if not texts:
        return None
    extracted = [a for a in texts if a.get("title") == "extracted text"]
    return _data((extracted or texts)[0]).decode("utf-8", errors="replace")


def record_file(resource: dict[str, Any], suffix: str) -> bytes:
    """The bytes of the file ``suffix`` asks for, or a clear error saying what exists."""
    suffix = suffix.lower()
    if suffix == ".json":
        return orjson.dumps(resource, option=orjson.OPT_INDENT_2)
    if suffix == ".txt":
        text = note_text(resource)
        if text is None:
            raise HealthNFTError("this record holds no note text; try .json")
        return text.encode()
    wanted = {".pdf": ("application/pdf",), ".png": ("image/png",)}.get(suffix)
    if wanted is None:
        raise HealthNFTError(f"--out must end in {_CHOICES}")
    for att in _attachments(resource):
        if _media(att) in wanted:
            return _data(att)
    raise HealthNFTError(f"this record holds no {suffix[1:].upper()}; try .txt or .json")


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only (atomically)."""
    tmp = path.with_name(path.name + ".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    tmp.replace(path)
