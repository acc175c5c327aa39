"""SMART Health Cards: read, verify and export signed, portable health records.

A SMART Health Card (https://spec.smarthealth.cards) is a compact JWS signed by the
issuer with ES256 on P-256. Its header is ``{"zip":"DEF","alg":"ES256","kid":…}``
(``kid`` = RFC 7638 thumbprint of the issuer key) and its payload is the *raw* DEFLATE
(no zlib header) of minified JSON claims::

    {"iss": <issuer URL>, "nbf": <seconds>, "vc": {"type": ["https://smarthealth.cards#health-card"],
     "credentialSubject": {"fhirVersion": "4.0.1", "fhirBundle": <Bundle collection>}}}

A card travels as a ``.smart-health-card`` file (``{"verifiableCredential": [jws, …]}``)
or as a QR code ``shc:/<digits>`` (each JWS character as two digits ``ord(c) - 45``);
the deprecated chunked form ``shc:/<i>/<n>/<digits>`` is still read.

Trust is explicit and offline-first: a :class:`TrustStore` maps each trusted ``iss`` to
its published material (``.well-known/jwks.json`` and ``.well-known/crl/<kid>.json``),
read from a local folder (:class:`FolderIssuer`). Only when the verifier opts in
(``TrustStore(fetch=HttpIssuer)``, ``healthnft shc verify --fetch-keys``) is an issuer
missing from the store looked up where the spec publishes it, ``<iss>/.well-known/…``
(:class:`HttpIssuer`: HTTPS only, short timeout, size cap, no redirects). A fetched key
proves only that whoever controls the ``iss`` URL signed the card; whether to trust that
issuer is still the verifier's decision, so the verdict names it.

:func:`verify_card` never raises for a bad card: it returns a :class:`CardVerification`
whose one-line ``reason`` says why. Reasons name checks, keys and positions, never
health data. Cards exported by :func:`export_card` go through the very same code path.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson
import segno
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwcrypto import jwk, jws
from jwcrypto.common import JWException

from healthnft.errors import CredentialRejected, InputNotFound, InvalidRecord
from healthnft.records.fhir import SourceResource, validate

__all__ = [
    "FHIR_VERSION",
    "HEALTH_CARD_TYPE",
    "CardVerification",
    "ExportedCard",
    "FolderIssuer",
    "HttpIssuer",
    "IssuerSource",
    "TrustStore",
    "build_bundle",
    "decode_qr",
    "encode_qr",
    "export_card",
    "new_issuer_key",
    "public_jwk",
    "read_card_inputs",
    "verify_card",
]

#: The credential type every SMART Health Card carries in ``vc.type``.
HEALTH_CARD_TYPE = "https://smarthealth.cards#health-card"
#: The FHIR version written into exported cards (resources are validated with R4B models,
#: which read R4 as the rest of healthnft does).
FHIR_VERSION = "4.0.1"
#: Bundle types accepted in ``credentialSubject.fhirBundle``. The spec's examples and our
#: export use ``collection``; since VCI 1.3.0 the spec allows any Bundle.type, so this is a
#: deliberate local restriction that can be widened here.
ACCEPTED_BUNDLE_TYPES = frozenset({"collection"})
#: Tolerated clock difference between issuer and verifier for ``nbf``/``exp``.
CLOCK_SKEW_SECONDS = 300
#: Upper bounds that keep hostile input cheap: a JWS (a V22 QR holds 1195 characters;
#: files may carry larger cards) and the inflated payload (a "zip bomb" stops here).
MAX_JWS_CHARS = 256 * 1024
MAX_PAYLOAD_BYTES = 1024 * 1024
#: Largest input file read by :func:`read_card_inputs`.
MAX_INPUT_BYTES = 16 * 1024 * 1024
#: QR limits from the spec: one QR (version 22, error level L) holds a JWS of up to 1195
#: characters; longer JWS are split in balanced chunks of at most 1191 characters.
QR_SINGLE_MAX_CHARS = 1195
QR_CHUNK_MAX_CHARS = 1191
QR_PREFIX = "shc:/"

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_KID = re.compile(r"[A-Za-z0-9_-]{1,128}")
#: ``rid``: base64url alphabet, at most 24 characters (spec, "Revocation").
_RID = re.compile(r"[A-Za-z0-9_-]{1,24}")
_QR = re.compile(r"(?i:shc:/)(?:([0-9]{1,4})/([0-9]{1,4})/)?([0-9]*)")
#: CRL timestamp suffix: seconds since the epoch, optionally fractional.
_CRL_STAMP = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?")
_CARD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
#: Largest two-digit value in the numeric QR encoding: ``ord("z") - 45``.
_QR_MAX_PAIR = ord("z") - 45
_SIGNATURE_BYTES = 64  # ES256 in JOSE: r || s, 32 bytes each (RFC 7518 §3.4)
#: Fetching an issuer's keys: the whole exchange must finish within this many seconds
#: (a verifier waits on it; a slow or hostile server must not hold it up) ...
FETCH_TIMEOUT_SECONDS = 5.0
#: ... and a JWK set or CRL larger than this is refused unread (the spec's example JWK
#: set is under 3 KB; a CRL lists short rids).
MAX_FETCH_BYTES = 512 * 1024
#: Hosts that may be fetched over plain HTTP: this machine only (local mirrors, tests).
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


# --------------------------------------------------------------------------- trust store


class IssuerSource(Protocol):
    """The published key material of one issuer.

    Two ship with healthnft: :class:`FolderIssuer` (a local copy, offline) and
    :class:`HttpIssuer` (fetched from ``<iss>/.well-known/…``). A source may raise
    :class:`CredentialRejected` when its material cannot be had; :func:`verify_card`
    turns that into the card's refusal reason.
    """

    def jwks(self) -> Mapping[str, Any]:
        """The issuer's JWK set (``{"keys": [...]}``)."""
        ...

    def crl(self, kid: str) -> Mapping[str, Any] | None:
        """The revocation list of key ``kid``, or ``None`` when the issuer publishes none."""
        ...


