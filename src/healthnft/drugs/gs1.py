"""Read what a pack's scanner gives into a :class:`Pack`, and write a pack's codes back.

Three inputs are accepted, the ones a pharmacy meets (issue 15, point 3):

- the GS1 element string a 2D scanner sends: ``]d2`` (or ``]C1``, ``]Q3``...) then
  ``01…21…<GS>10…<GS>17…`` with the group separator ``\\x1d`` standing for FNC1 after a
  variable-length field;
- the human-readable interpretation printed under the code: ``(01)…(21)…(10)…(17)…``;
- a GS1 Digital Link URI: ``https://id.example.com/01/…/21/…?10=…&17=…``.

**biip** does the GS1 work: the Application Identifier (AI) table and each AI's format,
the symbology identifiers, the GTIN check digit (``biip.checksums``), Digital Link paths
and query strings, and the expiry date — GS1's "day 00 is the last day of the month" and
the sliding century of the GS1 General Specifications (§7.12) included. Nothing here
lists AIs or formats.

Written by hand, and why:

- choosing which of the three forms a text is: ``biip.parse`` does not try the
  human-readable form, and ignores a Digital Link behind a non-GS1 symbology identifier
  (``]Q1``, how a phone reports a plain QR code);
- walking an element string one AI at a time with biip's own extractors, only so that
  an error says *what* is wrong (an unknown AI, a field's format, an impossible expiry)
  in one clear sentence — without echoing the code's values, as ``errors.py`` asks;
- requiring AIs 01, 21, 10 and 17, each once: that is our rule for a medicine pack
  (EU FMD / DSCSA product identifier), not a GS1 one.

Other AIs a real pack may carry (e.g. 710–715 national reimbursement numbers, 11
production date) are accepted and ignored; an AI GS1 does not define is refused. In a
Digital Link, query parameters that are not AIs are ignored, as the Digital Link
standard says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from urllib.parse import parse_qs, urlsplit

from biip import ParseConfig, ParseError
from biip.checksums import gs1_standard_check_digit
from biip.gs1_application_identifiers import GS1ApplicationIdentifier
from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from biip.gs1_element_strings import GS1ElementString, GS1ElementStrings
from biip.gs1_messages import GS1Message
from biip.symbology import GS1Symbology, SymbologyIdentifier

from healthnft.errors import InvalidInput, TooLarge

#: The group separator (ASCII 29) that scanners send for FNC1 between fields.
GS = "\x1d"

#: The symbology identifier of a GS1 DataMatrix (ISO/IEC 15424), put before the element
#: string by :func:`format_element_string` as a scanner would.
GS1_DATAMATRIX = "]d2"

#: The AIs a medicine pack must carry, with the words errors use for each.
REQUIRED_AIS: dict[str, str] = {
    "01": "GTIN",
    "21": "serial number",
    "10": "batch/lot number",
    "17": "expiry date",
}

#: The order codes are written in: fixed-length fields first, so that only the lot needs
#: a separator (the shortest symbol; GS1 General Specifications §5.4.7.7).
_WRITE_ORDER = ("01", "17", "10", "21")

#: Longer than any real pack code (a DataMatrix element string or a Digital Link URI):
#: refused before any parsing.
MAX_CODE_LENGTH = 1024

#: Dates are checked here (to say "impossible expiry"), not inside biip (which would
#: raise its own message, with the value in it).
_CONFIG = ParseConfig(gs1_element_strings_verify_date=False)

_HRI_FORM = re.compile(r"(?:\(\d+\)[^()]*)+")
_HRI_FIELD = re.compile(r"\((\d+)\)([^()]*)")


@dataclass(frozen=True)
class Pack:
    """A medicine pack's product identifier, as read from its code.

    ``expiry`` is the date the pack may last be used (a day ``00`` already turned into
    the month's last day); ``expiry_raw`` keeps the six digits as printed, which is what
    the manufacturer commissioned and what codes are written back with.
    """

    gtin14: str
    serial: str
    lot: str
    expiry: date
    expiry_raw: str


def parse_pack(code: str) -> Pack:
    """The pack a scanned or typed ``code`` names, or :class:`InvalidInput` saying why not.

    Raises ``InvalidInput`` for a malformed code, an unknown AI, a wrong GTIN check
    digit, an impossible expiry, a missing or contradictory required AI; ``TooLarge`` for
    a text longer than any pack code.
    """
    if len(code) > MAX_CODE_LENGTH:
        raise TooLarge(f"pack code is longer than {MAX_CODE_LENGTH} characters")
    text = code.strip()
    if not text:
        raise InvalidInput("malformed pack code: it is empty")
    body, symbology = _strip_symbology(text)
    if body.startswith("("):
        elements = _from_hri(body)
    elif body.lower().startswith(("https://", "http://")):
        elements = _from_digital_link(body)
    elif symbology is not None and symbology.gs1_symbology not in (
        GS1Symbology.with_gs1_messages()
    ):
        raise InvalidInput(
            f"malformed pack code: the scanner reports a non-GS1 code ({symbology.value}), "
            "not a GS1 DataMatrix"
        )
    else:
        elements = _from_element_string(body)
    return _pack(elements)


def format_element_string(pack: Pack, *, symbology_identifier: bool = True) -> str:
    """The element string of ``pack`` as a scanner sends it (``]d2`` + ``01…17…10…<GS>21…``).

    The inverse of :func:`parse_pack`; also used to make test and demo codes. A wrong
    check digit or a day that does not exist (30 February) is written as given, so tests
    can make bad codes; a value outside its AI's format is refused.
    """
    value = GS1Message.from_element_strings(_element_strings(pack)).value
    return (GS1_DATAMATRIX + value) if symbology_identifier else value


def human_readable(pack: Pack) -> str:
    """The human-readable interpretation printed under the code: ``(01)…(17)…(10)…(21)…``."""
    return GS1Message.from_element_strings(_element_strings(pack)).as_hri()


def digital_link(pack: Pack, *, domain: str = "id.gs1.org") -> str:
    """The GS1 Digital Link URI of ``pack`` (``https://domain/01/…/10/…/21/…?17=…``)."""
    return GS1DigitalLinkURI.from_element_strings(_element_strings(pack)).as_uri(domain=domain)


def to_human_readable(code: str) -> str:
    """The human-readable form of a GS1 element string (``]d2`` and GS allowed) or of a
    human-readable code (returned as biip normalises it), without the pack checks of
    :func:`parse_pack`, so that deliberately bad test codes can still be drawn."""
    body, _ = _strip_symbology(code.strip())
    try:
        if body.startswith("("):
            return GS1Message.parse_hri(body, config=_CONFIG).as_hri()
        return GS1Message.parse(body, config=_CONFIG).as_hri()
    except ParseError:
        raise InvalidInput("malformed GS1 element string: it cannot be encoded") from None


# -- reading ---------------------------------------------------------------------------


def _strip_symbology(text: str) -> tuple[str, SymbologyIdentifier | None]:
    """Split a leading symbology identifier (``]d2``...) off ``text`` (biip reads it)."""
    if not text.startswith("]"):
        return text, None
    try:
        symbology = SymbologyIdentifier.extract(text)
    except (ParseError, IndexError, ValueError):  # biip raises these two for "]", "]Y("
        raise InvalidInput("malformed pack code: unknown symbology identifier") from None
    return text[len(symbology) :], symbology


def _from_element_string(body: str) -> list[GS1ElementString]:
    """Each element of an element string, in order (biip extracts each one)."""
    elements: list[GS1ElementString] = []
    rest = body.lstrip(GS)  # some scanners send the leading FNC1 as a GS
    while rest:
        element = _element(rest, position=len(body) - len(rest), whole=False, gs_hint=True)
        elements.append(element)
        rest = rest[len(element) :].lstrip(GS)
    return elements


def _from_hri(body: str) -> list[GS1ElementString]:
    """Each ``(AI)value`` of the human-readable form (biip parses each field)."""
    hri = "".join(body.split())  # printed codes are often spaced; GS1 values hold no space
    if not _HRI_FORM.fullmatch(hri):
        raise InvalidInput("malformed pack code: expected (AI)value(AI)value…")
    elements = []
    for match in _HRI_FIELD.finditer(hri):
        ai, value = match.groups()
        elements.append(_element(ai + value, position=match.start(), whole=True, ai=ai))
    return elements


def _from_digital_link(uri: str) -> list[GS1ElementString]:
    """The elements of a GS1 Digital Link URI (biip parses path and query)."""
    try:
        elements = list(GS1DigitalLinkURI.parse(uri, config=_CONFIG).element_strings)
    except ParseError:
        # Say "impossible expiry" when that is the cause, as for the other forms.
        for expiry in parse_qs(urlsplit(uri).query).get("17", []):
            _element("17" + expiry, position=0, whole=True, ai="17")
        raise InvalidInput(
            "malformed GS1 Digital Link URI: expected https://host/01/<GTIN-14>"
            "[/10/<lot>]/21/<serial>?17=<YYMMDD>, each value in its GS1 format"
        ) from None
    for element in elements:
        _check_date(element)
    return elements


def _element(
    text: str, *, position: int, whole: bool, ai: str | None = None, gs_hint: bool = False
) -> GS1ElementString:
    """One element string at the start of ``text`` (all of it when ``whole``), parsed
    by biip; a failure becomes one clear sentence naming the AI, never the value."""
    if not text[:2].isdigit():
        raise InvalidInput(
            f"malformed pack code: expected a GS1 Application Identifier at character "
            f"{position + 1}"
        )
    try:
        found = GS1ApplicationIdentifier.extract(text)
    except ParseError:
        found = None
    if found is None or (ai is not None and found.ai != ai):
        hint = " (or a FNC1/GS separator missing after a variable-length field)"
        raise InvalidInput(
            f"unknown GS1 Application Identifier at character {position + 1} of the "
            "pack code" + (hint if gs_hint and position else "")
        )
    try:
        element = (GS1ElementString.parse if whole else GS1ElementString.extract)(
            text, config=_CONFIG
        )
    except ParseError:
        if found.ai == "17":
            raise _impossible_expiry() from None
        raise InvalidInput(
            f"malformed pack code: the {_title(found)} (AI {found.ai}) does not have the "
            f"GS1 format {found.format}"
        ) from None
    _check_date(element)
    return element


def _check_date(element: GS1ElementString) -> None:
    if element.ai.ai == "17" and element.date is None:
        raise _impossible_expiry()


def _impossible_expiry() -> InvalidInput:
    return InvalidInput(
        "impossible expiry date (AI 17): expected YYMMDD with a real month and day "
        "(day 00 means the end of the month)"
    )


def _title(ai: GS1ApplicationIdentifier) -> str:
    return REQUIRED_AIS.get(ai.ai, ai.data_title)


def _pack(elements: list[GS1ElementString]) -> Pack:
    """The pack the elements name: each required AI once, a valid GTIN check digit."""
    by_ai: dict[str, GS1ElementString] = {}
    for element in elements:
        earlier = by_ai.setdefault(element.ai.ai, element)
        if earlier.value != element.value:
            raise InvalidInput(
                f"contradictory pack code: the {_title(element.ai)} (AI {element.ai.ai}) "
                "appears twice with different values"
            )
    missing = [f"the {title} (AI {ai})" for ai, title in REQUIRED_AIS.items() if ai not in by_ai]
    if missing:
        raise InvalidInput(
            "incomplete pack code: missing " + ", ".join(missing) + " (a scanner that drops "
            "the FNC1/GS separators merges a variable-length field with the next one)"
        )
    gtin = by_ai["01"].value
    if gs1_standard_check_digit(gtin[:-1]) != int(gtin[-1]):
        raise InvalidInput(
            "bad GTIN check digit (AI 01): the code was misread or is not a genuine code"
        )
    expiry = by_ai["17"]
    assert expiry.date is not None  # _check_date refused an impossible one
    return Pack(
        gtin14=gtin,
        serial=by_ai["21"].value,
        lot=by_ai["10"].value,
        expiry=expiry.date,
        expiry_raw=expiry.value,
    )


# -- writing ---------------------------------------------------------------------------


def _element_strings(pack: Pack) -> GS1ElementStrings:
    """The pack's four elements in writing order, each checked against its format."""
    values = {"01": pack.gtin14, "17": pack.expiry_raw, "10": pack.lot, "21": pack.serial}
    elements = GS1ElementStrings()
    for ai in _WRITE_ORDER:
        try:
            elements.append(GS1ElementString.parse(ai + values[ai], config=_CONFIG))
        except ParseError:
            raise InvalidInput(
                f"cannot write the pack code: the {REQUIRED_AIS[ai]} (AI {ai}) does not "
                "have its GS1 format"
            ) from None
    return elements
