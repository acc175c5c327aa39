"""Render one DICOM instance (or one frame of a multi-frame) as an 8-bit PNG.

A patient's wallet needs to *show* an image, not diagnose from it, so this is the
standard display pipeline and nothing more (DICOM PS3.3 C.11, PS3.4 N.2):

1. decode one frame only (``pydicom.pixels.pixel_array(index=...)``): a 500-frame
   ultrasound clip is not decoded whole to show its first frame;
2. Modality LUT: stored values to physical units (Rescale Slope/Intercept, e.g.
   Hounsfield units for CT), from the top level or the per-frame functional groups;
3. VOI window: the caller's, else the file's (Window Center/Width), else for CT a
   soft-tissue window (40/400 HU), else the frame's own range; linear function of
   C.11.2.1.2.1;
4. MONOCHROME1 (white is low, as on film) inverted; RGB passed through (YBR converted
   to RGB by pydicom), PALETTE COLOR expanded through its lookup table;
5. scaled to 8 bits and written as PNG by Pillow.

Compressed transfer syntaxes that need a decoder plugin this installation lacks
(JPEG-LS, JPEG Lossless need pylibjpeg or GDCM; JPEG baseline, JPEG 2000 and RLE work
with Pillow and pydicom alone) are refused with :class:`InvalidRecord` naming the
transfer syntax and the packages that would decode it — never anything of the patient.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pydicom
from PIL import Image
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, get_decoder, pixel_array
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from healthnft.errors import InvalidRecord
from healthnft.records.dicom import sniff

#: Soft-tissue window (center, width) in HU, when a CT file carries none.
CT_DEFAULT_WINDOW = (40.0, 400.0)
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
_KNOWN_PHOTOMETRIC = frozenset(
    {
        "MONOCHROME1",
        "MONOCHROME2",
        "RGB",
        "PALETTE COLOR",
        "YBR_FULL",
        "YBR_FULL_422",
        "YBR_ICT",
        "YBR_RCT",
    }
)

Source = Path | bytes | BinaryIO


def render_png(
    source: Source,
    *,
    frame: int = 0,
    window: tuple[float, float] | None = None,
    max_side: int | None = None,
    label: str = "image",
) -> bytes:
    """The PNG of one frame (the first by default); see the module docstring.

    ``window`` = (center, width) in modality units overrides the file's; ``max_side``
    shrinks the image (aspect kept) to fit a thumbnail; ``label`` names the source in
    errors (a position such as ``instance 3 of 40``, never a file name).
    """
    pixels = display_array(source, frame=frame, window=window, label=label)
    image = Image.fromarray(pixels, mode="RGB" if pixels.ndim == 3 else "L")
    if max_side is not None and max(image.size) > max_side:
        image.thumbnail((max_side, max_side))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def display_array(
    source: Source,
    *,
    frame: int = 0,
    window: tuple[float, float] | None = None,
    label: str = "image",
) -> np.ndarray:
    """One frame as display-ready uint8: (rows, columns) grey or (rows, columns, 3) RGB."""
    if isinstance(source, Path):
        try:
            with source.open("rb") as f:
                return _display(f, frame, window, label)
        except FileNotFoundError:
            raise InvalidRecord(f"{label}: no such file") from None
    return _display(
        io.BytesIO(source) if isinstance(source, bytes) else source, frame, window, label
    )


def _display(f: BinaryIO, frame: int, window: tuple[float, float] | None, label: str) -> np.ndarray:
    # pydicom warns with element values quoted (even on lazy conversion): silence it all.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds, arr = _decode(f, frame, label)
        photometric = str(ds.get("PhotometricInterpretation", "")).strip()
        if photometric not in _KNOWN_PHOTOMETRIC:
            raise InvalidRecord(f"{label}: unsupported photometric interpretation")
        if photometric == "PALETTE COLOR":
            rgb = apply_color_lut(arr, ds)
            return _to_8bit_color(rgb, 8 if int(rgb.max(initial=0)) <= 255 else 16)
        if arr.ndim == 3:  # RGB, or YBR already converted to RGB by pixel_array
            return _to_8bit_color(arr, _int(ds.get("BitsStored"), 8))
        values = _modality_lut(arr, ds, frame)
        center_width = window or _file_window(ds, frame)
        if center_width is None and str(ds.get("Modality", "")).strip() == "CT":
            center_width = CT_DEFAULT_WINDOW
    grey = _linear_window(values, *center_width) if center_width else _full_range(values)
    if photometric == "MONOCHROME1":
        grey = 255 - grey
    return grey


def _decode(f: BinaryIO, frame: int, label: str) -> tuple[Any, np.ndarray]:
    """(the header dataset, without pixels; the one frame's pixels)."""
    start = f.tell()
    header = _read_header(f, label)
    ts = _transfer_syntax(header)
    _check_decodable(ts, label)
    frames = _int(header.get("NumberOfFrames"), 1)
    if not 0 <= frame < max(frames, 1):
        raise InvalidRecord(f"{label}: has {frames} frame(s); frame {frame + 1} does not exist")
    f.seek(start)
    try:  # the header, not pixel_array's ds_out: that holds only the pixel module
        return header, pixel_array(f, index=frame if frames > 1 else None)
    except Exception:  # decoder messages may quote header values: never shown
        pass
    if frames <= 1:  # some writers' quirks only the whole-dataset path tolerates
        try:
            f.seek(start)
            full = pydicom.dcmread(f, force=True)  # the header was sniffed above
            return full, full.pixel_array
        except Exception:
            pass
    if _is_compressed(ts):
        raise InvalidRecord(
            f"{label}: its pixel data ({UID(ts).name}) could not be decoded by the installed "
            "plugins (damaged, or a variant they do not support, such as 12-bit JPEG)"
        )
    raise InvalidRecord(f"{label}: its pixel data cannot be read (damaged or truncated)")


def _read_header(f: BinaryIO, label: str) -> Any:
    """The header, and a check that pixel data follows it (without reading the pixels)."""
    start = f.tell()
    kind = sniff(f.read(132))
    if kind is None:
        raise InvalidRecord(f"{label}: not a DICOM file")
    f.seek(start)
    try:
        header = pydicom.dcmread(
            f, stop_before_pixels=True, defer_size=64 * 1024, force=kind == "raw"
        )
    except Exception:
        raise InvalidRecord(f"{label}: not a readable DICOM file") from None
    if _transfer_syntax(header) == str(DeflatedExplicitVRLittleEndian):
        return header  # one zlib stream: the file position says nothing; decoding will tell
    _, little = header.original_encoding
    tag = f.read(4)
    if len(tag) < 4:
        raise InvalidRecord(f"{label}: has no pixel data to show")
    group, element = struct.unpack("<HH" if little in (True, None) else ">HH", tag)
    if (group << 16 | element) not in _PIXEL_TAGS:
        raise InvalidRecord(f"{label}: has no pixel data to show")
    return header


def _transfer_syntax(ds: Any) -> str:
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    return str(ts) if ts else "1.2.840.10008.1.2"


def _is_compressed(ts: str) -> bool:
    try:
        return bool(UID(ts).is_compressed)
    except ValueError:
        return True


def _check_decodable(ts: str, label: str) -> None:
    """Refuse, naming the transfer syntax, pixel data no installed plugin decodes."""
    uid = UID(ts)
    try:
        decoder = get_decoder(uid)
    except (NotImplementedError, ValueError):
        name = uid.name if uid.is_transfer_syntax else "a private transfer syntax"
        raise InvalidRecord(f"{label}: pixel data in {name} cannot be decoded here") from None
    if not decoder.is_available:
        needs = "; or ".join(
            dep.split(" - requires ", 1)[-1] for dep in decoder.missing_dependencies
        )
        raise InvalidRecord(
            f"{label}: pixel data is compressed as {uid.name} ({uid}), which needs a "
            f"decoder plugin that is not installed ({needs})"
        )


def _int(value: Any, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _frame_item(ds: Any, frame: int, sequence: str) -> Any:
    """A functional group macro for ``frame`` (per-frame first, then shared), or None."""
    for groups, index in (
        ("PerFrameFunctionalGroupsSequence", frame),
        ("SharedFunctionalGroupsSequence", 0),
    ):
        items = ds.get(groups)
        if items and index < len(items):
            inner = items[index].get(sequence)
            if inner:
                return inner[0]
    return None


def _modality_lut(arr: np.ndarray, ds: Any, frame: int) -> np.ndarray:
    """Stored values → modality units (HU for CT). Linear rescale, or pydicom's LUT."""
    source = ds if "RescaleSlope" in ds or "ModalityLUTSequence" in ds else None
    if source is None:
        source = _frame_item(ds, frame, "PixelValueTransformationSequence")
    if source is not None and "ModalityLUTSequence" in source:
        return apply_modality_lut(arr, ds).astype(np.float64)
    slope = float(source.get("RescaleSlope", 1) or 1) if source is not None else 1.0
    intercept = float(source.get("RescaleIntercept", 0) or 0) if source is not None else 0.0
    return arr.astype(np.float64) * slope + intercept


def _first(value: Any) -> float | None:
    """The first of a multi-valued DS (files may list several windows), as a float."""
    if isinstance(value, MultiValue | list | tuple):
        value = value[0] if len(value) else None
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _file_window(ds: Any, frame: int) -> tuple[float, float] | None:
    source = ds if "WindowCenter" in ds else _frame_item(ds, frame, "FrameVOILUTSequence")
    if source is None:
        return None
    center, width = _first(source.get("WindowCenter")), _first(source.get("WindowWidth"))
    if center is None or width is None or width < 1:
        return None
    return center, width


def _linear_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2.1 'LINEAR' VOI function onto 0..255."""
    if width < 1:
        raise ValueError("window width must be at least 1")
    scaled = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _full_range(values: np.ndarray) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.clip(np.rint((values - lo) / (hi - lo) * 255.0), 0, 255).astype(np.uint8)


def _to_8bit_color(arr: np.ndarray, bits: int) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    top = float(2 ** max(min(bits, 16), 1) - 1)
    return np.clip(np.rint(arr.astype(np.float64) / top * 255.0), 0, 255).astype(np.uint8)
