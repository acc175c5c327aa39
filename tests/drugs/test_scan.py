"""DataMatrix images drawn in the test and decoded back; pictures that hold no code."""

from __future__ import annotations

import io
import random
from datetime import date

import pytest
import zxingcpp
from PIL import Image

from healthnft.drugs.gs1 import GS, Pack, digital_link, format_element_string, parse_pack
from healthnft.drugs.scan import datamatrix_png, read_code
from healthnft.errors import InvalidInput, TooLarge

PACK = Pack(gtin14="09501101530003", serial="SER-42/7", lot="LOT42", expiry=date(2027, 12, 31),
            expiry_raw="271231")  # fmt: skip


def _png(picture: Image.Image, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    picture.save(out, format=fmt)
    return out.getvalue()


def test_a_gs1_datamatrix_reads_back_as_the_scanner_string() -> None:
    code = read_code(datamatrix_png(format_element_string(PACK)))
    assert code == format_element_string(PACK)  # "]d2", FNC1 kept as GS
    assert code.startswith("]d2") and GS in code
    assert parse_pack(code) == PACK


def test_a_photo_like_picture_still_reads() -> None:
    """Turned, shrunk onto a grey background, saved as JPEG: what a phone sends."""
    symbol = Image.open(io.BytesIO(datamatrix_png(format_element_string(PACK), scale=6)))
    photo = Image.new("L", (480, 360), 200)
    photo.paste(symbol.rotate(17, expand=True, fillcolor=255), (120, 60))
    assert parse_pack(read_code(_png(photo.convert("RGB"), "JPEG"))) == PACK


def test_a_digital_link_in_a_plain_datamatrix() -> None:
    link = digital_link(PACK, domain="id.example.com")
    code = read_code(datamatrix_png(link))
    # "]d1" or, when the writer chose an ECI for the "%" of the escaped "/", "]d7".
    assert code[:2] == "]d" and code[3:] == link and parse_pack(code) == PACK


def test_the_human_readable_form_draws_the_same_symbol() -> None:
    assert datamatrix_png("(01)09501101530003(17)271231(10)LOT42(21)SER-42/7") == datamatrix_png(
        format_element_string(PACK)
    )


@pytest.mark.parametrize("kind", ["blank", "noise", "other code"])
def test_a_picture_without_a_datamatrix_is_one_clear_error(kind: str) -> None:
    if kind == "blank":
        picture = Image.new("L", (300, 300), 255)
    elif kind == "noise":
        rng = random.Random(15)
        picture = Image.frombytes("L", (300, 300), bytes(rng.getrandbits(8) for _ in range(90000)))
    else:  # a QR code is not what a pack carries
        qr = zxingcpp.create_barcode("hello", zxingcpp.BarcodeFormat.QRCode)
        picture = Image.fromarray(zxingcpp.write_barcode_to_image(qr, scale=4))
    with pytest.raises(InvalidInput, match="unreadable image: no DataMatrix code"):
        read_code(_png(picture))


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n broken"])
def test_bytes_that_are_not_a_picture(data: bytes) -> None:
    with pytest.raises(InvalidInput, match="unreadable image: not a picture"):
        read_code(data)


def test_two_different_packs_in_one_picture() -> None:
    other = Pack(PACK.gtin14, "OTHER", PACK.lot, PACK.expiry, PACK.expiry_raw)
    left, right = (Image.open(io.BytesIO(datamatrix_png(format_element_string(p))))
                   for p in (PACK, other))  # fmt: skip
    both = Image.new("L", (left.width + right.width + 40, left.height + 20), 255)
    both.paste(left, (10, 10))
    both.paste(right, (left.width + 30, 10))
    with pytest.raises(InvalidInput, match="2 different DataMatrix codes"):
        read_code(_png(both))


def test_a_huge_picture_is_refused_before_decoding() -> None:
    with pytest.raises(TooLarge):
        read_code(_png(Image.new("1", (8000, 8000), 1)))


def test_a_code_that_cannot_be_drawn() -> None:
    with pytest.raises(InvalidInput, match="malformed GS1 element string"):
        datamatrix_png("not gs1")