class FolderIssuer:
    """An issuer's ``.well-known`` files copied to a local folder.

    ``root/.well-known/jwks.json`` and every ``root/.well-known/crl/<kid>.json`` are read
    and checked here, so a broken trust entry fails at start-up with
    :class:`CredentialRejected` naming the file, never halfway through a verification
    (where it would look like a problem of the card).
    """

    def __init__(self, root: Path) -> None:
        self.root = root = Path(root)
        if not root.is_dir():
            raise InputNotFound(f"{root}: trusted issuer folder not found")
        jwks_path = root / ".well-known" / "jwks.json"
        if not jwks_path.is_file():
            raise CredentialRejected(f"{root}: no .well-known/jwks.json in trusted issuer folder")
        keys = _read_trust_json(jwks_path)
        _check_jwks_shape(keys, str(jwks_path))
        crls: dict[str, Mapping[str, Any]] = {}
        crl_dir = root / ".well-known" / "crl"
        if crl_dir.is_dir():
            for path in sorted(crl_dir.glob("*.json")):
                crl = _read_trust_json(path)
                _check_crl_shape(crl, path.stem, str(path))
                crls[path.stem] = crl
        self._jwks: Mapping[str, Any] = keys
        self._crls: Mapping[str, Mapping[str, Any]] = crls

    def __repr__(self) -> str:
        return f"FolderIssuer({str(self.root)!r})"

    def jwks(self) -> Mapping[str, Any]:
        return self._jwks

    def crl(self, kid: str) -> Mapping[str, Any] | None:
        return self._crls.get(kid)


def _read_trust_json(path: Path) -> dict[str, Any]:
    try:
        obj = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise CredentialRejected(f"{path}: cannot be read ({exc.strerror})") from None
    except orjson.JSONDecodeError:
        raise CredentialRejected(f"{path}: not valid JSON") from None
    if not isinstance(obj, dict):
        raise CredentialRejected(f"{path}: not a JSON object")
    return obj


def _check_jwks_shape(keys: Mapping[str, Any], where: str) -> None:
    if not isinstance(keys.get("keys"), list) or not all(
        isinstance(k, dict) for k in keys["keys"]
    ):
        raise CredentialRejected(f"{where}: not a JWK set (no keys array)")


def _check_crl_shape(crl: Mapping[str, Any], kid: str, where: str) -> None:
    if crl.get("kid") != kid:
        raise CredentialRejected(f"{where}: kid does not match the file name")
    if crl.get("method") != "rid":
        raise CredentialRejected(f"{where}: unsupported revocation method (expected rid)")
    if _crl_counter(crl.get("ctr")) is None:
        raise CredentialRejected(f"{where}: ctr is not a counter")
    rids = crl.get("rids")
    if not isinstance(rids, list) or not all(isinstance(r, str) for r in rids):
        raise CredentialRejected(f"{where}: rids is not a list of strings")


class HttpIssuer:
    """An issuer's ``.well-known`` files fetched from where the spec publishes them.

    ``<base>/.well-known/jwks.json`` on first use, and ``<base>/.well-known/crl/<kid>.json``
    only for a key that declares ``crlVersion`` (a key without one promises no CRL, so
    nothing is fetched). ``base`` is the ``iss`` itself unless ``base_url`` names a mirror
    of it. Both are cached for the life of the object, a CRL per ``(kid, crlVersion)``, so
    a batch of cards costs one request per file.

    Fetching is deliberately narrow, because the URL comes from an untrusted card: HTTPS
    with certificate checks (plain HTTP only to :data:`LOOPBACK_HOSTS`), no credentials,
    query or fragment in the URL, GET of two fixed paths only, redirects refused rather
    than followed, at most :data:`MAX_FETCH_BYTES` read and the whole exchange within
    ``timeout`` seconds. Any failure raises :class:`CredentialRejected` with one line
    naming the host and what went wrong, never the card.
    """

    def __init__(
        self,
        iss: str,
        *,
        base_url: str | None = None,
        timeout: float = FETCH_TIMEOUT_SECONDS,
        max_bytes: int = MAX_FETCH_BYTES,
    ) -> None:
        self.iss = iss
        self.base_url = _fetchable_base(base_url if base_url is not None else iss)
        self.timeout = float(timeout)
        self.max_bytes = int(max_bytes)
        self._jwks: Mapping[str, Any] | None = None
        self._crls: dict[tuple[str, Any], Mapping[str, Any] | None] = {}

    def __repr__(self) -> str:
        return f"HttpIssuer({self.base_url!r})"

    def jwks(self) -> Mapping[str, Any]:
        if self._jwks is None:
            keys = self._get("/.well-known/jwks.json", "issuer keys", missing_ok=False)
            assert keys is not None
            _check_jwks_shape(keys, f"issuer keys from {self._host}")
            self._jwks = keys
        return self._jwks

    def crl(self, kid: str) -> Mapping[str, Any] | None:
        if not isinstance(kid, str) or not _KID.fullmatch(kid):
            return None
        entry = next(
            (k for k in self.jwks()["keys"] if isinstance(k, dict) and k.get("kid") == kid),
            None,
        )
        version = entry.get("crlVersion") if entry is not None else None
        if version is None:
            return None
        cache_key = (kid, version)
        if cache_key not in self._crls:
            # A 404 is "no list published": verify_card then refuses the card as
            # "revocation status unknown", since the key promised one.
            crl = self._get(f"/.well-known/crl/{kid}.json", "revocation list", missing_ok=True)
            if crl is not None:
                _check_crl_shape(crl, kid, f"revocation list from {self._host}")
            self._crls[cache_key] = crl
        return self._crls[cache_key]

    @property
    def _host(self) -> str:
        return urllib.parse.urlsplit(self.base_url).netloc

    def _get(self, path: str, what: str, *, missing_ok: bool) -> dict[str, Any] | None:
        raw = _fetch(self.base_url + path, what, self._host, self.timeout, self.max_bytes,
                     missing_ok=missing_ok)  # fmt: skip
        if raw is None:
            return None
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise CredentialRejected(f"{what} from {self._host}: not valid JSON") from None
        if not isinstance(obj, dict):
            raise CredentialRejected(f"{what} from {self._host}: not a JSON object")
        return obj


