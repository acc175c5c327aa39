"""Reading pack codes in the three forms a pharmacy meets, and each bad input's one error."""

from __future__ import annotations

import contextlib
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from healthnft.drugs.gs1 import (
    GS,
    Pack,
    digital_link,
    format_element_string,
    human_readable,
    parse_pack,
    to_human_readable,
)
from healthnft.errors import InvalidInput, TooLarge

#: GS1's own example GTIN (company prefix 950110153, "GS1 Global Office - examples").
GTIN = "09501101530003"
BAD_CHECK = "09501101530004"
PACK = Pack(gtin14=GTIN, serial="SER123", lot="LOT42", expiry=date(2027, 12, 31),
            expiry_raw="271231")  # fmt: skip

EQUIVALENT = [
    # What a 2D scanner sends: symbology identifier, FNC1 as GS after variable fields.
    f"]d201{GTIN}21SER123{GS}10LOT42{GS}17271231",
    f"]d201{GTIN}1727123110LOT42{GS}21SER123",
    f"]C101{GTIN}21SER123{GS}10LOT42{GS}17271231",  # the same from a GS1-128
    f"01{GTIN}21SER123{GS}10LOT42{GS}17271231{GS}",  # no identifier, trailing GS
    f"{GS}01{GTIN}21SER123{GS}10LOT42{GS}17271231",  # leading FNC1 sent as a GS
    f"01{GTIN}71012345678{GS}21SER123{GS}10LOT42{GS}17271231",  # extra AI 710 ignored
    # Printed under the code (spaces as on many packs).
    f"(01){GTIN}(21)SER123(10)LOT42(17)271231",
    f"(01) {GTIN} (17) 271231 (10) LOT42 (21) SER123",
    # GS1 Digital Link, lot in the path or the query, from a GS1 or a plain symbol.
    f"https://id.example.com/01/{GTIN}/21/SER123?10=LOT42&17=271231",
    f"https://id.example.com/prefix/01/{GTIN}/10/LOT42/21/SER123?17=271231&utm=x",
    f"]d1https://id.example.com/01/{GTIN}/21/SER123?10=LOT42&17=271231",
    f"]Q1https://id.example.com/01/{GTIN}/21/SER123?10=LOT42&17=271231",
]


@pytest.mark.parametrize("code", EQUIVALENT)
def test_every_form_reads_the_same_pack(code: str) -> None:
    assert parse_pack(code) == PACK


def test_day_00_is_the_last_day_of_the_month() -> None:
    pack = parse_pack(f"(01){GTIN}(21)S(10)L(17)280200")  # 2028 is a leap year
    assert pack.expiry == date(2028, 2, 29) and pack.expiry_raw == "280200"


def test_a_gtin_13_in_a_digital_link_is_padded_to_14_digits() -> None:
    assert parse_pack(f"https://x.org/01/{GTIN[1:]}/21/S?10=L&17=271231").gtin14 == GTIN


def test_written_codes_read_back() -> None:
    element_string = format_element_string(PACK)
    assert element_string == f"]d201{GTIN}1727123110LOT42{GS}21SER123"
    assert human_readable(PACK) == f"(01){GTIN}(17)271231(10)LOT42(21)SER123"
    assert digital_link(PACK, domain="id.example.com") == (
        f"https://id.example.com/01/{GTIN}/10/LOT42/21/SER123?17=271231")  # fmt: skip
    for code in (element_string, human_readable(PACK), digital_link(PACK)):
        assert parse_pack(code) == PACK
    assert to_human_readable(element_string) == human_readable(PACK)


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("", "empty"),
        ("garbage", "expected a GS1 Application Identifier"),
        ("(01)0950110153000(21)S(10)L(17)271231", "GTIN (AI 01) does not have the GS1 format"),
        (f"(01){GTIN}(21)S(10)L(17)271231)", "expected (AI)value"),
        ("]", "unknown symbology identifier"),
        (f"]E001{GTIN}", "non-GS1 code"),
        ("https://id.example.com/99/x", "malformed GS1 Digital Link URI"),
        (f"https://id.example.com/01/{GTIN}/21", "malformed GS1 Digital Link URI"),
    ],
)
def test_malformed_codes(code: str, words: str) -> None:
    with pytest.raises(InvalidInput, match="malformed|empty") as raised:
        parse_pack(code)
    assert words in str(raised.value)


