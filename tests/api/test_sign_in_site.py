"""Sign-in names this service's configured origin, never the request's Host (issue 12.1).

The attack: a phishing site's backend asks ``/api/auth/challenge`` with ``Host:
evil.example``, gets a message naming evil.example (which looks right to the victim
on evil.example), relays the victim's signature to ``/api/auth/verify`` with the same
Host, and receives a session for the victim's records.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from healthnft.api import create_app, siwe
from healthnft.api.ratelimit import WindowLimiter
from healthnft.api.sessions import SessionStore
from healthnft.api.site import default_origin, parse_origin
from healthnft.errors import InvalidInput, RateLimited
from healthnft.services.credentials import challenge_book


def test_a_phishing_backend_gets_no_message_and_no_session(served) -> None:
    alice = served.patient(0)
    evil = TestClient(served.app, base_url="http://evil.example")
    r = evil.get("/api/auth/challenge", params={"address": alice})
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["code"] == "invalid_input" and "answers for testserver only" in problem["detail"]

    # The relay: a genuine message, signed by the victim, posted with the phishing Host.
    client = served.client()
    msg = client.get("/api/auth/challenge", params={"address": alice}).json()["message"]
    assert msg.startswith("testserver wants you to sign in") and "URI: http://testserver\n" in msg
    signed = {"message": msg, "signature": siwe.sign(msg, served.key(alice))}
    r = evil.post("/api/auth/verify", json=signed)
    assert r.status_code == 400 and "token" not in r.json() and "set-cookie" not in r.headers

    # A message the phishing site wrote itself, naming itself, signed by the victim.
    for forged in (msg.replace("testserver wants", "evil.example wants", 1),
                   msg.replace("URI: http://testserver", "URI: https://evil.example", 1)):
        r = client.post("/api/auth/verify",
                        json={"message": forged, "signature": siwe.sign(forged, served.key(alice))})
        assert r.status_code == 401 and "another site" in r.json()["detail"]

    # The genuine message through the genuine site still works (the nonce was not spent).
    assert client.post("/api/auth/verify", json=signed).status_code == 200


def test_an_https_origin_behind_a_proxy_gets_a_secure_cookie(served) -> None:
    app = create_app(served.home, origin="https://wallet.example.org", exclusive=False)
    try:
        with TestClient(app, base_url="https://wallet.example.org") as client:
            alice = served.patient(0)
            msg = client.get("/api/auth/challenge", params={"address": alice}).json()["message"]
            assert msg.startswith("wallet.example.org wants you")
            assert "URI: https://wallet.example.org\n" in msg
            r = client.post("/api/auth/verify",
                            json={"message": msg, "signature": siwe.sign(msg, served.key(alice))})
            assert r.status_code == 200
            cookie = r.headers["set-cookie"].lower()
            assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    finally:
        app.state.service.close()


@pytest.mark.parametrize("origin, expected", [
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ("https://Wallet.Example.org:443/", "https://wallet.example.org"),
    ("http://[::1]:8080", "http://[::1]:8080"),
])  # fmt: skip
def test_origins_are_normalized(origin: str, expected: str) -> None:
    assert parse_origin(origin).origin == expected


@pytest.mark.parametrize("origin", [
    "wallet.example.org", "ftp://wallet.example.org", "https://wallet.example.org/app",
    "https://user@wallet.example.org", "http://0.0.0.0:8000", "https://w.example:99999",
])  # fmt: skip
def test_bad_origins_are_refused_with_one_message(origin: str) -> None:
    with pytest.raises(InvalidInput, match="origin"):
        parse_origin(origin)


def test_serving_on_every_address_needs_an_origin() -> None:
    with pytest.raises(InvalidInput, match="needs --origin"):
        default_origin("0.0.0.0", 8000)
    assert default_origin("127.0.0.1", 8000) == "http://127.0.0.1:8000"


def test_challenges_are_rate_limited_per_client(served) -> None:
    client = served.client()
    alice = served.patient(0)
    saved = served.app.state.challenge_limiter
    served.app.state.challenge_limiter = WindowLimiter(3, 60.0, clock=lambda: served.clock[0])
    try:
        for _ in range(3):
            assert client.get("/api/auth/challenge", params={"address": alice}).status_code == 200
        r = client.get("/api/auth/challenge", params={"address": alice})
        assert r.status_code == 429 and r.json()["code"] == "rate_limited"
        assert 1 <= int(r.headers["retry-after"]) <= 60
        served.clock[0] += 61
        try:
            assert client.get("/api/auth/challenge", params={"address": alice}).status_code == 200
        finally:
            served.clock[0] -= 61
    finally:
        served.app.state.challenge_limiter = saved


def test_outstanding_sign_in_nonces_are_capped() -> None:
    now = [1000.0]
    store = SessionStore(clock=lambda: now[0], nonces=challenge_book(lambda: now[0]),
                         max_nonces=5)  # fmt: skip
    nonces = [store.new_nonce(f"0x{i:040x}")[0] for i in range(5)]
    with pytest.raises(RateLimited, match="too many sign-ins"):
        store.new_nonce("0x" + "f" * 40)
    assert store.take_nonce(nonces[0], f"0x{0:040x}")  # a used nonce no longer counts
    store.new_nonce("0x" + "f" * 40)
    now[0] += 301  # expired ones neither
    for i in range(5):
        store.new_nonce(f"0x{i:040x}")


def test_the_limiter_keeps_a_bounded_map() -> None:
    now = [0.0]
    limiter = WindowLimiter(1, 60.0, max_clients=100, clock=lambda: now[0])
    for i in range(10_000):
        limiter.hit(f"10.0.{i // 256}.{i % 256}", "requests")
    assert len(limiter._windows) <= 100  # noqa: SLF001 - the bound is the point