def _fetchable_base(url: str) -> str:
    """``url`` without a trailing slash, if it is one :class:`HttpIssuer` may contact."""
    refused = CredentialRejected(
        f"issuer keys unavailable: {_safe(str(url), 80)} is not an https:// URL "
        "(plain http only to 127.0.0.1 or localhost)"
    )
    if not isinstance(url, str) or len(url) > 2048 or any(c.isspace() for c in url):
        raise refused
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError for a malformed port
    except ValueError:
        raise refused from None
    if not host or parts.username or parts.password or parts.query or parts.fragment:
        raise refused
    if parts.scheme != "https" and not (parts.scheme == "http" and host in LOOPBACK_HOSTS):
        raise refused
    return url.rstrip("/")


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed: a card's ``iss`` must not steer us to another URL."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _fetch(
    url: str, what: str, host: str, timeout: float, max_bytes: int, *, missing_ok: bool
) -> bytes | None:
    """GET ``url``: its body (at most ``max_bytes``), or None for a 404 when ``missing_ok``."""
    loopback = urllib.parse.urlsplit(url).hostname in LOOPBACK_HOSTS
    # A proxy from the environment would see (and could answer for) loopback requests.
    handlers: list[Any] = [_RefuseRedirects()]
    if loopback:
        handlers.append(urllib.request.ProxyHandler({}))
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(
        url, headers={"Accept": "application/json", "User-Agent": "healthnft-shc-verifier"}
    )
    deadline = time.monotonic() + timeout
    unavailable = f"{what} unavailable: {host}"
    try:
        with opener.open(request, timeout=timeout) as response:
            body = bytearray()
            while len(body) <= max_bytes:
                if time.monotonic() > deadline:
                    raise TimeoutError
                chunk = response.read1(min(65536, max_bytes + 1 - len(body)))
                if not chunk:
                    break
                body.extend(chunk)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 404 and missing_ok:
            return None
        if 300 <= exc.code < 400:
            raise CredentialRejected(
                f"{unavailable} answered HTTP {exc.code} (redirects are not followed)"
            ) from None
        raise CredentialRejected(f"{unavailable} answered HTTP {exc.code}") from None
    except TimeoutError:
        raise CredentialRejected(f"{unavailable} did not answer within {timeout:g} s") from None
    except urllib.error.URLError as exc:
        cause = exc.reason
        if isinstance(cause, TimeoutError):
            raise CredentialRejected(
                f"{unavailable} did not answer within {timeout:g} s"
            ) from None
        detail = "connection refused" if isinstance(cause, ConnectionRefusedError) else (
            "TLS certificate not trusted" if "CERTIFICATE" in str(cause).upper()
            else "cannot connect")  # fmt: skip
        raise CredentialRejected(f"{unavailable} could not be reached ({detail})") from None
    except (OSError, http.client.HTTPException):
        raise CredentialRejected(f"{unavailable} could not be reached (broken response)") from None
    if len(body) > max_bytes:
        raise CredentialRejected(f"{what} from {host}: larger than {max_bytes} bytes")
    return bytes(body)


def _crl_counter(value: Any) -> int | None:
    # The spec's template writes "<<ctr>>" in quotes; the examples use a number.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,18}", value):
        return int(value)
    return None


class TrustStore:
    """Which issuers this verifier trusts, by exact ``iss`` URL, and where their keys are.

    A card names its issuer in the (signed) ``iss`` claim; a verifier must decide for
    itself which issuers it accepts, so by default an ``iss`` absent from the store is
    refused rather than looked up. With ``fetch`` (e.g. :class:`HttpIssuer`), such an
    ``iss`` is instead looked up with ``fetch(iss)`` — once per store, the source is
    kept — which the caller opts into explicitly (``shc verify --fetch-keys``).
    """

    def __init__(
        self,
        issuers: Mapping[str, IssuerSource] | None = None,
        *,
        fetch: Callable[[str], IssuerSource] | None = None,
    ) -> None:
        self._issuers: dict[str, IssuerSource] = {
            _normalize_iss(iss): src for iss, src in (issuers or {}).items()
        }
        self._fetch = fetch
        self._fetched: dict[str, IssuerSource] = {}

    @classmethod
    def from_folders(
        cls,
        folders: Mapping[str, Path],
        *,
        fetch: Callable[[str], IssuerSource] | None = None,
    ) -> TrustStore:
        """Trust each ``iss`` with the keys found in its folder (see :class:`FolderIssuer`)."""
        return cls(
            {iss: FolderIssuer(Path(folder)) for iss, folder in folders.items()}, fetch=fetch
        )

    @classmethod
    def from_pairs(
        cls, pairs: Iterable[str], *, fetch: Callable[[str], IssuerSource] | None = None
    ) -> TrustStore:
        """Parse ``ISS=FOLDER`` strings (as given on a command line) into a store.

        The split is at the first ``=``: issuer URLs carry no ``=`` in practice, while
        folder names may.
        """
        folders: dict[str, Path] = {}
        for pair in pairs:
            iss, sep, folder = pair.partition("=")
            if not sep or not iss.strip() or not folder.strip():
                raise CredentialRejected(
                    f"trusted issuer must be given as ISS=FOLDER, got {_safe(pair, 80)!r}"
                )
            folders[iss.strip()] = Path(folder.strip()).expanduser()
        return cls.from_folders(folders, fetch=fetch)

    @property
    def issuers(self) -> tuple[str, ...]:
        """The trusted ``iss`` URLs."""
        return tuple(self._issuers)

    def source_for(self, iss: str) -> IssuerSource | None:
        """The key material of ``iss`` (exact match), or ``None`` when it is not trusted.

        With ``fetch``, an ``iss`` not in the store gets the fetched source instead; that
        may raise :class:`CredentialRejected` (an ``iss`` that may not be fetched).
        """
        source = self._issuers.get(iss)
        if source is not None or self._fetch is None:
            return source
        if iss not in self._fetched:
            self._fetched[iss] = self._fetch(iss)
        return self._fetched[iss]

    def __contains__(self, iss: object) -> bool:
        return iss in self._issuers

    def __len__(self) -> int:
        return len(self._issuers)


