"""DICOM imaging as records: read, validate, characterize, group into studies, manifest.

**One record = one study** (every instance sharing a StudyInstanceUID), not one series:

- it is what is ordered, read and reported: a clinician orders "CT abdomen", the
  radiologist reads the whole study (localizer, pre- and post-contrast series,
  reconstructions, often against each other) and writes one report per study, and
  FHIR's ``ImagingStudy`` is one study too. Sharing "my CT from March" means the study;
  a series alone (the localizer, or only the bone window) is rarely meaningful;
- per-series tokens would multiply tokens, grants and key releases 5–20 times per exam
  and let the chain count a patient's series — structure we do not want to publish;
- size is not a reason to split: a 2 GB study is sealed as a stream of 1 MiB chunks
  (:mod:`healthnft.vault.stream`) and its manifest says where every instance starts, so
  a viewer can later fetch one series' chunks without the rest.

Reading never loads pixel data: headers are parsed with ``stop_before_pixels`` (and
``defer_size`` for other large elements), and the pixel data element is *walked* — its
header, or the item headers of encapsulated (compressed) data — to check that it is all
there. A non-DICOM file, an empty or truncated one, a DICOMDIR, and a DICOM object with no
pixels (an SR report, an RT structure set) are refused with :class:`InvalidRecord`
naming the input by position (``input 3 of 40``), never by file name or content: names
of exported studies often carry the patient's name.

The record's bytes cannot be held in memory, so its commitment is over a **manifest**
(:func:`build_manifest`): RFC 8785 canonical JSON listing, in the payload's order
(SeriesInstanceUID, InstanceNumber, SOPInstanceUID), every instance's position, series,
the SHA-256 of its SOP Instance UID (identifiers are bound, not listed), its size, offset
and SHA-256, and the study's characterization (modalities, body parts, study date,
series/instance/frame counts, rows and columns). The SHA-256 of every instance binds
every byte of the study to the manifest, and the manifest to the chain's commitment.
Like every record it is encrypted: only the salted commitment goes on chain.

The payload (the instances concatenated in manifest order) is read by
:meth:`StudyRecord.open_payload`, which re-checks each file against the manifest while
streaming it (a file changed after characterization is refused, not sealed), and written
back by :class:`StudyWriter`, which splits it into instance files and verifies each one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import struct
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian
from pydicom.uid import ImplicitVRLittleEndian as _ImplicitLE

from healthnft.errors import InputNotFound, InvalidRecord, Tampered
from healthnft.records import jcs

MANIFEST_FORMAT = "healthnft/dicom-study-manifest/v1"
#: The record type and category a study is minted under (the category is all the chain
#: may ever learn, and only as a coarse code).
RESOURCE_TYPE = "DicomStudy"
CATEGORY = "imaging"
MEDIA_TYPE = "application/dicom"

_DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})  # Pixel, Float, Double Float
_ITEM, _SEQUENCE_DELIMITER = 0xFFFEE000, 0xFFFEE0DD
_LONG_LENGTH_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_UNDEFINED = 0xFFFFFFFF
_DEFER = 64 * 1024  # large non-pixel elements (overlays, icons) are skipped, not loaded
_READ = 1 << 20
_CODE = re.compile(r"[A-Z0-9_ ]{1,16}")  # DICOM CS: what modality/body part may hold
_DATE = re.compile(r"(\d{4})\.?(\d{2})\.?(\d{2})")  # DA, and the old ACR-NEMA dotted form


@dataclass(frozen=True)
class DicomInstance:
    """One DICOM file's header facts. Identifiers and path are kept out of ``repr``."""

    label: str
    path: Path = field(repr=False)
    size: int
    study_uid: str = field(repr=False)
    series_uid: str = field(repr=False)
    sop_uid: str = field(repr=False)
    instance_number: int | None
    sop_class_uid: str
    transfer_syntax_uid: str
    modality: str | None
    body_part: str | None
    study_date: str | None
    rows: int | None
    columns: int | None
    frames: int
    #: SeriesNumber and SeriesDescription, for the owner's view of the study (encrypted
    #: metadata only; neither is in the manifest, so neither is part of the commitment).
    series_number: int | None = None
    series_description: str | None = field(default=None, repr=False)

    @property
    def sort_key(self) -> tuple[str, int, int, str]:
        """Series, then instance number (missing ones last), then SOP Instance UID."""
        number = self.instance_number
        return (self.series_uid, number is None, number or 0, self.sop_uid)


