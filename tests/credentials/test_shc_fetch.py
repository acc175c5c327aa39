"""Issuer keys fetched over HTTP from ``<iss>/.well-known/…`` (HttpIssuer, --fetch-keys).

A real ``http.server`` on 127.0.0.1 in a thread serves the specification's example
issuer folder, and the real example cards verify (and the revoked one is refused)
through it. Only loopback addresses are ever contacted.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import shutil
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from jwcrypto import jwk, jws

from conftest import SHARED_DATA, run_cli
from healthnft.credentials import HttpIssuer, TrustStore, new_issuer_key, public_jwk, verify_card
from healthnft.errors import CredentialRejected

SHC = SHARED_DATA / "shc"
ISS = "https://spec.smarthealth.cards/examples/issuer"
KID = "3Kfdg-XwP-7gXyywtUfUADwBumDOPKMQx-iELL11W9s"
pytestmark = pytest.mark.skipif(not SHC.is_dir(), reason="../shared/data/shc is absent")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    """Serves a folder, records each path asked for, logs nothing."""

    seen: list[str]

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.seen.append(self.path)
        super().do_GET()


class _Redirect(_Quiet):
    def do_GET(self) -> None:
        self.seen.append(self.path)
        self.send_response(302)
        self.send_header("Location", "https://elsewhere.invalid/.well-known/jwks.json")
        self.end_headers()


class _Slow(_Quiet):
    def do_GET(self) -> None:
        self.seen.append(self.path)
        time.sleep(1.5)


@contextmanager
def serve(folder: Path, handler: type[_Quiet] = _Quiet) -> Iterator[tuple[str, list[str]]]:
    """``folder`` over HTTP on 127.0.0.1 (a free port), and the paths requested."""
    seen: list[str] = []
    bound = type("Handler", (handler,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(bound, directory=str(folder))
    )
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _example(n: str) -> str:
    return (SHC / f"example-{n}-d-jws.txt").read_text().strip()


def test_spec_example_cards_verify_with_keys_fetched_over_http() -> None:
    with serve(SHC / "issuer") as (url, seen):
        source = HttpIssuer(ISS, base_url=url + "/")
        store = TrustStore({ISS: source})
        for n in ("00", "01", "02"):
            result = verify_card(_example(n), store)
            assert result.valid, (n, result.reason)
            assert result.iss == ISS and result.resource_types
        revoked = verify_card(_example("03"), store)
    assert not revoked.valid and revoked.reason.startswith("revoked (rid vwAjHdarZuc")
    # One request per published file, whatever the number of cards: the source caches.
    assert seen.count("/.well-known/jwks.json") == 1
    assert seen.count(f"/.well-known/crl/{KID}.json") == 1
    # Example 01's key declares no crlVersion: no CRL is asked for it.
    assert all("EBKOr72QQDcTBUuVzAzkfBTGew0ZA16GuWty64nS-sw" not in p for p in seen)


def test_unreachable_issuer_gives_a_clear_reason() -> None:
    port = _closed_port()
    result = verify_card(_example("00"), TrustStore({ISS: HttpIssuer(ISS,
                         base_url=f"http://127.0.0.1:{port}")}))  # fmt: skip
    assert not result.valid and result.iss == ISS
    assert result.reason == (
        f"issuer keys unavailable: 127.0.0.1:{port} could not be reached (connection refused)"
    )


def test_fetching_refuses_what_it_should(tmp_path: Path) -> None:
    card = _example("00")
    with serve(SHC / "issuer") as (url, _):
        small = HttpIssuer(ISS, base_url=url, max_bytes=1000)
        assert verify_card(card, TrustStore({ISS: small})).reason.endswith(
            "issuer keys from 127.0.0.1:" + url.rsplit(":", 1)[1] + ": larger than 1000 bytes"
        )
    with serve(SHC / "issuer", _Redirect) as (url, seen):
        reason = verify_card(card, TrustStore({ISS: HttpIssuer(ISS, base_url=url)})).reason
        assert reason.endswith("answered HTTP 302 (redirects are not followed)")
        assert seen == ["/.well-known/jwks.json"]  # the redirect target was not contacted
    with serve(SHC / "issuer", _Slow) as (url, _):
        started = time.monotonic()
        slow = HttpIssuer(ISS, base_url=url, timeout=0.3)
        reason = verify_card(card, TrustStore({ISS: slow})).reason
        assert reason.endswith("did not answer within 0.3 s")
        assert time.monotonic() - started < 1.4
    # The key promises a CRL (crlVersion 1); a server without one leaves the status unknown.
    folder = tmp_path / "no-crl"
    shutil.copytree(SHC / "issuer", folder)
    shutil.rmtree(folder / ".well-known" / "crl")
    with serve(folder) as (url, _):
        reason = verify_card(card, TrustStore({ISS: HttpIssuer(ISS, base_url=url)})).reason
        assert reason == f"revocation status unknown: no revocation list for key {KID}"
    # Plain HTTP to anything but this machine, credentials or a query in the URL: refused
    # before any connection is attempted.
    for bad in ("http://example.org/issuer", "ftp://127.0.0.1/x", "https://u:p@h.example/i",
                "https://h.example/i?x=1", "https://h.example:99999/i", ""):  # fmt: skip
        with pytest.raises(CredentialRejected, match="is not an https:// URL"):
            HttpIssuer(bad)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_cli_fetch_keys_is_opt_in(tmp_path: Path) -> None:
    """A card of our own whose iss is a loopback URL, verified only with --fetch-keys."""
    key = new_issuer_key()
    site = tmp_path / "site"
    (site / "issuer" / ".well-known").mkdir(parents=True)
    (site / "issuer" / ".well-known" / "jwks.json").write_text(
        json.dumps({"keys": [public_jwk(key)]})
    )
    claims = json.loads(zlib.decompress(base64.urlsafe_b64decode(
        _example("00").split(".")[1] + "=="), -15))  # fmt: skip
    with serve(site) as (url, seen):
        claims["iss"] = f"{url}/issuer"
        deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
        payload = deflater.compress(json.dumps(claims).encode()) + deflater.flush()
        token = jws.JWS(payload)
        token.add_signature(jwk.JWK(**key.as_dict(private=True)), alg="ES256", protected=json.dumps(
            {"zip": "DEF", "alg": "ES256", "kid": key.thumbprint()}))  # fmt: skip
        card = tmp_path / "card.txt"
        card.write_text(token.serialize(compact=True))
        home = tmp_path / "home"

        offline = run_cli(home, "shc", "verify", str(card), "--json")
        assert offline.returncode == 1 and not seen  # offline-first: nothing was fetched
        assert "unknown issuer" in json.loads(offline.stdout)["reason"]

        fetched = run_cli(home, "shc", "verify", str(card), "--fetch-keys", "--json")
        assert fetched.returncode == 0, fetched.stdout + fetched.stderr
        out = json.loads(fetched.stdout)
        assert out["valid"] and out["iss"] == claims["iss"] and out["resource_types"]
        assert seen == ["/issuer/.well-known/jwks.json"]  # the key has no crlVersion

    gone = run_cli(home, "shc", "verify", str(card), "--fetch-keys")
    assert gone.returncode == 1 and gone.stdout == ""
    host = url.removeprefix("http://")
    assert gone.stderr == (
        f"file 1 of 1: invalid: issuer keys unavailable: {host} could not be reached "
        "(connection refused) "
        f"(iss {claims['iss']})\n"
    )
