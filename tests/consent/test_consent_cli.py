"""Requests, approvals, policies and grantee access from the command line.

Also the privacy acceptance with consent on chain: after grants, requests with a
free-text reason, a policy and key releases, the exported chain holds none of
that text and none of the patient's data.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli

REASON = "Cohort study of glycated haemoglobin in adolescents, protocol HX-4471"


def _json(proc) -> object:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


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
    assert refused.returncode != 0 and "no valid grant" in refused.stderr

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