def _normalize_iss(iss: str) -> str:
    # Cards SHALL NOT end ``iss`` with "/"; accept an operator's trailing slash anyway.
    iss = iss.strip()
    return iss[:-1] if iss.endswith("/") and not iss.endswith("://") else iss


# --------------------------------------------------------------------------- QR and inputs


def encode_qr(jws_compact: str) -> list[str]:
    """The ``shc:/`` QR contents for a JWS: one, or balanced chunks if it is too long.

    Chunking is deprecated by the spec but remains the only way to print a card whose
    JWS exceeds what a version 22 QR holds (1195 characters).
    """
    if not _COMPACT_JWS.fullmatch(jws_compact):
        raise InvalidRecord("not a compact JWS")
    if len(jws_compact) <= QR_SINGLE_MAX_CHARS:
        return [QR_PREFIX + _to_digits(jws_compact)]
    total = math.ceil(len(jws_compact) / QR_CHUNK_MAX_CHARS)
    size = math.ceil(len(jws_compact) / total)
    parts = [jws_compact[i : i + size] for i in range(0, len(jws_compact), size)]
    return [f"{QR_PREFIX}{i}/{len(parts)}/{_to_digits(p)}" for i, p in enumerate(parts, 1)]


def _to_digits(text: str) -> str:
    return "".join(f"{ord(c) - 45:02d}" for c in text)


def decode_qr(contents: Sequence[str], where: str = "QR") -> str:
    """Reassemble one JWS from ``shc:/`` QR contents: a single code, or all its chunks.

    Chunks may come in any order (the spec asks scanners to allow that); every index
    from 1 to the total must be present exactly once and all must agree on the total.
    """
    if not contents:
        raise InvalidRecord(f"{where}: no shc:/ QR content")
    parsed = [_parse_qr(text, f"{where} #{n}") for n, text in enumerate(contents, 1)]
    if len(parsed) == 1 and parsed[0][0] is None:
        return _digits_to_jws(parsed[0][2], where)
    if any(index is None for index, _, _ in parsed):
        raise InvalidRecord(f"{where}: a single-code card cannot be combined with other codes")
    totals = {total for _, total, _ in parsed}
    if len(totals) != 1:
        raise InvalidRecord(
            f"{where}: chunks disagree on the total ({', '.join(map(str, sorted(totals)))})"
        )
    total = totals.pop()
    by_index: dict[int, str] = {}
    for index, _, digits in parsed:
        assert index is not None and total is not None
        if not 1 <= index <= total:
            raise InvalidRecord(f"{where}: chunk {index} of {total} is out of range")
        if index in by_index:
            raise InvalidRecord(f"{where}: chunk {index} of {total} appears twice")
        by_index[index] = digits
    missing = [i for i in range(1, total + 1) if i not in by_index]
    if missing:
        raise InvalidRecord(f"{where}: missing chunk {', '.join(map(str, missing))} of {total}")
    return _digits_to_jws("".join(by_index[i] for i in range(1, total + 1)), where)


def _parse_qr(text: str, where: str) -> tuple[int | None, int | None, str]:
    m = _QR.fullmatch(text.strip())
    if not m:
        if text.strip()[:5].lower() == QR_PREFIX:
            raise InvalidRecord(f"{where}: shc:/ content has characters other than digits")
        raise InvalidRecord(f"{where}: not shc:/ QR content")
    if m.group(1) is None:
        return None, None, m.group(3)
    return int(m.group(1)), int(m.group(2)), m.group(3)


