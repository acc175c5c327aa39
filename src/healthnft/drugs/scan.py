"""Decode a photo of a pack's DataMatrix into the text a scanner sends; draw a DataMatrix.

**zxing-cpp** (module ``zxingcpp``) finds and decodes the symbol — turned, tilted,
inverted or small — and reports GS1 content the way a hand scanner does: the symbology
identifier ``]d2`` for a GS1 DataMatrix (FNC1 in first position; ``]d1`` for a plain
one, e.g. holding a Digital Link URI), and, in ``TextMode.Plain``, the raw data with the
group separator ``\\x1d`` for each FNC1. So :func:`read_code` returns exactly what
:func:`healthnft.drugs.gs1.parse_pack` reads from a scanner. **Pillow** opens the
picture. zxing-cpp also draws: ``create_barcode(..., gs1=True)`` (its zint-based writer)
encodes a human-readable GS1 string as a GS1 DataMatrix, which is how the tests and the
demo make pack images — no libdmtx or Ghostscript needed.

Written here: the size limits, the rule "one DataMatrix per picture", and the error
sentences (an image that cannot be read is one ``InvalidInput``, nothing else).
"""

from __future__ import annotations

import io
import warnings

import zxingcpp
from PIL import Image, UnidentifiedImageError

from healthnft.drugs.gs1 import to_human_readable
from healthnft.errors import InvalidInput, TooLarge

#: A phone photo is a few MB; anything much larger is refused before it is decoded.
MAX_IMAGE_BYTES = 25 * 1024 * 1024
#: 50 megapixels: larger than any phone camera's picture, far below a decompression bomb.
MAX_PIXELS = 50_000_000

_DATAMATRIX = zxingcpp.BarcodeFormat.DataMatrix


def read_code(image: bytes) -> str:
    """The code in a picture of one pack's DataMatrix: symbology identifier + data
    (``]d2`` + ``01…21…\\x1d10…``), ready for :func:`healthnft.drugs.gs1.parse_pack`.

    Raises ``InvalidInput`` when the bytes are not a picture, hold no readable
    DataMatrix, or hold several different ones; ``TooLarge`` over the size limits.
    """
    if len(image) > MAX_IMAGE_BYTES:
        raise TooLarge(f"image is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB")
    picture = _open(image)
    found = zxingcpp.read_barcodes(picture, formats=_DATAMATRIX, text_mode=zxingcpp.TextMode.Plain)
    codes = sorted({code.symbology_identifier + code.text for code in found if code.valid})
    if not codes:
        raise InvalidInput(
            "unreadable image: no DataMatrix code could be read in the picture (photograph "
            "the code whole, sharp and well lit)"
        )
    if len(codes) > 1:
        raise InvalidInput(
            f"the picture holds {len(codes)} different DataMatrix codes: photograph one pack "
            "at a time"
        )
    return codes[0]


def datamatrix_png(code: str, *, scale: int = 4) -> bytes:
    """A PNG of the DataMatrix a pack would carry for ``code``.

    ``code`` is a GS1 element string (``]d2`` and GS separators allowed) or its
    human-readable form — drawn as a GS1 DataMatrix — or a Digital Link URI, drawn as a
    plain DataMatrix holding the URI. Values are not checked (tests draw bad codes too).
    """
    text = code.strip()
    try:
        if text.lower().startswith(("https://", "http://")):
            barcode = zxingcpp.create_barcode(text, _DATAMATRIX)
        else:
            barcode = zxingcpp.create_barcode(to_human_readable(text), _DATAMATRIX, gs1=True)
    except ValueError:
        raise InvalidInput("cannot draw this code as a DataMatrix") from None
    picture = Image.fromarray(zxingcpp.write_barcode_to_image(barcode, scale=scale))
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


def _open(image: bytes) -> Image.Image:
    """The picture, in grey levels, or the error saying why it cannot be opened."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(image)) as opened:
                if opened.width * opened.height > MAX_PIXELS:
                    raise TooLarge(f"image has more than {MAX_PIXELS:,} pixels")
                return opened.convert("L")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise TooLarge(f"image has more than {MAX_PIXELS:,} pixels") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise InvalidInput(
            "unreadable image: not a picture in a format that can be opened (PNG, JPEG...)"
        ) from None