@dataclass(frozen=True)
class DicomStudy:
    """All the instances of one study, in payload order."""

    label: str
    instances: tuple[DicomInstance, ...] = field(repr=False)

    @property
    def study_uid(self) -> str:
        return self.instances[0].study_uid

    @property
    def size(self) -> int:
        return sum(i.size for i in self.instances)

    def series(self) -> list[tuple[str, list[DicomInstance]]]:
        """(SeriesInstanceUID, its instances), in payload order."""
        out: list[tuple[str, list[DicomInstance]]] = []
        for inst in self.instances:
            if not out or out[-1][0] != inst.series_uid:
                out.append((inst.series_uid, []))
            out[-1][1].append(inst)
        return out

    def characterization(self) -> dict[str, Any]:
        """What the encrypted metadata says about the study (no identifiers)."""
        dates = sorted({i.study_date for i in self.instances if i.study_date})
        return {
            "modalities": sorted({i.modality for i in self.instances if i.modality}),
            "body_parts": sorted({i.body_part for i in self.instances if i.body_part}),
            "study_date": dates[0] if dates else None,
            "series_count": len(self.series()),
            "instance_count": len(self.instances),
            "frame_count": sum(i.frames for i in self.instances),
            "size": self.size,
        }

    def series_summary(self) -> list[dict[str, Any]]:
        """One row per series, in payload order, for the owner's listing of the study:
        position, number, modality, body part, description, instance and frame counts."""
        rows = []
        for position, (_, members) in enumerate(self.series()):
            numbers = sorted({m.series_number for m in members if m.series_number is not None})
            modalities = sorted({m.modality for m in members if m.modality})
            body_parts = sorted({m.body_part for m in members if m.body_part})
            descriptions = [m.series_description for m in members if m.series_description]
            rows.append(
                {
                    "position": position,
                    "number": numbers[0] if len(numbers) == 1 else None,
                    "modality": modalities[0] if len(modalities) == 1 else None,
                    "body_part": body_parts[0] if len(body_parts) == 1 else None,
                    "description": descriptions[0] if descriptions else None,
                    "instance_count": len(members),
                    "frame_count": sum(m.frames for m in members),
                }
            )
        return rows


# -- reading --------------------------------------------------------------------------


def expand_inputs(paths: Iterable[Path]) -> list[tuple[Path, bool]]:
    """Files to read, in order: (path, found inside a folder).

    Folders are walked recursively, sorted; hidden files and files named ``DICOMDIR``
    (the index of a DICOM disc, redundant with the files it lists) are left out. The
    position of a file in this list is how errors name it (``input 3 of 40``).
    """
    out: list[tuple[Path, bool]] = []
    args = list(paths)
    for i, path in enumerate(args, 1):
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in found.relative_to(path).parts)
                if found.is_file() and not hidden and found.name.upper() != "DICOMDIR":
                    out.append((found, True))
        elif path.exists():
            out.append((path, False))
        else:
            raise InputNotFound(f"argument {i} of {len(args)}: no such file or folder")
    return out


def read_instances(
    paths: Iterable[Path],
    *,
    skip_foreign: bool = False,
    on_skip: Callable[[str], None] | None = None,
) -> list[DicomInstance]:
    """Read and validate the header of every file under ``paths`` (pixels are not loaded).

    ``skip_foreign``: files *found in folders* that are not DICOM at all (a disc's
    README, viewer or autorun file) are skipped, and ``on_skip`` is told their label,
    instead of refusing the whole input. A damaged DICOM file is refused either way, and
    so is any file named explicitly.
    """
    files = expand_inputs(paths)
    if not files:
        raise InvalidRecord("no files found in the input")
    out = []
    for k, (path, in_folder) in enumerate(files, 1):
        label = f"input {k} of {len(files)}"
        try:
            out.append(read_instance(path, label))
        except _NotDicom as exc:
            if skip_foreign and in_folder:
                if on_skip is not None:
                    on_skip(label)
                continue
            raise InvalidRecord(str(exc)) from None
    if not out:
        raise InvalidRecord("no DICOM files found in the input")
    return out


class _NotDicom(InvalidRecord):
    """Not DICOM at all (as opposed to DICOM that is damaged or not an image)."""