def _digits_to_jws(digits: str, where: str) -> str:
    if not digits:
        raise InvalidRecord(f"{where}: shc:/ content has no digits")
    if len(digits) % 2:
        raise InvalidRecord(f"{where}: odd number of digits in shc:/ content")
    chars = []
    for pos in range(0, len(digits), 2):
        value = int(digits[pos : pos + 2])
        if value > _QR_MAX_PAIR:
            raise InvalidRecord(f"{where}: digit pair at position {pos} is out of range")
        chars.append(chr(value + 45))
    text = "".join(chars)
    if not _COMPACT_JWS.fullmatch(text):
        raise InvalidRecord(f"{where}: shc:/ content does not decode to a compact JWS")
    return text


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
                m = _QR.fullmatch(line)
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
            if not _COMPACT_JWS.fullmatch(compact):
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
        if not isinstance(cred, str) or not _COMPACT_JWS.fullmatch(cred.strip()):
            raise InvalidRecord(f"{path}: verifiableCredential[{i}] is not a compact JWS")
        out.append(cred.strip())
    return out


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class CardVerification:
    """The verdict on one card.

    ``iss`` is the issuer the card claims (``None`` if unreadable); it is vouched for only
    when ``valid``. ``resource_types`` lists the Bundle's resource types, first-seen
    order, without repeats (valid cards only). ``payload`` is the decoded JWT claims of a
    valid card (``None`` otherwise); it holds health data, so it is kept out of ``repr``
    and :meth:`as_dict`.
    """

    valid: bool
    reason: str
    iss: str | None = None
    resource_types: list[str] = field(default_factory=list)
    payload: dict[str, Any] | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """The verdict as JSON-ready data, without any health data."""
        return {
            "valid": self.valid,
            "reason": self.reason,
            "iss": self.iss,
            "resource_types": list(self.resource_types),
        }


class _Refused(Exception):
    """Internal: a check failed; ``args[0]`` is the one-line reason."""


def verify_card(jws_compact: str, trust: TrustStore, now: float | None = None) -> CardVerification:
    """Verify one compact JWS as a SMART Health Card against ``trust``.

    Checks, in order: compact form and canonical base64url; header (``alg`` ES256,
    ``zip`` DEF, ``kid``); a raw 64-byte r||s signature (DER is refused by name);
    bounded raw-DEFLATE payload; ``iss`` trusted; the key ``kid`` published by that
    issuer (P-256, ``use`` sig, ``alg`` ES256, kid = thumbprint); the signature;
    ``vc.type`` has the health-card type; revocation through the issuer's CRL; ``nbf``
    not in the future and ``exp`` not past (with :data:`CLOCK_SKEW_SECONDS`); the FHIR
    Bundle and every resource (R4B models). The payload is inflated before the signature
    is checked because it names the issuer whose key verifies it; inflation is bounded.

    A bad signature cannot tell a changed payload from a changed signature (or a
    different key with the same ``kid``): all three read "bad signature: …".

    Never raises for a bad card; ``now`` defaults to the current time.
    """
    now = time.time() if now is None else now
    iss: str | None = None
    try:
        header, payload_raw, signature = _split(jws_compact)
        kid = _check_header(header)
        _check_signature_encoding(signature)
        claims = _decode_payload(payload_raw)
        iss = claims.get("iss") if isinstance(claims.get("iss"), str) else None
        if iss is None:
            raise _Refused("payload has no iss")
        source = trust.source_for(iss)
        if source is None:
            raise _Refused(f"unknown issuer {_safe(iss)}: not in the trust store")
        # From here on a source may fail to deliver (an unreachable issuer); that is
        # this card's refusal, not a crash of the whole verification run.
        key_entries = _issuer_keys(source, kid)
        _check_signature(jws_compact, key_entries, kid)
        nbf = _number(claims.get("nbf"))
        if nbf is None:
            raise _Refused("payload has no numeric nbf")
        vc = _check_vc(claims)
        # Revocation before the validity window: "revoked" is the issuer's explicit word
        # and does not depend on the verifier's clock.
        _check_revocation(source, key_entries[0][0], kid, vc, nbf)
        _check_times(claims, nbf, now)
        resource_types = _check_bundle(vc["credentialSubject"])
    except _Refused as refusal:
        return CardVerification(False, str(refusal), iss)
    except CredentialRejected as unavailable:  # raised by an issuer source
        return CardVerification(False, str(unavailable), iss)
    return CardVerification(True, "valid", iss, resource_types, claims)


def _split(compact: str) -> tuple[dict[str, Any], bytes, bytes]:
    if not isinstance(compact, str) or len(compact) > MAX_JWS_CHARS:
        raise _Refused("malformed JWS: not a string or too long")
    parts = compact.strip().split(".")
    if len(parts) != 3:
        raise _Refused("malformed JWS: expected header.payload.signature")
    names = ("header", "payload", "signature")
    decoded = [_b64url_decode(part, name) for part, name in zip(parts, names, strict=True)]
    try:
        header = orjson.loads(decoded[0])
    except orjson.JSONDecodeError:
        raise _Refused("malformed JWS: header is not JSON") from None
    if not isinstance(header, dict):
        raise _Refused("malformed JWS: header is not a JSON object")
    return header, decoded[1], decoded[2]


def _b64url_decode(part: str, name: str) -> bytes:
    if not part or not _B64URL.fullmatch(part):
        raise _Refused(f"malformed JWS: {name} is not base64url")
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise _Refused(f"malformed JWS: {name} is not base64url") from None
    # Unused trailing bits would let two different strings carry the same bytes: a
    # changed character must never leave a card valid.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != part:
        raise _Refused(f"malformed JWS: {name} is not canonical base64url")
    return raw


def _check_header(header: Mapping[str, Any]) -> str:
    alg = header.get("alg")
    if alg != "ES256":
        raise _Refused(f"unsupported alg {_safe(str(alg), 20)!r}: SMART Health Cards use ES256")
    if header.get("zip") != "DEF":
        raise _Refused("header zip must be DEF (payload is raw DEFLATE)")
    if "crit" in header:
        raise _Refused("unsupported critical header parameters")
    kid = header.get("kid")
    if not isinstance(kid, str) or not _KID.fullmatch(kid):
        raise _Refused("header has no valid kid")
    return kid


