"""A retried state-changing call is done once (issue 12.9).

Before: a ``share`` killed after its grant was committed created a second live grant
when retried; the patient revoked the one they saw and the other stayed live. Now a
request id (``--request-id``; ``Idempotency-Key`` on the API) makes a retry answer
the first result. Each crash is a real SIGKILL at a named point.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from conftest import run_cli

CRASH = "HEALTHNFT_CRASH_AT"


def _people(home: Path) -> tuple[str, str]:
    people = json.loads(run_cli(home, "participant", "list", "--json", check=True).stdout)
    patient = next(p["address"] for p in people if p["kind"] == "patient")
    research = next(p["address"] for p in people if p["kind"] == "research")
    return patient, research


def _share(home: Path, owner: str, to: str, request_id: str, days: int = 7, **env: str):
    return run_cli(home, "share", "--category", "laboratory", "--owner", owner, "--to", to,
                   "--purpose", "research", "--days", str(days), "--request-id", request_id,
                   "--json", env=env or None)  # fmt: skip


def _live_grants(home: Path, owner: str) -> list[dict]:
    rows = json.loads(run_cli(home, "grants", "--owner", owner, "--json", check=True).stdout)
    return [g for g in rows if g["state"] == "active"]


@pytest.mark.parametrize("point", ["share:after-keep", "share:after-send"])
def test_a_killed_share_retried_with_its_id_grants_once(fresh_demo_home, point: str) -> None:
    home, _ = fresh_demo_home
    alice, research = _people(home)
    rid = str(uuid.uuid4())
    killed = _share(home, alice, research, rid, **{CRASH: point})
    assert killed.returncode == -9  # SIGKILL at the named point
    retried = _share(home, alice, research, rid)
    assert retried.returncode == 0, retried.stderr
    again = _share(home, alice, research, rid)  # and once more, after it succeeded
    assert json.loads(again.stdout) == json.loads(retried.stdout)
    (live,) = _live_grants(home, alice)
    assert live["grant_id"] == json.loads(retried.stdout)["grant_id"]


def test_a_kept_transaction_whose_nonce_was_taken_is_signed_again_once(fresh_demo_home) -> None:
    home, _ = fresh_demo_home
    alice, research = _people(home)
    first, other = str(uuid.uuid4()), str(uuid.uuid4())
    assert _share(home, alice, research, first, **{CRASH: "share:after-keep"}).returncode == -9
    # Another share takes the kept transaction's nonce: that one can never be mined now.
    assert _share(home, alice, research, other, days=3).returncode == 0
    retried = _share(home, alice, research, first)
    assert retried.returncode == 0, retried.stderr
    assert len(_live_grants(home, alice)) == 2  # the other one and this one, once


def test_a_request_id_reused_for_something_else_is_refused(fresh_demo_home) -> None:
    home, _ = fresh_demo_home
    alice, research = _people(home)
    rid = str(uuid.uuid4())
    assert _share(home, alice, research, rid).returncode == 0
    reused = _share(home, alice, research, rid, days=8)
    assert reused.returncode == 10 and "already used for a different request" in reused.stderr
    bad = _share(home, alice, research, "short")
    assert bad.returncode == 2 and "request id" in bad.stderr
    assert len(_live_grants(home, alice)) == 1


def test_the_api_honours_idempotency_keys(served) -> None:
    patient = served.client()
    served.sign_in(patient, served.patient(4))
    before = len(patient.get("/api/grants").json())
    body = {"to": served.research, "purpose": "research", "days": 5, "category": "laboratory"}
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = patient.post("/api/grants", json=body, headers=key)
    second = patient.post("/api/grants", json=body, headers=key)
    assert first.status_code == second.status_code == 200, first.text
    assert first.json() == second.json()
    assert len(patient.get("/api/grants").json()) == before + 1
    other = patient.post("/api/grants", json={**body, "days": 6}, headers=key)
    assert other.status_code == 409 and other.json()["code"] == "conflict"
    # The same key from another participant is theirs, not a clash with this one.
    research = served.client()
    served.sign_in(research, served.research)
    ask = {"owner": served.patient(4), "purpose": "research", "category": "laboratory"}
    r1 = research.post("/api/requests", json=ask, headers=key)
    r2 = research.post("/api/requests", json=ask, headers=key)
    assert r1.status_code == 200, r1.text
    assert r1.json()["request_id"] == r2.json()["request_id"]