def read_instance(path: Path, label: str) -> DicomInstance:
    """Validate and characterize one DICOM file from its header (pixels are not loaded)."""
    try:
        size = path.stat().st_size
        f = path.open("rb")
    except FileNotFoundError:
        raise InputNotFound(f"{label}: no such file") from None
    except OSError as exc:
        raise InputNotFound(f"{label}: cannot be read ({exc.strerror})") from None
    with f:
        if size == 0:
            raise InvalidRecord(f"{label}: empty file (0 bytes), not a DICOM file")
        kind = sniff(f.read(132))
        if kind is None:
            raise _NotDicom(f"{label}: not a DICOM file")
        force = kind == "raw"
        f.seek(0)
        try:
            # pydicom's warnings and log records may quote element values: neither is let out.
            with warnings.catch_warnings(), _pydicom_quiet():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(f, stop_before_pixels=True, defer_size=_DEFER, force=force)
                stopped_at = f.tell()
                return _characterize(ds, f, stopped_at, size, path, label, force)
        except (InvalidRecord, InputNotFound):
            raise
        except Exception:  # pydicom raises many types; their messages may quote data
            raise InvalidRecord(
                f"{label}: damaged or truncated DICOM file (it cannot be parsed)"
            ) from None


@contextlib.contextmanager
def _pydicom_quiet() -> Iterator[None]:
    """Silence pydicom's logger while a file is parsed (its records can quote values)."""
    logger = logging.getLogger("pydicom")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def sniff(head: bytes) -> str | None:
    """What the first 132 bytes say: ``"part10"`` (preamble and ``DICM``), ``"raw"``
    (a dataset without the Part 10 header, as older exports write: it starts with a
    little-endian group 0002 or 0008 tag) or None (not DICOM)."""
    if head[128:132] == b"DICM":
        return "part10"
    if head[:2] in (b"\x02\x00", b"\x08\x00"):
        return "raw"
    return None


def _characterize(
    ds: Any, f: BinaryIO, stopped_at: int, size: int, path: Path, label: str, forced: bool
) -> DicomInstance:
    meta = getattr(ds, "file_meta", None)
    if meta is not None and str(meta.get("MediaStorageSOPClassUID", "")) == _DICOMDIR_SOP_CLASS:
        raise InvalidRecord(
            f"{label}: a DICOMDIR (the index of a DICOM disc), not an image; "
            "give the folder that holds it instead"
        )
    if len(ds) == 0:
        if forced:
            raise _NotDicom(f"{label}: not a DICOM file")
        raise InvalidRecord(f"{label}: truncated DICOM file (it ends inside its header)")
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        if isinstance(raw, RawDataElement) and raw.length != _UNDEFINED:
            short = raw.value is not None and len(raw.value) < raw.length
            if short or raw.value_tell + raw.length > size:
                raise InvalidRecord(f"{label}: truncated DICOM file (cut short in its header)")
    ts = _transfer_syntax(ds)
    sop_class = str(
        ds.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta else "") or ""
    )
    if ts == DeflatedExplicitVRLittleEndian:
        # The whole dataset is one zlib stream: positions in the file mean nothing, so
        # read it all (deflate is rare for images, and pydicom inflates it in memory anyway).
        f.seek(0)
        full = pydicom.dcmread(f, force=True)
        has_pixels = any(t in full for t in _PIXEL_TAGS)
        pixel_length = len(full.PixelData) if "PixelData" in full else None
    else:
        has_pixels, pixel_length = _walk_pixel_data(f, stopped_at, size, ds, label)
    if not has_pixels:
        raise InvalidRecord(
            f"{label}: {_sop_class_name(sop_class)} has no pixel data; an imaging record "
            "holds images only (or the file was cut short before its pixels)"
        )
    study_uid = _uid(ds, "StudyInstanceUID", "(0020,000D)", label)
    series_uid = _uid(ds, "SeriesInstanceUID", "(0020,000E)", label)
    sop_uid = str(
        ds.get("SOPInstanceUID") or (meta.get("MediaStorageSOPInstanceUID") if meta else "") or ""
    )
    if not sop_uid:
        raise InvalidRecord(f"{label}: no SOPInstanceUID (0008,0018); not a DICOM instance")
    rows, columns = _int(ds.get("Rows")), _int(ds.get("Columns"))
    frames = max(_int(ds.get("NumberOfFrames")) or 1, 1)
    if rows is None or columns is None or rows <= 0 or columns <= 0:
        raise InvalidRecord(f"{label}: pixel data without valid Rows and Columns")
    if pixel_length is not None and not _is_compressed(ts):
        bits = _int(ds.get("BitsAllocated")) or 0
        samples = _int(ds.get("SamplesPerPixel")) or 1
        if str(ds.get("PhotometricInterpretation", "")) == "YBR_FULL_422":
            samples = 2  # chroma is subsampled two to one: Y Y Cb Cr per pair of pixels
        expected = (rows * columns * frames * samples * bits + 7) // 8
        if pixel_length < expected:
            raise InvalidRecord(f"{label}: pixel data is shorter than its image size (damaged)")
    return DicomInstance(
        label=label,
        path=path,
        size=size,
        study_uid=study_uid,
        series_uid=series_uid,
        sop_uid=sop_uid,
        instance_number=_int(ds.get("InstanceNumber")),
        sop_class_uid=sop_class,
        transfer_syntax_uid=str(ts),
        modality=_code(ds.get("Modality")),
        body_part=_code(ds.get("BodyPartExamined")),
        study_date=_date(ds.get("StudyDate")),
        rows=rows,
        columns=columns,
        frames=frames,
        series_number=_int(ds.get("SeriesNumber")),
        series_description=_text(ds.get("SeriesDescription")),
    )


