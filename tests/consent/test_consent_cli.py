"""Requests, approvals, policies and grantee access from the command line.

Also the privacy acceptance with consent on chain: after grants, requests with a
free-text reason, a policy and key releases, the exported chain holds none of
that text and none of the patient's data.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from conftest import run_cli
from healthnft.services.access import NOT_VISIBLE

REASON = "Cohort study of glycated haemoglobin in adolescents, protocol HX-4471"


def _json(proc) -> object:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def home(demo_home: tuple[Path, dict], tmp_path: Path) -> tuple[Path, dict]:
    """A private copy of the session's demo home (cheaper than a fresh demo)."""
    src, summary = demo_home
    dst = tmp_path / "home"
    shutil.copytree(src, dst)
    return dst, summary


def _add(home: Path, kind: str, name: str) -> str:
    return _json(run_cli(home, "participant", "add", "--kind", kind, "--name", name,
                         "--json"))["address"]  # fmt: skip


def test_a_removed_policy_approves_nothing(home: tuple[Path, dict]) -> None:
    path, summary = home
    alice = summary["patients"][0]["address"]
    research = _add(path, "research", "uni")
    ask = ("request", "--owner", alice, "--as", research, "--category", "laboratory",
           "--purpose", "research", "--json")  # fmt: skip
    added = _json(run_cli(path, "policy", "add", "--owner", alice, "--kind", "research",
                          "--purpose", "research", "--category", "laboratory",
                          "--json"))  # fmt: skip
    assert _json(run_cli(path, *ask))["state"] == "approved"  # the policy matches...
    removed = _json(run_cli(path, "policy", "remove", str(added["policy"]), "--owner", alice,
                            "--json"))  # fmt: skip
    assert removed == {"policy": added["policy"], "removed": True}
    later = _json(run_cli(path, *ask))  # ...and once removed, the same request waits
    assert later["state"] == "pending" and later["grant_id"] is None
    (policy,) = _json(run_cli(path, "policy", "list", "--owner", alice, "--json"))
    assert policy["policy"] == added["policy"] and policy["active"] is False
    again = run_cli(path, "policy", "remove", str(added["policy"]), "--owner", alice, "--json")
    assert again.returncode != 0 and len(again.stderr.strip().splitlines()) == 1


def test_share_a_category_for_seven_days(home: tuple[Path, dict]) -> None:
    path, summary = home
    alice = summary["patients"][0]["address"]
    research = _add(path, "research", "uni")
    before = int(time.time())
    grant = _json(run_cli(path, "share", "--category", "laboratory", "--owner", alice, "--to",
                          research, "--purpose", "research", "--days", "7", "--json"))  # fmt: skip
    after = int(time.time())
    assert isinstance(grant["grant_id"], int) and grant["grant_id"] > 0
    assert grant["grantee"] == research and grant["purpose"] == "research"
    assert before + 7 * 86400 <= grant["expires"] <= after + 7 * 86400
    rows = _json(run_cli(path, "wallet", "list", "--owner", alice, "--json"))
    lab = next(r["token_id"] for r in rows if r["category"] == "laboratory")
    other = next(r["token_id"] for r in rows if r["category"] != "laboratory")
    opened = _json(run_cli(path, "open", str(lab), "--as", research, "--json"))
    assert opened["token_id"] == lab and opened["meta"]["category"] == "laboratory"
    refused = run_cli(path, "open", str(other), "--as", research, "--json")
    assert refused.returncode != 0 and refused.stdout == ""
    # Outside the grant, a record is answered as one that does not exist.
    assert refused.stderr == f"error: {NOT_VISIBLE}\n"


def test_consent_flow_and_privacy_on_chain(fresh_demo_home: tuple[Path, dict],
                                           tmp_path: Path) -> None:  # fmt: skip
    home, summary = fresh_demo_home
    alice = summary["patients"][0]["address"]
    research = _json(run_cli(home, "participant", "add", "--kind", "research", "--name", "uni",
                             "--json"))["address"]  # fmt: skip
    insurer = _json(run_cli(home, "participant", "add", "--kind", "insurer", "--name", "ins",
                            "--json"))["address"]  # fmt: skip
    rows = _json(run_cli(home, "wallet", "list", "--owner", alice, "--json"))
    lab = next(r["token_id"] for r in rows if r["category"] == "laboratory")
    imm = next(r["token_id"] for r in rows if r["category"] == "immunization")

    # A policy approves the institute's research request at once.
    _json(run_cli(home, "policy", "add", "--owner", alice, "--kind", "research", "--purpose",
                  "research", "--category", "laboratory", "--json"))  # fmt: skip
    auto = _json(run_cli(home, "request", "--owner", alice, "--as", research, "--category",
                         "laboratory", "--purpose", "research", "--reason", REASON,
                         "--json"))  # fmt: skip
    assert auto["state"] == "approved" and auto["grant_id"]
    opened = _json(run_cli(home, "open", str(lab), "--as", research, "--json"))
    assert opened["resource"]["resourceType"] == "Observation"
    refused = run_cli(home, "open", str(imm), "--as", research)
    assert refused.returncode != 0 and NOT_VISIBLE in refused.stderr

    # The insurer's request does not match: it waits; declined, then asked again, approved.
    pending = _json(run_cli(home, "request", "--owner", alice, "--as", insurer, "--token-id",
                            str(imm), "--purpose", "insurance", "--reward-wei", "1000",
                            "--json"))  # fmt: skip
    assert pending["state"] == "pending" and pending["reward_wei"] == 1000
    listed = _json(run_cli(home, "requests", "--owner", alice, "--json"))
    assert [r["reason"] for r in listed if r["request_id"] == auto["request_id"]] == [REASON]
    _json(run_cli(home, "decline", str(pending["request_id"]), "--owner", alice, "--json"))
    again = _json(run_cli(home, "request", "--owner", alice, "--as", insurer, "--token-id",
                          str(imm), "--purpose", "insurance", "--json"))  # fmt: skip
    granted = _json(run_cli(home, "approve", str(again["request_id"]), "--owner", alice,
                            "--json"))  # fmt: skip
    assert granted["grant_id"]
    assert _json(run_cli(home, "open", str(imm), "--as", insurer, "--json"))["token_id"] == imm

    # The patient sees every release; then revokes, and the grantee is refused.
    log = _json(run_cli(home, "access-log", "--owner", alice, "--json"))
    assert {(e["token_id"], e["grantee"]) for e in log} == {(lab, research), (imm, insurer)}
    run_cli(home, "revoke", str(granted["grant_id"]), "--owner", alice, check=True)
    assert run_cli(home, "open", str(imm), "--as", insurer).returncode != 0
    policies = _json(run_cli(home, "policy", "list", "--owner", alice, "--json"))
    assert policies[0]["kind"] == "research" and policies[0]["active"]

    # Privacy: no free text, no category names, no record content on chain.
    export = tmp_path / "chain.json"
    run_cli(home, "chain", "export", str(export), check=True)
    text = export.read_text()
    raw = b"".join(p.read_bytes() for p in home.glob("chain.sqlite*"))
    quantity = opened["resource"].get("valueQuantity") or {}
    for needle in (REASON, "glycated", "laboratory", "immunization", "insurance",
                   opened["resource"]["id"]):  # fmt: skip
        assert needle not in text, needle
        assert needle.encode().hex() not in text, needle
        assert needle.encode() not in raw, needle
    if "value" in quantity:
        assert f'"value":{quantity["value"]}' not in text