@pytest.mark.parametrize(
    "code",
    [
        f"(01){BAD_CHECK}(21)S(10)L(17)271231",
        f"]d201{BAD_CHECK}21S{GS}10L{GS}17271231",
        f"https://id.example.com/01/{BAD_CHECK}/21/S?10=L&17=271231",
    ],
)
def test_a_bad_gtin_check_digit(code: str) -> None:
    with pytest.raises(InvalidInput, match=r"bad GTIN check digit \(AI 01\)"):
        parse_pack(code)


@pytest.mark.parametrize(
    "code",
    [
        f"(01){GTIN}(21)S(23)L(17)271231",  # 23 is not a GS1 AI
        f"01{GTIN}21S{GS}2399{GS}10L{GS}17271231",
    ],
)
def test_an_unknown_application_identifier(code: str) -> None:
    with pytest.raises(InvalidInput, match="unknown GS1 Application Identifier at character"):
        parse_pack(code)


def test_a_missing_separator_is_hinted_at() -> None:
    # Without a GS the serial swallows the next fields (up to its 20 characters).
    with pytest.raises(InvalidInput, match="separator missing"):
        parse_pack(f"01{GTIN}21SER12310LOT4217271231")


@pytest.mark.parametrize("expiry", ["271331", "270230", "270001", "27AB12"])
@pytest.mark.parametrize("form", ["element", "hri", "link"])
def test_an_impossible_expiry(expiry: str, form: str) -> None:
    code = {
        "element": f"]d201{GTIN}17{expiry}10L{GS}21S",
        "hri": f"(01){GTIN}(17){expiry}(10)L(21)S",
        "link": f"https://id.example.com/01/{GTIN}/21/S?10=L&17={expiry}",
    }[form]
    with pytest.raises(InvalidInput, match=r"impossible expiry date \(AI 17\)"):
        parse_pack(code)


@pytest.mark.parametrize(
    ("code", "missing"),
    [
        (f"(01){GTIN}(10)L(17)271231", "serial number (AI 21)"),
        (f"(01){GTIN}(21)S(17)271231", "batch/lot number (AI 10)"),
        (f"(01){GTIN}(21)S(10)L", "expiry date (AI 17)"),
        ("(21)S(10)L(17)271231", "GTIN (AI 01)"),
        (f"https://id.example.com/01/{GTIN}/21/S?17=271231", "batch/lot number (AI 10)"),
    ],
)
def test_a_missing_application_identifier(code: str, missing: str) -> None:
    with pytest.raises(InvalidInput, match="incomplete pack code") as raised:
        parse_pack(code)
    assert missing in str(raised.value)


def test_a_required_ai_twice_with_different_values() -> None:
    with pytest.raises(InvalidInput, match=r"contradictory.*serial number \(AI 21\)"):
        parse_pack(f"(01){GTIN}(21)A(21)B(10)L(17)271231")


def test_errors_never_echo_the_code() -> None:
    for code in (f"(01){BAD_CHECK}(21)SECRET1(10)L(17)271231",
                 f"(01){GTIN}(21)SECRET1(10)L(17)271399"):  # fmt: skip
        with pytest.raises(InvalidInput) as raised:
            parse_pack(code)
        assert "SECRET1" not in str(raised.value) and BAD_CHECK not in str(raised.value)


def test_an_oversized_code_is_refused_before_parsing() -> None:
    with pytest.raises(TooLarge):
        parse_pack("01" + "9" * 5000)


def test_a_pack_that_cannot_be_written() -> None:
    too_long_lot = Pack(GTIN, "S", "L" * 21, date(2027, 12, 31), "271231")
    with pytest.raises(InvalidInput, match=r"batch/lot number \(AI 10\)"):
        format_element_string(too_long_lot)


_PIECES = st.sampled_from(["]d2", "]C1", "]Q1", "]", "(01)", "(17)", "(10)", "(21)", "01", "17",
                           "10", "21", GS, GTIN, "271231", "https://x.org/01/", "/21/", "?17=",
                           "&10=", "("])  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES | st.text(max_size=3), max_size=12).map("".join))
def test_any_text_is_a_pack_or_one_invalid_input(text: str) -> None:
    with contextlib.suppress(InvalidInput):  # any other exception fails the test
        parse_pack(text)