def _transfer_syntax(ds: Any) -> str:
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts:
        return str(ts)
    implicit, _ = ds.original_encoding
    return str(_ImplicitLE if implicit else ExplicitVRLittleEndian)


def _walk_pixel_data(
    f: BinaryIO, at: int, size: int, ds: Any, label: str
) -> tuple[bool, int | None]:
    """Check the pixel data element, and whatever follows it, is whole.

    Reads only element and item headers (never the pixels): the pixel data element,
    the items of encapsulated (compressed) data, then any trailing elements (padding,
    signatures) up to the end of the file. Returns (present, length of native pixel
    data, or None when encapsulated).
    """
    truncated = InvalidRecord(f"{label}: truncated DICOM file (its pixel data is cut short)")
    implicit, little = ds.original_encoding
    end = "<" if little in (True, None) else ">"
    element = _element_header(f, at, size, end, bool(implicit), truncated)
    if element is None or element[0] not in _PIXEL_TAGS:
        return False, None
    _, start, length = element
    if length == _UNDEFINED:
        native = None
        pos = _walk_fragments(f, start, size, label, truncated)
    else:
        native = length
        pos = start + length
        if pos > size:
            raise truncated
    # Trailing elements: each must fit, and the file must end on an element boundary.
    while pos < size:
        element = _element_header(f, pos, size, end, bool(implicit), truncated)
        if element is None:
            raise truncated
        _, start, length = element
        if length == _UNDEFINED:  # a trailing sequence: rare; trust the parser's reading
            break
        pos = start + length
        if pos > size:
            raise truncated
    return True, native


def _element_header(
    f: BinaryIO, at: int, size: int, end: str, implicit: bool, truncated: InvalidRecord
) -> tuple[int, int, int] | None:
    """(tag, value offset, value length) of the element at ``at``; None at the very end."""
    f.seek(at)
    header = f.read(8)
    if not header:
        return None
    if len(header) < 8:
        raise truncated
    group, elem = struct.unpack(end + "HH", header[:4])
    vr = header[4:6]
    if implicit or not (b"AA" <= vr <= b"ZZ"):  # some writers switch to implicit VR here
        (length,) = struct.unpack(end + "I", header[4:8])
    elif vr in _LONG_LENGTH_VRS:
        more = f.read(4)
        if len(more) < 4:
            raise truncated
        (length,) = struct.unpack(end + "I", more)
    else:
        (length,) = struct.unpack(end + "H", header[6:8])
    return group << 16 | elem, f.tell(), length


def _walk_fragments(
    f: BinaryIO, start: int, size: int, label: str, truncated: InvalidRecord
) -> int:
    """Encapsulated pixel data: offset table and fragment items, then the delimiter."""
    pos = start
    while True:
        f.seek(pos)
        item = f.read(8)
        if len(item) < 8:
            raise truncated
        group, elem, item_length = struct.unpack("<HHI", item)
        tag = group << 16 | elem
        if tag == _SEQUENCE_DELIMITER:
            return pos + 8
        if tag != _ITEM or item_length == _UNDEFINED:
            raise InvalidRecord(f"{label}: damaged DICOM file (malformed compressed pixel data)")
        pos += 8 + item_length
        if pos > size:
            raise truncated


