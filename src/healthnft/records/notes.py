"""Read clinical notes — plain text, PDF, or FHIR resources with attached notes — as records.

A note becomes a :class:`Note`, a :class:`~healthnft.records.fhir.Record` whose
``structured`` is False, so minting, the vault and the wallet take it unchanged.

What the commitment covers. A ``.txt`` or ``.pdf`` file is wrapped in a FHIR R4
``DocumentReference`` (canonical RFC 8785 bytes via :mod:`healthnft.records.jcs`)
rather than in a format of our own, because everything downstream already reads
FHIR: the wallet shows a DocumentReference's text attachment and offers its PDF
back, and the de-identifier (:mod:`healthnft.records.deid`) handles it like any
other resource. The wrapper holds everything the brief asks of a note's canonical
form, in FHIR's own places:

- ``content[0].attachment``: the original bytes (base64 ``data``), their media
  type, ``size``, FHIR's SHA-1 ``hash`` and, in an extension, their SHA-256
  (:data:`SHA256_EXTENSION`), so the wallet can give back the very file minted;
- ``content[1].attachment`` (PDFs, and text that was not UTF-8): the extracted
  text as ``text/plain; charset=utf-8``, titled ``extracted text``;
- ``type`` LOINC 34109-9 "Note", US Core category ``clinical-note``, and
  ``subject`` / ``context.period.start`` when the caller knows them.

The wrapper has no ``id`` and no creation time: the same file read twice gives
the same canonical bytes, so the issuer's de-duplication (an HMAC of the
canonical bytes) recognizes a note minted before.

Refused, each with one clear line naming the input by its label, never quoting
it: a missing or empty file, a file over the size cap (checked before it is read
whole), a file whose name claims ``.pdf`` but whose bytes are not a PDF, an
encrypted PDF, a PDF with no extractable text (a scan: run OCR first, or pass
``require_text=False`` to keep it as a document without text), text that is
binary or in no encoding we can decode safely, and FHIR resources with no inline
note attachment (a URL is never fetched).

Text encodings: UTF-8 (with or without a byte-order mark) and UTF-16 with a BOM
are read as such; anything else must be named by the caller (``encoding=``) or
decode as Windows-1252 — the encoding of most legacy Western clinical systems,
and a strict superset of Latin-1's printable range. That fallback is not silent:
the note's :attr:`Note.encoding` says ``cp1252``, the original bytes are kept
unchanged and the UTF-8 text is stored beside them.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from healthnft.errors import InputNotFound, InvalidRecord
from healthnft.records import jcs
from healthnft.records.fhir import (
    Record,
    SourceResource,
    characterize,
    parse_resources,
    prepare,
    subject_reference,
)

#: Default cap on a note file (and on one decoded attachment): 64 MiB.
MAX_NOTE_BYTES = 64 * 2**20

#: Extension (on an Attachment) holding the SHA-256 of its data, lowercase hex.
SHA256_EXTENSION = "https://healthnft.local/fhir/StructureDefinition/attachment-sha256"

#: Title of the derived attachment that holds a note's extracted text.
EXTRACTED_TEXT_TITLE = "extracted text"

#: The resource types whose attachments are read as notes.
NOTE_RESOURCE_TYPES = frozenset({"DocumentReference", "DiagnosticReport"})

_TEXT_SUFFIXES = frozenset({".txt", ".text"})
_PDF_SUFFIXES = frozenset({".pdf"})
_FHIR_SUFFIXES = frozenset({".json"})

_PDF_MAGIC = b"%PDF-"
#: PDF readers accept the header anywhere in the first 1,024 bytes (ISO 32000-1, 7.5.2 note).
_PDF_HEADER_WINDOW = 1024

_NOTE_TYPE = {
    "coding": [{"system": "http://loinc.org", "code": "34109-9", "display": "Note"}],
    "text": "Note",
}
_NOTE_CATEGORY = [
    {
        "coding": [
            {
                "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
                "code": "clinical-note",
                "display": "Clinical Note",
            }
        ]
    }
]

#: FHIR date / dateTime (the forms a caller may give as a note's date).
_FHIR_DATE = re.compile(
    r"\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01])"
    r"(T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d{1,9})?(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00)))?)?)?"
)

_SUBJECT_REF = re.compile(r"(urn:uuid:|Patient/)[A-Za-z0-9.-]{1,64}")

#: Control characters that do not occur in text (everything below 0x20 but tab, LF, FF, CR).
_BINARY_CONTROLS = frozenset(range(0x20)) - {0x09, 0x0A, 0x0C, 0x0D}


@dataclass(frozen=True)
class Note(Record):
    """A clinical note, ready to commit and encrypt like any record (``structured`` False).

    ``canonical`` is the FHIR resource's RFC 8785 bytes: the wrapper
    DocumentReference for a text or PDF file, the resource itself for FHIR input.
    ``text`` is the note's readable text (every note attachment, in order); it is
    health data, so it is left out of ``repr``.
    """

    kind: str  # "text", "pdf" or "fhir"
    media_type: str  # of the original document (the first note attachment for FHIR)
    page_count: int | None  # PDF pages (summed over attachments); None for plain text
    char_count: int
    encoding: str | None  # how text was decoded ("utf-8", "utf-16", "cp1252", ...)
    sha256: str | None  # of the original file's bytes (txt/pdf); None for FHIR input
    text: str = field(repr=False)

    @property
    def structured(self) -> bool:
        """Notes are unstructured: their meaning is in prose, not in coded fields."""
        return False


# -- files ----------------------------------------------------------------------------------


def read_note(
    path: Path,
    *,
    label: str | None = None,
    subject_ref: str | None = None,
    date: str | None = None,
    title: str | None = None,
    encoding: str | None = None,
    require_text: bool = True,
    max_bytes: int = MAX_NOTE_BYTES,
) -> Note:
    """Read one note file: ``.txt``/``.text``, ``.pdf``, or a FHIR ``.json`` holding one note.

    ``label`` names the file in errors (default: its name; pass a positional
    label for patient files, whose names often carry the patient's name).
    ``subject_ref`` (``urn:uuid:…`` or ``Patient/…``), ``date`` (FHIR date or
    dateTime of the care documented) and ``title`` go into the wrapper of a text or
    PDF file; a FHIR resource keeps its own.
    """
    name = label or path.name
    suffix = path.suffix.lower()
    if suffix in _FHIR_SUFFIXES:
        notes = read_fhir_notes(path, label=name, require_text=require_text, max_bytes=max_bytes)
        if len(notes) != 1:
            raise InvalidRecord(
                f"{name}: holds {len(notes)} notes, expected one (use read_fhir_notes)"
            )
        return notes[0]
    if suffix in _TEXT_SUFFIXES:
        media_type = "text/plain"
    elif suffix in _PDF_SUFFIXES:
        media_type = "application/pdf"
    else:
        raise InvalidRecord(f"{name}: unsupported note file type (expected .txt, .pdf or .json)")
    raw = _read_capped(path, name, max_bytes)
    return parse_note(
        raw,
        media_type,
        name,
        subject_ref=subject_ref,
        date=date,
        title=title,
        encoding=encoding,
        require_text=require_text,
    )


def read_fhir_notes(
    path: Path,
    *,
    label: str | None = None,
    require_text: bool = True,
    max_bytes: int = MAX_NOTE_BYTES,
) -> list[Note]:
    """Every DocumentReference / DiagnosticReport with an attached note in a FHIR JSON file.

    Other resources in a Bundle are skipped (they are structured records, read
    by :func:`healthnft.records.fhir.read_resources`); a file with no note at
    all is refused.
    """
    name = label or path.name
    raw = _read_capped(path, name, max_bytes)
    sources = [
        s
        for s in parse_resources(raw, name)
        if s.resource["resourceType"] in NOTE_RESOURCE_TYPES and _attachments(s.resource)
    ]
    if not sources:
        raise InvalidRecord(f"{name}: no DocumentReference or DiagnosticReport with an attachment")
    return [note_from_resource(s, require_text=require_text, max_bytes=max_bytes) for s in sources]


def _read_capped(path: Path, name: str, max_bytes: int) -> bytes:
    """Read a file whole only when it is within the cap (checked before, and while, reading)."""
    try:
        with path.open("rb") as fh:
            size = _file_size(fh)
            if size is not None and size > max_bytes:
                raise InvalidRecord(f"{name}: larger than the {_human(max_bytes)} limit for notes")
            raw = fh.read(max_bytes + 1)  # a file growing while read is caught here
    except FileNotFoundError:
        raise InputNotFound(f"{name}: no such file") from None
    except IsADirectoryError:
        raise InputNotFound(f"{name}: is a folder, expected a note file") from None
    except PermissionError:
        raise InputNotFound(f"{name}: cannot be read (permission denied)") from None
    except OSError as exc:
        raise InputNotFound(f"{name}: cannot be read ({exc.strerror})") from None
    if len(raw) > max_bytes:
        raise InvalidRecord(f"{name}: larger than the {_human(max_bytes)} limit for notes")
    return raw


def _file_size(fh: Any) -> int | None:
    import os

    try:
        return os.fstat(fh.fileno()).st_size
    except OSError:
        return None


def _human(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n}-byte"


# -- bytes ----------------------------------------------------------------------------------


def parse_note(
    raw: bytes,
    media_type: str,
    name: str,
    *,
    subject_ref: str | None = None,
    date: str | None = None,
    title: str | None = None,
    encoding: str | None = None,
    require_text: bool = True,
    max_bytes: int = MAX_NOTE_BYTES,
) -> Note:
    """Turn the bytes of a text or PDF note into a :class:`Note` (``name`` labels errors).

    ``media_type`` is what the caller claims (``text/plain`` or
    ``application/pdf``, parameters allowed); the bytes must agree with it.
    """
    base = media_type.split(";")[0].strip().lower()
    if not raw:
        raise InvalidRecord(f"{name}: empty file (0 bytes)")
    if len(raw) > max_bytes:
        raise InvalidRecord(f"{name}: larger than the {_human(max_bytes)} limit for notes")
    if date is not None and not _FHIR_DATE.fullmatch(date):
        raise InvalidRecord(f"{name}: date is not a FHIR date or dateTime")
    if subject_ref is not None and not _SUBJECT_REF.fullmatch(subject_ref):
        raise InvalidRecord(f"{name}: subject_ref is not a urn:uuid: or Patient/ reference")
    sha256 = hashlib.sha256(raw).hexdigest()
    attachments: list[dict[str, Any]]
    if base == "text/plain":
        if raw.lstrip()[:5] == _PDF_MAGIC:
            raise InvalidRecord(f"{name}: is a PDF, not plain text (name it .pdf)")
        charset = _charset(media_type) or encoding
        text, used = decode_text(raw, name, encoding=charset)
        if not text.strip():
            raise InvalidRecord(f"{name}: note has no text (only whitespace)")
        ctype = f"text/plain; charset={used}"
        attachments = [_attachment(raw, ctype, title=title)]
        if used != "utf-8":
            attachments.append(_attachment(text.encode(), "text/plain; charset=utf-8",
                                           title=EXTRACTED_TEXT_TITLE))  # fmt: skip
        kind, pages, effective = "text", None, date
    elif base == "application/pdf":
        text, pages, created = extract_pdf_text(raw, name, require_text=require_text)
        attachments = [_attachment(raw, "application/pdf", title=title)]
        if text:
            attachments.append(_attachment(text.encode(), "text/plain; charset=utf-8",
                                           title=EXTRACTED_TEXT_TITLE))  # fmt: skip
        kind, used, effective = "pdf", None, date or created
    else:
        raise InvalidRecord(f"{name}: unsupported note media type (expected text/plain or PDF)")
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "status": "current",
        "type": _NOTE_TYPE,
        "category": _NOTE_CATEGORY,
        "content": [{"attachment": a} for a in attachments],
    }
    if subject_ref:
        resource["subject"] = {"reference": subject_ref}
    if effective:
        resource["context"] = {"period": {"start": effective}}
    return Note(
        resource_type="DocumentReference",
        resource_id=None,
        category="note",
        effective_date=effective[:10] if effective else None,
        canonical=jcs.dumps(resource),
        location=name,
        subject_ref=_normalize_subject(subject_ref),
        kind=kind,
        media_type=base,
        page_count=pages,
        char_count=len(text),
        encoding=used,
        sha256=sha256,
        text=text,
    )


def _normalize_subject(ref: str | None) -> str | None:
    if ref and ref.startswith("Patient/"):
        return "urn:uuid:" + ref.removeprefix("Patient/")
    return ref


def _attachment(data: bytes, content_type: str, *, title: str | None) -> dict[str, Any]:
    att: dict[str, Any] = {
        "contentType": content_type,
        "data": base64.b64encode(data).decode("ascii"),
        "size": len(data),
        "hash": base64.b64encode(hashlib.sha1(data).digest()).decode("ascii"),
        "extension": [{"url": SHA256_EXTENSION, "valueString": hashlib.sha256(data).hexdigest()}],
    }
    if title:
        att["title"] = title
    return att


def _charset(media_type: str) -> str | None:
    m = re.search(r";\s*charset\s*=\s*\"?([A-Za-z0-9._:-]+)", media_type, re.IGNORECASE)
    return m.group(1) if m else None


def decode_text(raw: bytes, name: str, *, encoding: str | None = None) -> tuple[str, str]:
    """Decode note bytes; return (text, encoding used). See the module docstring for the rules.

    Refuses bytes that look binary (NUL or other control characters text never
    holds), whatever they would decode to.
    """
    if raw.startswith(codecs.BOM_UTF8):
        text, used = _strict(raw[len(codecs.BOM_UTF8) :], "utf-8", name), "utf-8"
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text, used = _strict(raw, "utf-16", name), "utf-16"
    elif encoding is not None:
        try:
            used = codecs.lookup(encoding).name
        except LookupError:
            raise InvalidRecord(f"{name}: unknown text encoding") from None
        text = _strict(raw, used, name)
    else:
        try:
            text, used = raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            try:
                text, used = raw.decode("cp1252"), "cp1252"
            except UnicodeDecodeError:
                raise InvalidRecord(
                    f"{name}: text is neither UTF-8 nor Windows-1252: give its encoding"
                ) from None
    if any(ord(c) in _BINARY_CONTROLS for c in text):
        raise InvalidRecord(f"{name}: binary data, not text")
    return text, used


def _strict(raw: bytes, encoding: str, name: str) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError:
        raise InvalidRecord(f"{name}: text is not valid {encoding}") from None


# -- PDF ------------------------------------------------------------------------------------


def extract_pdf_text(
    raw: bytes, name: str, *, require_text: bool = True
) -> tuple[str, int, str | None]:
    """Return (text, page count, creation date ``YYYY-MM-DD`` or None) of a PDF.

    Refuses what is not a PDF, an encrypted PDF (even one that opens with an empty
    password: its restrictions say the author did not want it copied), a PDF
    pypdf cannot read, and — unless ``require_text`` is False — one with no text.
    """
    if _PDF_MAGIC not in raw[:_PDF_HEADER_WINDOW]:
        raise InvalidRecord(f"{name}: not a PDF (no %PDF- header)")
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    pypdf_log = logging.getLogger("pypdf")
    level = pypdf_log.level
    # pypdf logs a warning for every xref it repairs: not the user's business.
    pypdf_log.setLevel(logging.ERROR)
    try:
        try:
            reader = PdfReader(io.BytesIO(raw), strict=False)
            if reader.is_encrypted:
                raise InvalidRecord(
                    f"{name}: encrypted PDF (password-protected): remove the protection first"
                )
            pages = len(reader.pages)
            texts = [(page.extract_text() or "").strip() for page in reader.pages]
            created = _pdf_date(reader)
        except InvalidRecord:
            raise
        except (PyPdfError, ValueError, TypeError, KeyError, IndexError, AttributeError,
                RecursionError, OSError, binascii.Error, ArithmeticError):  # fmt: skip
            # pypdf's exceptions describe structure (offsets, object numbers), never content;
            # we still give only the kind, uniformly.
            raise InvalidRecord(f"{name}: not a readable PDF (damaged or unsupported)") from None
    finally:
        pypdf_log.setLevel(level)
    if pages == 0:
        raise InvalidRecord(f"{name}: PDF has no pages")
    text = "\n\n".join(t for t in texts if t)
    if not text and require_text:
        raise InvalidRecord(
            f"{name}: PDF has no extractable text (a scanned image?): run OCR first"
        )
    return text, pages, created


def _pdf_date(reader: Any) -> str | None:
    try:
        meta = reader.metadata
        created = meta.creation_date if meta is not None else None
    except Exception:  # a malformed date string is not a reason to refuse the note
        return None
    if created is None or not 1900 <= created.year <= 9999:
        return None
    return created.date().isoformat()


# -- FHIR -----------------------------------------------------------------------------------


def has_inline_note(resource: dict[str, Any]) -> bool:
    """Whether a DocumentReference / DiagnosticReport carries a note inline (text or PDF)."""
    return resource.get("resourceType") in NOTE_RESOURCE_TYPES and any(
        isinstance(a.get("data"), str)
        and str(a.get("contentType") or "").split(";")[0].strip().lower()
        in ("text/plain", "application/pdf")
        for a in _attachments(resource)
    )


def note_from_resource(
    src: SourceResource, *, require_text: bool = True, max_bytes: int = MAX_NOTE_BYTES
) -> Note:
    """A DocumentReference or DiagnosticReport whose attachments hold the note.

    The resource is validated, cleaned and canonicalized exactly as
    :func:`healthnft.records.fhir.prepare` does (its canonical bytes are the
    resource itself, attachments included); the attachments are read to check
    them and to characterize the note. Only inline ``text/plain`` and
    ``application/pdf`` data count; a resource with none is refused.
    """
    rtype = src.resource["resourceType"]
    if rtype not in NOTE_RESOURCE_TYPES:
        raise InvalidRecord(f"{src.location}: {rtype} cannot hold a note "
                            "(expected DocumentReference or DiagnosticReport)")  # fmt: skip
    record = prepare(src)
    texts: list[str] = []
    media: list[str] = []
    pages: int | None = None
    encodings: list[str] = []
    for i, att in enumerate(_attachments(src.resource)):
        where = f"{src.location} attachment {i}"
        ctype = str(att.get("contentType") or "")
        base = ctype.split(";")[0].strip().lower()
        if base not in ("text/plain", "application/pdf"):
            continue
        data = att.get("data")
        if not isinstance(data, str):
            continue  # a url only: never fetched
        if len(data) > max_bytes * 4 // 3 + 4:
            raise InvalidRecord(f"{where}: larger than the {_human(max_bytes)} limit for notes")
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRecord(f"{where}: data is not valid base64") from None
        if not raw:
            raise InvalidRecord(f"{where}: empty attachment (0 bytes)")
        if base == "text/plain":
            text, used = decode_text(raw, where, encoding=_charset(ctype))
            encodings.append(used)
        else:
            text, n, _created = extract_pdf_text(raw, where, require_text=require_text)
            pages = (pages or 0) + n
        texts.append(text)
        media.append(base)
    if not media:
        raise InvalidRecord(
            f"{src.location}: {rtype} has no attached note "
            "(inline text/plain or application/pdf data; a URL is never fetched)"
        )
    text = "\n\n".join(t for t in texts if t)
    if not text.strip() and require_text:
        raise InvalidRecord(f"{src.location}: {rtype}'s attached note has no text")
    return Note(
        resource_type=rtype,
        resource_id=record.resource_id,
        category="note",
        effective_date=_note_date(src.resource) or record.effective_date,
        canonical=record.canonical,
        location=src.location,
        subject_ref=record.subject_ref or subject_reference(src.resource),
        warnings=record.warnings,
        kind="fhir",
        media_type=media[0],
        page_count=pages,
        char_count=len(text),
        encoding=encodings[0] if encodings and len(set(encodings)) == 1 else None,
        sha256=None,
        text=text,
    )


def attachments_of(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """Where FHIR R4 keeps a resource's attachments: DocumentReference.content[].attachment,
    DiagnosticReport.presentedForm[] and Media.content (one place for every reader)."""
    found: list[Any] = []
    rtype = resource.get("resourceType")
    content = resource.get("content")
    if rtype == "DocumentReference" and isinstance(content, list):
        found += [c.get("attachment") for c in content if isinstance(c, dict)]
    elif rtype == "Media" and isinstance(content, dict):
        found.append(content)
    elif rtype == "DiagnosticReport" and isinstance(resource.get("presentedForm"), list):
        found += resource["presentedForm"]
    return [a for a in found if isinstance(a, dict)]


_attachments = attachments_of


def _note_date(resource: dict[str, Any]) -> str | None:
    """The date of the care documented: DocumentReference.context.period.start first."""
    context = resource.get("context")
    period = context.get("period") if isinstance(context, dict) else None
    start = period.get("start") if isinstance(period, dict) else None
    if isinstance(start, str) and len(start) >= 4:
        return start[:10]
    return characterize(resource)[1]
