"""The demo: the JSON form it promises, idempotent re-runs, and the built-in sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import healthnft.services.demo as demo_module
from conftest import SYNTHEA, run_cli
from healthnft.ingest import ingest
from healthnft.network import Network
from healthnft.sample import write_sample

VERIFIED_LINE = "verified {n} issuer attestations (W3C VC, EdDSA) against the chain — minting"


def test_demo_json_summary_matches_the_data(demo_home: tuple[Path, dict], fhir_dir: Path) -> None:
    home, summary = demo_home
    expected = ingest([fhir_dir])
    n_records = sum(len(g.records) for g in expected.patients)
    assert summary["records_minted"] == n_records
    assert len(summary["patients"]) == len(expected.patients)
    assert sorted(p["records"] for p in summary["patients"]) == sorted(
        len(g.records) for g in expected.patients
    )
    assert summary["batches"] == len(expected.patients)
    assert 0 < summary["gas_per_record"] < 245_000
    assert all(p["address"].startswith("0x") and len(p["address"]) == 42
               for p in summary["patients"])  # fmt: skip
    if SYNTHEA.is_dir():
        assert n_records == 567 and len(summary["patients"]) == 6


def test_new_process_lists_every_record_again(demo_home: tuple[Path, dict]) -> None:
    home, summary = demo_home
    for patient in summary["patients"]:
        proc = run_cli(home, "wallet", "list", "--owner", patient["address"], "--json")
        assert proc.returncode == 0, proc.stderr
        rows = json.loads(proc.stdout)
        assert len(rows) == patient["records"]
        assert set(rows[0]) == {"token_id", "category", "resource_type", "status",
                                 "effective_date"}
        assert all(r["status"] == "active" for r in rows)


def test_demo_packs_verify_at_once(demo_home: tuple[Path, dict]) -> None:
    """What the README shows: a real pack of a demo batch is active, an invented one
    unknown (issue 15, point 8)."""
    home, summary = demo_home
    medicines = summary["drugs"]
    assert len(medicines["batches"]) == 2
    real = run_cli(home, "drug", "verify", "--json", "--", medicines["real_code"])
    assert real.returncode == 0 and json.loads(real.stdout)["status"] == "active"
    # The demo manufacturer's product credential names the product (issue 15, point 2).
    assert json.loads(real.stdout)["product"]["name"] == "Amoxicillin 500 mg capsules"
    assert [p["name"] for p in medicines["products"]] == [
        "Amoxicillin 500 mg capsules", "Paracetamol 500 mg tablets"]
    fake = run_cli(home, "drug", "verify", "--json", "--", medicines["invented_code"])
    assert fake.returncode == 1 and json.loads(fake.stdout)["status"] == "unknown"
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert medicines["real_code"] in readme and medicines["invented_code"] in readme


def test_rerunning_the_demo_mints_nothing_twice(fresh_demo_home: tuple[Path, dict],
                                                fhir_dir: Path) -> None:  # fmt: skip
    home, first = fresh_demo_home
    proc = run_cli(home, "demo", "--data", str(fhir_dir), "--json", check=True)
    second = json.loads(proc.stdout)
    assert second["new_this_run"] == 0
    assert first["attestations_verified"] == first["records_minted"]
    assert second["attestations_verified"] == 0  # counts this run's records only
    assert second["records_minted"] == first["records_minted"]
    assert second["patients"] == first["patients"]
    assert second["drugs"] == first["drugs"]  # the same batches, commissioned once
    net = Network.open(home)
    try:
        assert net.ledger.next_token_id() == first["records_minted"] + 1
    finally:
        net.close()


def test_demo_without_shared_data_uses_the_built_in_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo_module, "default_data_folder", lambda: None)
    notes: list[str] = []
    events: list[tuple[str, int]] = []

    def say(note: str) -> None:
        notes.append(note)
        if note.startswith("verified "):
            assert note == VERIFIED_LINE.format(n=6)
            events.append(("verified", int(note.split()[1])))

    summary = demo_module.run_demo(tmp_path / "home", None, say=say,
                                   on_minted=lambda n: events.append(("minted", n)))  # fmt: skip
    assert any("synthetic sample" in n for n in notes)
    assert any("demo keys" in n for n in notes)
    assert summary["records_minted"] == 18 and len(summary["patients"]) == 3
    # Each batch's attestations are verified against the chain, and said so, before it
    # is minted.
    assert events == [("verified", 6), ("minted", 6)] * 3
    assert summary["attestations_verified"] == 18
    net = Network.open(tmp_path / "home")
    try:
        owner = summary["patients"][0]["address"]
        listed = net.wallet().list(owner)
        assert {r["category"] for r in listed} >= {"laboratory", "immunization"}
        opened = net.wallet().open(listed[0]["token_id"], net.identity(owner))
        assert opened.resource["resourceType"] == listed[0]["resource_type"]
    finally:
        net.close()


def test_demo_shows_attestations_verified_before_each_mint(tmp_path: Path) -> None:
    data = write_sample(tmp_path / "data")
    proc = run_cli(tmp_path / "home", "demo", "--data", str(data), "--json", check=True)
    summary = json.loads(proc.stdout)
    assert {"records_minted", "patients", "batches", "gas_per_record"} <= set(summary)
    assert summary["attestations_verified"] == summary["records_minted"] == 18
    lines = [line for line in proc.stderr.splitlines() if line.startswith("verified ")]
    assert lines == [VERIFIED_LINE.format(n=p["records"]) for p in summary["patients"]]
    again = run_cli(tmp_path / "home", "demo", "--data", str(data), "--json", check=True)
    assert json.loads(again.stdout)["attestations_verified"] == 0
    assert "verified " not in again.stderr  # nothing minted, nothing to verify