def _is_compressed(ts: str) -> bool:
    try:
        return bool(UID(ts).is_compressed)
    except ValueError:  # a private transfer syntax: assume nothing about its layout
        return True


def _sop_class_name(uid: str) -> str:
    """A standard SOP class's name (never an unknown value, which could be anything)."""
    try:
        name = UID(uid).name
    except Exception:
        return "this DICOM object"
    return name if uid and name != uid else "this DICOM object"


def _uid(ds: Any, keyword: str, tag: str, label: str) -> str:
    value = ds.get(keyword)
    if not value:
        raise InvalidRecord(f"{label}: no {keyword} {tag}; cannot tell which study it is part of")
    return str(value)


def _int(value: Any) -> int | None:
    """An IS/US value as an int; None when absent, malformed or absurd (|n| >= 2^31)."""
    try:
        number = int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return number if number is not None and abs(number) < 2**31 else None


def _code(value: Any) -> str | None:
    """A CS value (modality, body part), or None: free text never enters metadata."""
    text = str(value).strip() if value not in (None, "") else ""
    return text if _CODE.fullmatch(text) else None


def _text(value: Any) -> str | None:
    """A short free-text value (LO, 64 characters) made printable, or None."""
    text = "".join(ch for ch in str(value) if ch.isprintable()).strip() if value else ""
    return text[:64] or None


def _date(value: Any) -> str | None:
    match = _DATE.fullmatch(str(value).strip()) if value else None
    if not match:
        return None
    year, month, day = match.groups()
    if not ("01" <= month <= "12" and "01" <= day <= "31"):
        return None
    return f"{year}-{month}-{day}"


# -- grouping -------------------------------------------------------------------------


def group_studies(instances: Sequence[DicomInstance]) -> list[DicomStudy]:
    """Group instances by StudyInstanceUID, in order of first appearance in the input.

    Within a study, instances are sorted by (SeriesInstanceUID, InstanceNumber,
    SOPInstanceUID): a deterministic order, so the same files always give the same
    manifest (and the minter's de-duplication recognizes a study given twice). The
    same SOP Instance UID twice is refused: which copy is the instance?
    """
    seen: dict[str, DicomInstance] = {}
    by_study: dict[str, list[DicomInstance]] = {}
    for inst in instances:
        if inst.sop_uid in seen:
            raise InvalidRecord(
                f"{seen[inst.sop_uid].label} and {inst.label}: the same DICOM instance "
                "(SOP Instance UID) twice; give each instance once"
            )
        seen[inst.sop_uid] = inst
        by_study.setdefault(inst.study_uid, []).append(inst)
    n = len(by_study)
    return [
        DicomStudy(f"study {k} of {n}", tuple(sorted(group, key=lambda i: i.sort_key)))
        for k, group in enumerate(by_study.values(), 1)
    ]


def read_studies(
    paths: Iterable[Path],
    *,
    skip_foreign: bool = False,
    on_skip: Callable[[str], None] | None = None,
) -> list[DicomStudy]:
    """Files, folders or both → the studies they hold (see :func:`read_instances`)."""
    return group_studies(read_instances(paths, skip_foreign=skip_foreign, on_skip=on_skip))


def iter_instance_streams(study: DicomStudy) -> Iterator[tuple[DicomInstance, BinaryIO]]:
    """Each instance as an open binary file, in payload order; each is closed when the
    caller moves on, so one file is open at a time whatever the study's size."""
    for inst in study.instances:
        try:
            f = inst.path.open("rb")
        except OSError:
            raise InputNotFound(f"{inst.label}: can no longer be read") from None
        with f:
            yield inst, f


# -- manifest -------------------------------------------------------------------------


def _uid_hash(uid: str) -> str:
    return hashlib.sha256(uid.encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True)