def _check_signature_encoding(signature: bytes) -> None:
    if len(signature) == _SIGNATURE_BYTES:
        return
    if signature[:1] == b"\x30":
        try:
            decode_dss_signature(signature)
        except ValueError:
            pass
        else:
            raise _Refused("DER-encoded signature: JWS requires raw r||s")
    raise _Refused(f"bad signature: {len(signature)} bytes, ES256 requires 64 (raw r||s)")


def _decode_payload(raw: bytes) -> dict[str, Any]:
    inflater = zlib.decompressobj(wbits=-15)
    try:
        data = inflater.decompress(raw, MAX_PAYLOAD_BYTES + 1)
    except zlib.error:
        raise _Refused("payload is not raw DEFLATE") from None
    if len(data) > MAX_PAYLOAD_BYTES or inflater.unconsumed_tail:
        raise _Refused(f"payload inflates beyond {MAX_PAYLOAD_BYTES} bytes")
    if not inflater.eof:
        raise _Refused("payload is not raw DEFLATE (truncated stream)")
    if inflater.unused_data:
        raise _Refused("payload has data after its DEFLATE stream")
    try:
        claims = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise _Refused("payload is not JSON") from None
    if not isinstance(claims, dict):
        raise _Refused("payload is not a JSON object")
    return claims


def _issuer_keys(source: IssuerSource, kid: str) -> list[tuple[Mapping[str, Any], jwk.JWK]]:
    """The issuer's published keys with this ``kid``, each checked against the spec."""
    keys = source.jwks().get("keys")
    entries = [k for k in keys or () if isinstance(k, Mapping) and k.get("kid") == kid]
    if not entries:
        raise _Refused(f"unknown key: issuer publishes no key {kid}")
    out = []
    for entry in entries:
        spec = (entry.get("kty"), entry.get("crv"), entry.get("use"), entry.get("alg"))
        if spec != ("EC", "P-256", "sig", "ES256"):
            raise _Refused(f"issuer key {kid} is not an ES256 P-256 signing key")
        try:
            public = jwk.JWK(kty="EC", crv="P-256", x=entry["x"], y=entry["y"])
            thumbprint = public.thumbprint()
        except (KeyError, TypeError, ValueError, JWException):
            raise _Refused(f"issuer key {kid} is not a valid P-256 public key") from None
        if thumbprint != kid:
            raise _Refused(f"issuer key {kid}: kid is not its RFC 7638 thumbprint")
        out.append((entry, public))
    return out


def _check_signature(
    compact: str, keys: Sequence[tuple[Mapping[str, Any], jwk.JWK]], kid: str
) -> None:
    token = jws.JWS()
    token.allowed_algs = ["ES256"]
    try:
        token.deserialize(compact.strip())
    except JWException:
        raise _Refused("malformed JWS: cannot be parsed") from None
    for _, public in keys:
        try:
            token.verify(public, alg="ES256")
        except JWException:
            continue
        return
    raise _Refused(f"bad signature: does not match header and payload under key {kid}")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _check_times(claims: Mapping[str, Any], nbf: float, now: float) -> None:
    if nbf > now + CLOCK_SKEW_SECONDS:
        raise _Refused("not yet valid: nbf is in the future")
    if "exp" in claims:
        exp = _number(claims["exp"])
        if exp is None:
            raise _Refused("payload exp is not a number")
        if exp < now - CLOCK_SKEW_SECONDS:
            raise _Refused("expired: exp is in the past")


def _check_vc(claims: Mapping[str, Any]) -> dict[str, Any]:
    vc = claims.get("vc")
    if not isinstance(vc, dict):
        raise _Refused("payload has no vc object")
    types = vc.get("type")
    if not isinstance(types, list) or HEALTH_CARD_TYPE not in types:
        raise _Refused(f"not a health card: vc.type lacks {HEALTH_CARD_TYPE}")
    subject = vc.get("credentialSubject")
    if not isinstance(subject, dict):
        raise _Refused("vc has no credentialSubject object")
    version = subject.get("fhirVersion")
    if not isinstance(version, str) or not version.startswith("4."):
        raise _Refused("unsupported credentialSubject.fhirVersion (expected 4.x)")
    return vc


def _check_revocation(
    source: IssuerSource, key: Mapping[str, Any], kid: str, vc: Mapping[str, Any], nbf: float
) -> None:
    """Spec "Revocation": a listed ``rid`` revokes the card; ``rid.<t>`` only if nbf < t.

    An issuer that declares ``crlVersion`` on the key promises a CRL; without it (or
    with an older one) the card's status is unknown, and unknown is refused.
    """
    crl_version = key.get("crlVersion")
    crl = source.crl(kid)
    if crl_version is not None and crl is None:
        raise _Refused(f"revocation status unknown: no revocation list for key {kid}")
    if crl is None:
        return
    ctr = _crl_counter(crl.get("ctr"))
    wanted = _crl_counter(crl_version) if crl_version is not None else None
    if ctr is None or (wanted is not None and ctr < wanted):
        raise _Refused(f"revocation status unknown: revocation list for key {kid} is outdated")
    rid = vc.get("rid")
    if rid is None:
        return
    if not isinstance(rid, str) or not _RID.fullmatch(rid):
        raise _Refused("malformed vc.rid")
    for listed in crl.get("rids", []):
        base, dot, stamp = str(listed).partition(".")
        if base != rid:
            continue
        if not dot:
            raise _Refused(f"revoked (rid {rid})")
        if not _CRL_STAMP.fullmatch(stamp):
            raise _Refused(f"revoked (rid {rid})")  # unreadable cutoff: fail closed
        if nbf < float(stamp):
            raise _Refused(f"revoked (rid {rid}, issued before {stamp})")


