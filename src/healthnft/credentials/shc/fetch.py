"""Fetching an issuer's keys and revocation lists from its ``.well-known`` URLs.

Only when the verifier opts in (``TrustStore(fetch=HttpIssuer)``, ``healthnft shc verify
--fetch-keys``). A fetched key proves only that whoever controls the ``iss`` URL signed
the card; whether to trust that issuer is still the verifier's decision, so the verdict
names it. The URL comes from an untrusted card, so fetching is deliberately narrow
(see :class:`HttpIssuer`).
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

import orjson

from healthnft.credentials.shc.trust import KID, check_crl_shape, check_jwks_shape, safe_text
from healthnft.errors import CredentialRejected

__all__ = ["FETCH_TIMEOUT_SECONDS", "LOOPBACK_HOSTS", "MAX_FETCH_BYTES", "HttpIssuer"]

#: Fetching an issuer's keys: the whole exchange must finish within this many seconds
#: (a verifier waits on it; a slow or hostile server must not hold it up) ...
FETCH_TIMEOUT_SECONDS = 5.0
#: ... and a JWK set or CRL larger than this is refused unread (the spec's example JWK
#: set is under 3 KB; a CRL lists short rids).
MAX_FETCH_BYTES = 512 * 1024
#: Hosts that may be fetched over plain HTTP: this machine only (local mirrors, tests).
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


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
            check_jwks_shape(keys, f"issuer keys from {self._host}")
            self._jwks = keys
        return self._jwks

    def crl(self, kid: str) -> Mapping[str, Any] | None:
        if not isinstance(kid, str) or not KID.fullmatch(kid):
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
                check_crl_shape(crl, kid, f"revocation list from {self._host}")
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
        f"issuer keys unavailable: {safe_text(str(url), 80)} is not an https:// URL "
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