class StudyManifest:
    """The canonical description of a study's payload: what the commitment is over."""

    document: dict[str, Any] = field(repr=False)
    canonical: bytes = field(repr=False)

    @property
    def instances(self) -> list[dict[str, Any]]:
        return self.document["instances"]

    @property
    def payload_size(self) -> int:
        return int(self.document["payload"]["size"])

    @classmethod
    def from_canonical(cls, canonical: bytes) -> StudyManifest:
        """Re-read a manifest after decryption; a malformed one is ``Tampered``."""
        try:
            doc = orjson.loads(canonical)
            ok = doc["format"] == MANIFEST_FORMAT and jcs.dumps(doc) == canonical
            offset = 0
            for i, entry in enumerate(doc["instances"]):
                ok = ok and entry["position"] == i and entry["offset"] == offset
                ok = ok and len(bytes.fromhex(entry["sha256"])) == 32 and entry["size"] >= 0
                offset += entry["size"]
            ok = ok and doc["payload"]["size"] == offset
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise Tampered("imaging manifest is malformed")
        return cls(doc, canonical)


def build_manifest(
    study: DicomStudy, *, progress: Callable[[int], None] | None = None
) -> StudyManifest:
    """Hash every instance (streaming, one file open at a time) and describe the study.

    ``progress`` is called with the bytes hashed of each instance.
    """
    series_rows = []
    instance_rows = []
    offset = 0
    position_of: dict[str, int] = {}
    for s, (series_uid, members) in enumerate(study.series()):
        position_of[series_uid] = s
        modalities = sorted({m.modality for m in members if m.modality})
        body_parts = sorted({m.body_part for m in members if m.body_part})
        series_rows.append(
            {
                "position": s,
                "series_instance_uid_sha256": _uid_hash(series_uid),
                "modality": modalities[0] if len(modalities) == 1 else None,
                "body_part": body_parts[0] if len(body_parts) == 1 else None,
                "instance_count": len(members),
                "frame_count": sum(m.frames for m in members),
            }
        )
    for i, (inst, f) in enumerate(iter_instance_streams(study)):
        digest = hashlib.file_digest(f, "sha256").hexdigest()
        if f.tell() != inst.size:
            raise InvalidRecord(f"{inst.label}: changed while it was being read")
        if progress is not None:
            progress(inst.size)
        instance_rows.append(
            {
                "position": i,
                "series": position_of[inst.series_uid],
                "sop_instance_uid_sha256": _uid_hash(inst.sop_uid),
                "instance_number": inst.instance_number,
                "sop_class_uid": inst.sop_class_uid,
                "transfer_syntax_uid": inst.transfer_syntax_uid,
                "modality": inst.modality,
                "rows": inst.rows,
                "columns": inst.columns,
                "frames": inst.frames,
                "offset": offset,
                "size": inst.size,
                "sha256": digest,
            }
        )
        offset += inst.size
    document = {
        "format": MANIFEST_FORMAT,
        "media_type": MEDIA_TYPE,
        "study": {
            "study_instance_uid_sha256": _uid_hash(study.study_uid),
            **study.characterization(),
        },
        "series": series_rows,
        "instances": instance_rows,
        "payload": {"layout": "instances concatenated in manifest order", "size": offset},
    }
    return StudyManifest(document, jcs.dumps(document))


@dataclass(frozen=True)
class StudyRecord:
    """A study ready to commit and seal: its manifest is the record's canonical bytes.

    Shaped like :class:`~healthnft.records.fhir.Record` (type, category, date, canonical,
    location) so the minter can commit, attest and catalogue it the same way; the
    payload itself is streamed from :meth:`open_payload` into
    :func:`healthnft.vault.stream.seal_stream`.
    """

    study: DicomStudy = field(repr=False)
    manifest: StudyManifest = field(repr=False)
    location: str
    resource_type: str = RESOURCE_TYPE
    category: str = CATEGORY
    resource_id: str | None = None
    subject_ref: str | None = None

    @property
    def canonical(self) -> bytes:
        return self.manifest.canonical

    @property
    def effective_date(self) -> str | None:
        return self.manifest.document["study"]["study_date"]

    @property
    def structured(self) -> bool:
        return False

    def meta(self) -> dict[str, Any]:
        """Private metadata for the sealed record (encrypted with it, never on chain)."""
        return {
            "format": MEDIA_TYPE + "; manifest=" + MANIFEST_FORMAT,
            **self.manifest.document["study"],
            "series": self.study.series_summary(),
        }

    def open_payload(self) -> io.RawIOBase:
        """The study's instances as one readable stream, checked against the manifest."""
        return _PayloadReader(self.study, self.manifest)


def prepare_study(
    study: DicomStudy, *, progress: Callable[[int], None] | None = None
) -> StudyRecord:
    """Characterize and manifest one study (reads every byte once, holds none)."""
    return StudyRecord(study, build_manifest(study, progress=progress), study.label)