def _check_bundle(subject: Mapping[str, Any]) -> list[str]:
    bundle = subject.get("fhirBundle")
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise _Refused("credentialSubject.fhirBundle is not a FHIR Bundle")
    if bundle.get("type") not in ACCEPTED_BUNDLE_TYPES:
        allowed = " or ".join(sorted(ACCEPTED_BUNDLE_TYPES))
        raise _Refused(f"fhirBundle type must be {allowed}")
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise _Refused("fhirBundle has no entries")
    types: list[str] = []
    for i, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise _Refused(f"fhirBundle entry {i} has no resource")
        if "fullUrl" in entry and not isinstance(entry["fullUrl"], str):
            raise _Refused(f"fhirBundle entry {i} has an invalid fullUrl")
        try:
            validate(SourceResource(resource, f"entry {i}"))
        except InvalidRecord as exc:
            raise _Refused(f"invalid FHIR: {exc}") from None
        if resource["resourceType"] not in types:
            types.append(resource["resourceType"])
    return types


def _safe(text: str, limit: int = 120) -> str:
    """Printable, bounded rendering of an untrusted string for a one-line reason."""
    cleaned = "".join(c if c.isprintable() else "?" for c in text)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


# --------------------------------------------------------------------------- issuing


def new_issuer_key() -> jwk.JWK:
    """A fresh ES256 issuer key (P-256) with ``kid`` = its RFC 7638 thumbprint."""
    key = jwk.JWK.generate(kty="EC", crv="P-256")
    return jwk.JWK(**key.export_private(as_dict=True), kid=key.thumbprint(), use="sig", alg="ES256")


def public_jwk(key: jwk.JWK) -> dict[str, str]:
    """The public JWK an issuer publishes for ``key``, in the spec's field set."""
    pub = key.export_public(as_dict=True)
    if (pub.get("kty"), pub.get("crv")) != ("EC", "P-256"):
        raise CredentialRejected("issuer key must be an EC P-256 key")
    return {
        "kty": "EC",
        "kid": key.thumbprint(),
        "use": "sig",
        "alg": "ES256",
        "crv": "P-256",
        "x": pub["x"],
        "y": pub["y"],
    }


#: Patient elements kept in a card: who the card is about, nothing more (data
#: minimization; the SMART vaccination profile asks for name and birth date).
_PATIENT_ELEMENTS = ("name", "birthDate")


