"""Scrub identifiers from the text of clinical notes, replacing them with typed placeholders.

Two sources of knowledge, applied in this order:

1. **What the patient's own records say** (``known=``): names, identifiers
   (MRN, SSN, licence, passport, insurance numbers), phone numbers, e-mail
   addresses, address lines, cities and postal codes, dates (the birth date,
   written in many formats), URLs. These are found case-insensitively, across
   any run of whitespace, and for identifiers and phone numbers whatever the
   separators (``999-97-5872``, ``999 97 5872`` and ``999975872`` are one SSN).
   :func:`healthnft.records.deid.fhir.known_identifiers` collects them from FHIR
   resources.
2. **Patterns**: e-mail addresses, URLs, IPv4/IPv6 addresses, SSNs, phone and
   fax numbers (US forms, and international ones written with ``+``), dates in
   numeric and written forms (ISO, ``3/4/2021``, ``04-03-21``, ``4 Mar 2021``,
   ``March 4th, 2021``, ``Mar 2021``, ``March 4``, ``04MAR2021``), record
   numbers after a label (``MRN: 12345``, ``acct #``, ``policy no.``, ``DL``,
   ``passport``…), UUIDs and other long id-like tokens, ZIP codes after a state
   or a "ZIP" label and every ZIP+4, street addresses with a common street
   suffix and P.O. boxes, ages over 89 (``92-year-old``, ``aged 95``, ``age:
   101``), and names after a title (``Dr.``, ``Mr.``, ``Mrs.``, ``Ms.``…), after a
   label (``Patient:``, ``Signed by:``, ``Mother:``…) or before a credential
   (``, MD``, ``, RN``).

Placeholders: ``[NAME]``, ``[DATE]``, ``[PHONE]``, ``[EMAIL]``, ``[URL]``,
``[IP]``, ``[SSN]``, ``[ID]``, ``[ADDRESS]``, ``[ZIP]`` and ``[AGE 90+]`` (HIPAA
Safe Harbor's single category for ages over 89). Years alone are kept (Safe
Harbor allows them); so are times of day.

What it cannot catch — read this before trusting its output:

- A name it was not told about that has no title, label or credential beside
  it: "seen with her husband John" keeps "John". Nicknames and misspellings of
  known names ("Bill" for William, "Schowalter" typed "Showalter") and
  accent variants ("Jose" for "José") are not caught either.
- Relatives, employers and other people named only in prose, unless their
  names were passed in ``known``.
- Places given without a pattern: a city, hospital, school or employer name that
  is not in ``known`` ("she works at the Acme plant in Springfield"), street
  addresses with an unusual suffix, foreign address formats.
- Dates written in words without digits ("the fourth of March"), relative
  dates ("last Tuesday"), and events that date a person ("since the 2013
  marathon bombing").
- Identifiers with no label and no distinctive shape (a 6-digit record number
  alone in a sentence looks like a lab value and is kept), vehicle plates,
  device serial numbers without a label, and account numbers in other scripts.
- Ages over 89 written in words ("ninety-two years old").
- Rare or unique facts (an occupation, a very rare disease, a famous event)
  that identify a person without being an identifier.

So it is a strong filter, not a guarantee: a note released for research after
scrubbing should still be reviewed (HIPAA's Safe Harbor also requires that the
releaser have no actual knowledge that what remains identifies the person).
It over-scrubs rather than under-scrubs: a known name that is also a word
("Brown", "Hope") is replaced wherever it stands, in any case — except names of
three letters or fewer, matched only as written ("Ed", not the "ED" of the
emergency department).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

#: The placeholder each kind of identifier becomes.
PLACEHOLDERS = {
    "NAME": "[NAME]",
    "DATE": "[DATE]",
    "PHONE": "[PHONE]",
    "EMAIL": "[EMAIL]",
    "URL": "[URL]",
    "IP": "[IP]",
    "SSN": "[SSN]",
    "ID": "[ID]",
    "ADDRESS": "[ADDRESS]",
    "ZIP": "[ZIP]",
    "AGE": "[AGE 90+]",
}

#: Kinds a caller may give known strings under (``known={"NAME": [...], ...}``).
KNOWN_KINDS = frozenset(PLACEHOLDERS) - {"AGE", "IP"}


@dataclass(frozen=True)
class Scrubbed:
    """The scrubbed text and how many replacements of each kind were made."""

    text: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


# -- known strings ----------------------------------------------------------------------------

_MONTHS = [
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
]  # fmt: skip
_MONTH_ABBR = [m[:3] for m in _MONTHS]


def date_variants(d: date) -> set[str]:
    """The ways a date is commonly written in notes (ISO, US, European, words, compact)."""
    y, m, dd = d.year, d.month, d.day
    yy = f"{y % 100:02d}"
    month, mon = _MONTHS[m - 1], _MONTH_ABBR[m - 1]
    out = {
        f"{y}-{m:02d}-{dd:02d}", f"{y}/{m:02d}/{dd:02d}", f"{y}{m:02d}{dd:02d}",
        f"{y}.{m:02d}.{dd:02d}",
    }  # fmt: skip
    for mm in {f"{m}", f"{m:02d}"}:
        for d2 in {f"{dd}", f"{dd:02d}"}:
            for sep in "/-.":
                for year in (str(y), yy):
                    out.add(f"{mm}{sep}{d2}{sep}{year}")  # US
                    out.add(f"{d2}{sep}{mm}{sep}{year}")  # European
    for d2 in {f"{dd}", f"{dd:02d}"}:
        for name in (month, mon, mon + "."):
            out |= {
                f"{name} {d2}, {y}", f"{name} {d2} {y}", f"{d2} {name} {y}",
                f"{d2}-{name}-{y}", f"{d2}-{name}-{yy}", f"{d2}{name}{y}",
                f"{name} {d2}",
            }  # fmt: skip
    return out


def _separator_tolerant(value: str) -> str | None:
    """A regex for an identifier that matches it whatever its separators (``-``, space, ``.``…)."""
    chars = [c for c in value if c.isalnum()]
    if len(chars) < 4:
        return None
    return r"[\s().\-/]*".join(re.escape(c) for c in chars)


def _phrase(value: str) -> str:
    """A regex for a name or address: words in order, any whitespace (and an optional ``.``)."""
    words = value.split()
    return r"\.?\s+".join(re.escape(w) for w in words)


def _guess_kind(value: str) -> str:
    v = value.strip()
    if "@" in v and "." in v.split("@")[-1]:
        return "EMAIL"
    if re.match(r"(?i)(https?://|www\.)", v):
        return "URL"
    if re.fullmatch(r"\d{3}-\d{2}-\d{4}", v):
        return "SSN"
    if _parse_iso_date(v) is not None:
        return "DATE"
    if re.fullmatch(r"\+?[\d\s().-]{7,}", v) and sum(c.isdigit() for c in v) >= 7:
        return "PHONE"
    if re.fullmatch(r"\d{5}(-\d{4})?", v):
        return "ZIP"
    if any(c.isdigit() for c in v) and not re.search(r"[A-Za-z]{3,}\s", v):
        return "ID"
    if re.match(r"\d+\s+\S", v):
        return "ADDRESS"
    return "NAME"


def _parse_iso_date(value: str) -> date | None:
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})(T.*)?", value.strip())
    if not m:
        return None
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


class KnownIdentifiers:
    """Identifiers known from the patient's own records, compiled once for many notes.

    Build it from a mapping of kind → strings (kinds in :data:`KNOWN_KINDS`) or
    from plain strings (the kind is guessed from the shape: an ISO date is a
    DATE, ``999-99-9999`` an SSN, digits a PHONE or an ID, words a NAME). A full
    name also adds each of its words of two letters or more; an ISO date adds
    every common way of writing it; an address line with a unit ("Suite 33") also
    adds the street part alone.
    """

    def __init__(self, known: Mapping[str, Iterable[str]] | Iterable[str] | None = None) -> None:
        self.values: dict[str, set[str]] = {k: set() for k in KNOWN_KINDS}
        self._regex: re.Pattern[str] | None = None
        self._kinds: list[str] = []
        if known is None:
            return
        if isinstance(known, Mapping):
            for kind, values in known.items():
                if kind not in KNOWN_KINDS:
                    raise ValueError(f"unknown identifier kind {kind!r}")
                for v in values:
                    self.add(kind, v)
        else:
            for v in known:
                self.add(_guess_kind(v), v)

    def add(self, kind: str, value: str) -> None:
        """Add one known string (and its derived forms)."""
        if kind not in KNOWN_KINDS:
            raise ValueError(f"unknown identifier kind {kind!r}")
        v = " ".join(str(value).split())
        if len(v) < 2:
            return
        self._regex = None
        bucket = self.values[kind]
        bucket.add(v)
        if kind == "NAME":
            words = (w.strip(".,") for w in v.split())
            bucket.update(w for w in words if len(w) >= 2 and w.lower() not in _NOT_NAME_WORDS)
        elif kind == "DATE":
            d = _parse_iso_date(v)
            if d is not None:
                bucket.update(date_variants(d))
        elif kind == "ADDRESS":
            m = re.match(
                r"(.+?)\s+(?:Suite|Ste\.?|Apt\.?|Apartment|Unit|Fl(?:oor)?\.?|#)\s*\S+$", v, re.I
            )
            if m:
                bucket.add(m.group(1))

    def __bool__(self) -> bool:
        return any(self.values.values())

    def _compiled(self) -> tuple[re.Pattern[str] | None, list[str]]:
        if self._regex is None and self:
            alternatives: list[tuple[int, str, str]] = []  # (length, kind, regex)
            for kind, values in self.values.items():
                for v in values:
                    if kind in ("ID", "PHONE", "SSN", "ZIP"):
                        rx = _separator_tolerant(v) or re.escape(v)
                        if kind == "PHONE":  # with its country code and bracketed area code
                            rx = r"(?:\+?1[\s.-]*)?\(?" + rx
                    else:
                        rx = _phrase(v)
                        if kind == "NAME" and len(v) <= 3:  # "Ed" the name, not "ED" the unit
                            rx = f"(?-i:{rx})"
                    alternatives.append((len(v), kind, rx))
            # Longest first, so "346 Marvin Divide Suite 33" wins over "Marvin".
            alternatives.sort(key=lambda a: -a[0])
            self._kinds = [k for _, k, _ in alternatives]
            body = "|".join(f"(?P<k{i}>{rx})" for i, (_, _, rx) in enumerate(alternatives))
            self._regex = re.compile(rf"(?<![A-Za-z0-9])(?:{body})(?![A-Za-z0-9])", re.IGNORECASE)
        return self._regex, self._kinds

    def scrub(self, text: str, counts: Counter[str]) -> str:
        regex, kinds = self._compiled()
        if regex is None:
            return text

        def repl(m: re.Match[str]) -> str:
            kind = kinds[int(m.lastgroup[1:])]  # type: ignore[index]
            counts[kind] += 1
            return PLACEHOLDERS[kind]

        return regex.sub(repl, text)


# -- patterns ---------------------------------------------------------------------------------

_MONTH_RX = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_MON_NUM = r"(?:0?[1-9]|1[0-2])"
_YEAR = r"(?:1[89]\d\d|2\d\d\d)"
_ORD = r"(?:st|nd|rd|th)?"

_STATES = (
    "Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|Florida|Georgia|"
    "Hawaii|Idaho|Illinois|Indiana|Iowa|Kansas|Kentucky|Louisiana|Maine|Maryland|Massachusetts|"
    "Michigan|Minnesota|Mississippi|Missouri|Montana|Nebraska|Nevada|New Hampshire|New Jersey|"
    "New Mexico|New York|North Carolina|North Dakota|Ohio|Oklahoma|Oregon|Pennsylvania|"
    "Rhode Island|South Carolina|South Dakota|Tennessee|Texas|Utah|Vermont|Virginia|Washington|"
    "West Virginia|Wisconsin|Wyoming|District of Columbia|Puerto Rico|"
    "AL|AK|AZ|AR|CA|CO|CT|DE|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|"
    "NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|DC|PR"
)
_STREET_SUFFIX = (
    "Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|"
    "Terrace|Ter|Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq|Trail|Trl|Alley|Aly|Crescent|"
    "Cres|Close|Row|Loop|Path|Pike|Plaza|Plz|Run|Walk|Crossing|Xing|Gateway|Manor|Heights|Hts|"
    "Ridge|Park|Point|Pt|Landing|Commons|Expressway|Expy|Freeway|Fwy|Turnpike|Tpke|Mall|Divide|"
    "Port|Rapids|Junction|Jct|View|Village|Vlg|Station|Sta"
)
_NAME_WORD = r"[A-Z][a-zA-Z'’\-]*\d*"
_TITLE = r"(?:Dr|Mr|Mrs|Ms|Mx|Miss|Prof|Rev|Sr|Fr|Sister|Nurse|Doctor)"
_CREDENTIAL = r"(?:MD|M\.D\.|DO|D\.O\.|RN|NP|PA-C|PA|PhD|DDS|DMD|PharmD|LPN|CNA|FNP|APRN|MBBS|DNP)"
_NAME_LABEL = (
    r"(?:patient(?:\s+name)?|pt(?:\s+name)?|name|signed\s+by|electronically\s+signed\s+by|"
    r"attending|attending\s+physician|physician|provider|pcp|author|dictated\s+by|"
    r"transcribed\s+by|referred\s+by|referring\s+(?:physician|provider)|cc|mother|father|"
    r"spouse|husband|wife|son|daughter|guardian|emergency\s+contact|contact|next\s+of\s+kin|nok)"
)
_ID_LABEL = (
    r"(?:MRN|MR\s*#|MR\s*no\.?|medical\s+record(?:\s+(?:number|no\.?|#))?|record\s*(?:#|no\.?|number)|"
    r"patient\s+id|pt\s+id|chart\s*(?:#|no\.?|number)|acct\.?|account(?:\s+(?:number|no\.?|#))?|"
    r"member\s+id|policy(?:\s+(?:number|no\.?|#))?|insurance\s+id|subscriber\s+id|group\s+(?:number|no\.?|#)|"
    r"claim\s*(?:#|no\.?|number)|encounter\s*(?:#|no\.?|number|id)|visit\s*(?:#|no\.?|number|id)|"
    r"license|licence|DL|driver'?s\s+licen[cs]e(?:\s+(?:number|no\.?|#))?|passport(?:\s+(?:number|no\.?|#))?|"
    r"NPI|DEA|serial(?:\s+(?:number|no\.?|#))?|device\s+id|plate|VIN|ID\s*#|ID)"
)

#: Words that are never names by themselves, even inside a known full name ("Mr. ...").
_NOT_NAME_WORDS = frozenset({
    "mr", "mrs", "ms", "mx", "miss", "dr", "prof", "rev", "sr", "jr", "ii", "iii", "iv",
    "md", "do", "rn", "np", "phd", "dds", "esq",
})  # fmt: skip


def _p(rx: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(rx, flags)


#: (kind, pattern), applied in this order after the known strings. A pattern with a group
#: named ``v`` replaces only that group (keeping "Dr. ", "MRN: ", ", MD").
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("EMAIL", _p(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+", re.ASCII)),
    # A URL ends before trailing punctuation ("see https://x.org/a.").
    ("URL", _p(r"(?i)\b(?:(?:https?|ftp)://|www\.)[^\s<>\"')\]]*[^\s<>\"')\].,;:!?]")),
    (
        "IP",
        _p(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])"),
    ),
    # IPv6: four or more groups (a time of day has at most three), or a "::".
    (
        "IP",
        _p(
            r"(?i)(?<![\w:])(?:(?:[0-9a-f]{1,4}:){3,7}[0-9a-f]{1,4}"
            r"|(?:[0-9a-f]{1,4}:){1,7}:(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,6})?"
            r"|::(?:[0-9a-f]{1,4}:?){1,7})(?![\w:])"
        ),
    ),
    ("SSN", _p(r"(?<!\d)\d{3}[- ]\d{2}[- ]\d{4}(?!\d)")),
    (
        "SSN",
        _p(
            r"(?i)\b(?:SSN|SS#|social\s+security(?:\s+(?:number|no\.?|#))?)\s*[:#]?\s*(?P<v>\d{9})\b"
        ),
    ),
    (
        "PHONE",
        _p(
            r"(?<![\w+])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s*|\d{3}[\s.-])\d{3}[\s.-]\d{4}"
            r"(?:\s*(?:x|ext\.?)\s*\d{1,6})?(?!\d)"
        ),
    ),
    ("PHONE", _p(r"(?<![\w+])\+\d{1,3}(?:[\s.-]?\(?\d{1,4}\)?){2,5}(?!\d)")),
    (
        "PHONE",
        _p(
            r"(?i)\b(?:phone|tel|telephone|call|cell|mobile|fax|pager|beeper|ph|contact)\b\.?"
            r"\s*[:#]?\s*(?:at\s+)?(?P<v>\d{3}[\s.-]\d{4})\b"
        ),
    ),
    (
        "DATE",
        _p(
            rf"\b{_YEAR}[-/.]{_MON_NUM}[-/.]{_DAY}"
            r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?(?!\d)"
        ),
    ),
    ("DATE", _p(rf"(?<![\d/.-]){_DAY}[-/.]{_DAY}[-/.](?:{_YEAR}|\d\d)(?![\d/-]|\.\d)")),
    ("DATE", _p(rf"(?<!\d){_YEAR}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?!\d)")),
    (
        "DATE",
        _p(
            rf"(?i)\b(?:{_DAY}{_ORD}\s+(?:of\s+)?{_MONTH_RX}\.?,?\s+{_YEAR}"
            rf"|{_MONTH_RX}\.?\s+{_DAY}{_ORD},?\s+{_YEAR}"
            rf"|{_DAY}[-\s]?{_MONTH_RX}[-\s]?(?:{_YEAR}|\d\d)"
            rf"|{_MONTH_RX}\.?,?\s+{_YEAR})(?!\d)"
        ),
    ),
    # Month and day without a year: the month name must be capitalized ("May 5"), so that
    # the verb "may" is left alone.
    ("DATE", _p(rf"\b{_MONTH_RX}\.?\s+{_DAY}{_ORD}\b(?!\s*(?:mg|mcg|ml|mL|%|units?)\b)")),
    ("DATE", _p(rf"\b{_DAY}{_ORD}\s+(?:of\s+)?{_MONTH_RX}\b")),
    ("DATE", _p(rf"(?<![\d/.-]){_MON_NUM}/{_YEAR}(?![\d/])")),
    ("ZIP", _p(r"(?<!\d)\d{5}-\d{4}(?!\d)")),
    ("ZIP", _p(rf"\b(?:{_STATES}),?\s+(?P<v>\d{{5}})(?!\d)")),
    ("ZIP", _p(r"(?i)\b(?:zip|zip\s*code|postal\s+code)\s*[:#]?\s*(?P<v>\d{5})(?!\d)")),
    (
        "ADDRESS",
        _p(
            rf"\b\d{{1,6}}[A-Z]?\s+(?:[NSEW]\.?\s+)?(?:{_NAME_WORD}\s+){{1,4}}"
            rf"(?:{_STREET_SUFFIX})\b\.?"
            r"(?:,?\s+(?:Suite|Ste\.?|Apt\.?|Apartment|Unit|#)\s*[A-Za-z0-9-]+)?"
        ),
    ),
    ("ADDRESS", _p(r"(?i)\bP\.?\s?O\.?\s+Box\s+\d+\b")),
    (
        "ID",
        _p(
            rf"(?i)\b{_ID_LABEL}\s*(?:[:#=]|\bis\b|\bno\.?)?\s*"
            r"(?P<v>(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{3,})\b"
        ),
    ),
    ("ID", _p(r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")),
    ("ID", _p(r"(?<![\w.,/-])\d{7,}(?![\w.,/-]|,\d|\.\d)")),
    (
        "AGE",
        _p(
            r"(?i)\b(?:9\d|1[0-4]\d)\s*-?\s*(?:years?|yrs?|y)\.?\s*-?\s*(?:old|o\.)(?!\w)"
            r"|\b(?:9\d|1[0-4]\d)\s*(?:yo|y/o|y\.o\.)(?!\w)"
            r"|\b(?:9\d|1[0-4]\d)\s*(?:years?|yrs?)\s+of\s+age\b"
            r"|\b(?:aged?|age\s*:)\s*(?:9\d|1[0-4]\d)\b"
        ),
    ),
    ("NAME", _p(rf"\b{_TITLE}\.?\s+(?P<v>{_NAME_WORD}(?:\s+(?:[A-Z]\.\s*)?{_NAME_WORD}){{0,2}})")),
    (
        "NAME",
        _p(
            rf"(?i:\b{_NAME_LABEL})\s*[:\-–]\s*"
            rf"(?P<v>{_NAME_WORD}(?:\s+(?:[A-Z]\.\s*)?{_NAME_WORD}){{0,3}})"
        ),
    ),
    (
        "NAME",
        _p(rf"\b(?P<v>{_NAME_WORD}(?:\s+(?:[A-Z]\.\s*)?{_NAME_WORD}){{0,3}}),?\s+{_CREDENTIAL}\b"),
    ),
]

#: Tokens that look like ids: 6+ characters, letters and at least 3 digits.
_ID_TOKEN = _p(
    r"(?<![\w\[])(?=[A-Za-z0-9-]*[A-Za-z])(?=(?:[A-Za-z-]*\d){3})"
    r"[A-Za-z0-9][A-Za-z0-9-]{5,}(?![\w\]])"
)
#: ...but not a number with a unit (1000mg) nor a short marker name (CA-125, HER2, CD34).
_NOT_AN_ID = _p(r"\d+(?:\.\d+)?[A-Za-z/%µ]+\d*|[A-Za-z]{1,5}-?\d{1,3}[A-Za-z]?")


def _replace(kind: str, pattern: re.Pattern[str], text: str, counts: Counter[str]) -> str:
    placeholder = PLACEHOLDERS[kind]
    partial = "v" in pattern.groupindex

    def repl(m: re.Match[str]) -> str:
        counts[kind] += 1
        if partial and m.group("v") is not None:
            whole = m.group(0)
            start, end = m.start("v") - m.start(), m.end("v") - m.start()
            return whole[:start] + placeholder + whole[end:]
        return placeholder

    return pattern.sub(repl, text)


def scrub_text(
    text: str,
    known: KnownIdentifiers | Mapping[str, Iterable[str]] | Iterable[str] | None = None,
) -> Scrubbed:
    """Replace identifiers in ``text`` with typed placeholders (see the module docstring).

    ``known`` is what the patient's records say (a :class:`KnownIdentifiers`, or
    what builds one); reuse a :class:`KnownIdentifiers` across many notes of one
    patient, since compiling it is the expensive part.
    """
    counts: Counter[str] = Counter()
    if known is not None and not isinstance(known, KnownIdentifiers):
        known = KnownIdentifiers(known)
    if known:
        text = known.scrub(text, counts)
    for kind, pattern in _PATTERNS:
        text = _replace(kind, pattern, text, counts)

    def id_token(m: re.Match[str]) -> str:
        token = m.group(0)
        if _NOT_AN_ID.fullmatch(token):
            return token
        counts["ID"] += 1
        return PLACEHOLDERS["ID"]

    text = _ID_TOKEN.sub(id_token, text)
    return Scrubbed(text=text, counts=dict(counts))