class _PayloadReader(io.RawIOBase):
    """Concatenates a study's files, hashing each; a file that changed is refused."""

    def __init__(self, study: DicomStudy, manifest: StudyManifest) -> None:
        self._files = iter(zip(study.instances, manifest.instances, strict=True))
        self._current: tuple[DicomInstance, dict[str, Any], BinaryIO, Any] | None = None
        self._left = 0

    def readable(self) -> bool:
        return True

    def _next_file(self) -> bool:
        entry = next(self._files, None)
        if entry is None:
            return False
        inst, row = entry
        try:
            f = inst.path.open("rb")
        except OSError:
            raise InputNotFound(f"{inst.label}: can no longer be read") from None
        self._current = (inst, row, f, hashlib.sha256())
        self._left = row["size"]
        return True

    def _finish_file(self) -> None:
        assert self._current is not None
        inst, row, f, h = self._current
        extra = f.read(1)
        f.close()
        self._current = None
        if extra or h.hexdigest() != row["sha256"]:
            raise InvalidRecord(f"{inst.label}: changed since it was characterized")

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while True:
            if self._current is None and not self._next_file():
                return 0
            assert self._current is not None
            if self._left == 0:
                self._finish_file()
                continue
            inst, _, f, h = self._current
            n = f.readinto(view[: min(len(view), self._left)])
            if not n:
                raise InvalidRecord(f"{inst.label}: changed since it was characterized")
            h.update(view[:n])
            self._left -= n
            return n

    def close(self) -> None:
        if self._current is not None:
            self._current[2].close()
            self._current = None
        super().close()


class StudyWriter:
    """A writable that splits a decrypted payload into instance files and verifies each.

    Instance *k* is written to ``folder/{k:06d}.dcm.part`` and renamed to ``.dcm`` only
    once its size and SHA-256 match the manifest; a mismatch raises :class:`Tampered`.
    File names are positions, never identifiers. With ``folder=None`` it only verifies.
    Call :meth:`finish` (or use it as a context manager) to check nothing is missing.
    """

    def __init__(self, manifest: StudyManifest, folder: Path | None) -> None:
        self.manifest = manifest
        self.folder = folder
        self.paths: list[Path] = []
        self._rows = manifest.instances
        self._k = 0
        self._left = self._rows[0]["size"] if self._rows else 0
        self._hash = hashlib.sha256()
        self._out: BinaryIO | None = None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    def _where(self) -> str:
        return f"instance {self._k + 1} of {len(self._rows)}"

    def _part(self) -> Path:
        assert self.folder is not None
        return self.folder / f"{self._k:06d}.dcm.part"

    def _close_instance(self) -> None:
        """The current instance is complete: verify it and move to the next."""
        if self._out is not None:
            self._out.close()
            self._out = None
        if self._hash.hexdigest() != self._rows[self._k]["sha256"]:
            raise Tampered(f"{self._where()}: content does not match the manifest")
        if self.folder is not None:
            final = self.folder / f"{self._k:06d}.dcm"
            part = self._part()
            if not part.exists():  # an empty instance: nothing was ever written
                part.touch()
            os.replace(part, final)
            self.paths.append(final)
        self._k += 1
        self._hash = hashlib.sha256()
        self._left = self._rows[self._k]["size"] if self._k < len(self._rows) else 0

    def write(self, data: bytes) -> int:
        view = memoryview(data).cast("B")
        while view:
            if self._k >= len(self._rows):
                raise Tampered("payload is longer than its manifest says")
            if self._left == 0:
                self._close_instance()
                continue
            piece = view[: self._left]
            self._hash.update(piece)
            if self.folder is not None:
                if self._out is None:
                    self._out = self._part().open("wb")
                self._out.write(piece)
            self._left -= len(piece)
            view = view[len(piece) :]
            if self._left == 0:
                self._close_instance()
        return len(data)

    def finish(self) -> list[Path]:
        """Check every instance arrived whole; returns the files written."""
        while self._k < len(self._rows) and self._left == 0:
            self._close_instance()
        if self._k < len(self._rows):
            if self._out is not None:
                self._out.close()
                self._out = None
            raise Tampered(f"{self._where()}: payload ended before it was complete")
        return self.paths

    def __enter__(self) -> StudyWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.finish()
        elif self._out is not None:
            self._out.close()
            self._out = None