def build_bundle(resources: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A minimal ``collection`` Bundle for a card, following the spec's QR guidance.

    Each resource becomes entry ``resource:N``; references to resources in the card
    (``Type/id`` or ``urn:uuid:id``) become ``resource:N`` and references to anything
    else are dropped (they would point outside the card and leak identifiers). Removed
    as the spec asks: ``Resource.id``, ``meta`` (except ``meta.security``),
    ``DomainResource.text``, ``CodeableConcept.text``, ``Coding.display``. A Patient keeps
    only its official name and birth date.
    """
    index: dict[str, str] = {}
    for n, res in enumerate(resources):
        if not isinstance(res, Mapping) or not isinstance(res.get("resourceType"), str):
            raise InvalidRecord(f"resource {n}: not a FHIR resource (no resourceType)")
        rid = res.get("id")
        if isinstance(rid, str) and rid:
            index[f"{res['resourceType']}/{rid}"] = f"resource:{n}"
            index[f"urn:uuid:{rid}"] = f"resource:{n}"
    entries = []
    for n, res in enumerate(resources):
        slim = _minimize_resource(dict(res), index)
        entries.append({"fullUrl": f"resource:{n}", "resource": slim})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def _minimize_resource(res: dict[str, Any], index: Mapping[str, str]) -> dict[str, Any]:
    rtype = res["resourceType"]
    if rtype == "Patient":
        res = {"resourceType": "Patient", **{k: res[k] for k in _PATIENT_ELEMENTS if k in res}}
        names = res.get("name")
        if isinstance(names, list) and names:
            chosen = next(
                (n for n in names if isinstance(n, dict) and n.get("use") in (None, "official")),
                names[0],
            )
            if isinstance(chosen, dict):
                res["name"] = [{k: chosen[k] for k in ("family", "given") if k in chosen}]
    res.pop("id", None)
    res.pop("text", None)
    meta = res.pop("meta", None)
    if isinstance(meta, dict) and meta.get("security"):
        res["meta"] = {"security": meta["security"]}
    out = _minimize_value(res, index, in_coding=False)
    assert isinstance(out, dict)
    out["resourceType"] = rtype
    return out


_DROP = object()


def _minimize_value(value: Any, index: Mapping[str, str], *, in_coding: bool) -> Any:
    if isinstance(value, list):
        items = [_minimize_value(v, index, in_coding=in_coding) for v in value]
        kept = [v for v in items if v is not _DROP]
        return kept if kept else _DROP
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key == "contained":
            out[key] = item  # local "#id" references need the contained ids intact
            continue
        if key == "text" and "coding" in value:
            continue  # CodeableConcept.text
        if key == "display" and in_coding:
            continue  # Coding.display
        if key == "reference" and isinstance(item, str):
            if item.startswith("#"):
                out[key] = item
            elif (target := _resolve(item, index)) is not None:
                out[key] = target
            continue  # a reference leaving the card is dropped
        minimized = _minimize_value(item, index, in_coding=key == "coding")
        if minimized is not _DROP:
            out[key] = minimized
    return out if out else _DROP


def _resolve(reference: str, index: Mapping[str, str]) -> str | None:
    if reference in index:
        return index[reference]
    if "://" in reference:  # absolute URL: match on its trailing Type/id
        tail = "/".join(reference.split("/_history/")[0].rstrip("/").split("/")[-2:])
        return index.get(tail)
    return None


@dataclass(frozen=True)
class ExportedCard:
    """Where :func:`export_card` wrote a card, and what it holds (no health data)."""

    jws: str = field(repr=False)
    iss: str
    kid: str
    resource_types: tuple[str, ...]
    card_file: Path
    qr_text_files: tuple[Path, ...]
    qr_png_files: tuple[Path, ...]
    jwks_file: Path

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary for a CLI."""
        return {
            "iss": self.iss,
            "kid": self.kid,
            "resource_types": list(self.resource_types),
            "card_file": str(self.card_file),
            "qr_text_files": [str(p) for p in self.qr_text_files],
            "qr_png_files": [str(p) for p in self.qr_png_files],
            "jwks_file": str(self.jwks_file),
        }


def export_card(
    bundle_resources: Sequence[Mapping[str, Any]],
    issuer_key: jwk.JWK,
    iss: str,
    out_dir: Path,
    name: str,
    *,
    nbf: float | None = None,
) -> ExportedCard:
    """Issue a SMART Health Card for ``bundle_resources`` and write it under ``out_dir``.

    Writes ``<name>.smart-health-card``, the QR content ``<name>-qr.txt`` and picture
    ``<name>-qr.png`` (``-qr-<i>`` per chunk when the JWS needs several codes), and
    publishes the issuer's public key in ``out_dir/issuer/.well-known/jwks.json`` (merged
    with keys already there), so ``TrustStore.from_folders({iss: out_dir / "issuer"})``
    verifies the card offline. Resources are minimized (:func:`build_bundle`) and
    validated before signing so that no card is issued that :func:`verify_card` refuses.
    """
    if not _CARD_NAME.fullmatch(name):
        raise InvalidRecord("card name must be a plain file name (letters, digits, . _ -)")
    if not re.fullmatch(r"https://[^\s/]+(/[^\s]*)?", iss) or iss.endswith("/"):
        raise InvalidRecord("issuer URL must be https:// and must not end with '/'")
    if not isinstance(issuer_key, jwk.JWK) or not issuer_key.has_private:
        raise CredentialRejected("issuer key must be a private EC P-256 JWK")
    published = public_jwk(issuer_key)
    kid = published["kid"]
    if not bundle_resources:
        raise InvalidRecord("a card needs at least one resource")

    bundle = build_bundle(bundle_resources)
    for n, entry in enumerate(bundle["entry"]):
        validate(SourceResource(entry["resource"], f"resource {n}"))
    claims = {
        "iss": iss,
        "nbf": int(time.time()) if nbf is None else nbf,
        "vc": {
            "type": [HEALTH_CARD_TYPE],
            "credentialSubject": {"fhirVersion": FHIR_VERSION, "fhirBundle": bundle},
        },
    }
    try:
        minified = orjson.dumps(claims)
    except TypeError:
        raise InvalidRecord("resources are not plain JSON data") from None
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = deflater.compress(minified) + deflater.flush()
    header = orjson.dumps({"zip": "DEF", "alg": "ES256", "kid": kid}).decode()
    token = jws.JWS(payload)
    try:
        token.add_signature(issuer_key, alg="ES256", protected=header)
    except (JWException, ValueError, TypeError):
        raise CredentialRejected("issuer key cannot sign ES256") from None
    compact = token.serialize(compact=True)

    out_dir.mkdir(parents=True, exist_ok=True)
    card_file = out_dir / f"{name}.smart-health-card"
    _write(card_file, orjson.dumps({"verifiableCredential": [compact]}, option=orjson.OPT_INDENT_2))
    texts, pngs = _write_qr(compact, out_dir, name)
    jwks_file = _publish_key(out_dir / "issuer", published)
    types: list[str] = []
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] not in types:
            types.append(entry["resource"]["resourceType"])
    return ExportedCard(compact, iss, kid, tuple(types), card_file, texts, pngs, jwks_file)


def _write_qr(compact: str, out_dir: Path, name: str) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """QR text and PNG per chunk: ``shc:/`` (and ``i/n/``) in byte mode, digits numeric.

    The two-segment form is what the spec prescribes; numeric mode packs the digits
    far tighter than a single byte-mode segment (a smaller, easier-to-scan code).
    """
    contents = encode_qr(compact)
    texts, pngs = [], []
    for i, content in enumerate(contents, 1):
        stem = f"{name}-qr" if len(contents) == 1 else f"{name}-qr-{i}"
        prefix_len = content.rfind("/") + 1
        qr = segno.make_qr(
            [
                (content[:prefix_len], segno.consts.MODE_BYTE),
                (content[prefix_len:], segno.consts.MODE_NUMERIC),
            ],
            error="L",
        )
        text_file, png_file = out_dir / f"{stem}.txt", out_dir / f"{stem}.png"
        _write(text_file, (content + "\n").encode())
        qr.save(str(png_file), kind="png", scale=4, border=4)
        texts.append(text_file)
        pngs.append(png_file)
    return tuple(texts), tuple(pngs)


def _publish_key(issuer_dir: Path, published: Mapping[str, str]) -> Path:
    path = issuer_dir / ".well-known" / "jwks.json"
    keys: list[Any] = []
    if path.exists():
        existing = _read_trust_json(path)
        if not isinstance(existing.get("keys"), list):
            raise CredentialRejected(f"{path}: exists but is not a JWK set")
        keys = [
            k
            for k in existing["keys"]
            if not (isinstance(k, dict) and k.get("kid") == published["kid"])
        ]
    keys.append(dict(published))
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, orjson.dumps({"keys": keys}, option=orjson.OPT_INDENT_2))
    return path


def _write(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename: readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
