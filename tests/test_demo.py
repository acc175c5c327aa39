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


def _patient_secrets(summary: dict) -> dict[str, list[bytes]]:
    """Each demo patient's private keys (account, X25519) as bytes, from the public seed."""
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    from healthnft.network import demo_patient_identity

    out = {}
    for p in summary["patients"]:
        ident = demo_patient_identity(p["name"])
        assert ident.address == p["address"]
        enc = ident.enc_private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        out[p["address"]] = [bytes(ident.account.key), enc]
    return out


def test_after_the_demo_the_node_home_holds_no_patient_key(demo_home: tuple[Path, dict]) -> None:
    """Issue 14's acceptance: after `healthnft demo` (the CLI), no file anywhere in the
    node's home holds a patient's private key, raw or as hex, nor a patient's keystore:
    the home's keystores are the institutions' only."""
    home, summary = demo_home
    secrets = _patient_secrets(summary)
    needles = [form for keys_ in secrets.values() for k in keys_
               for form in (k, k.hex().encode(), k.hex().upper().encode())]  # fmt: skip
    patients = {a.lower().removeprefix("0x") for a in secrets}
    files = [f for f in home.rglob("*") if f.is_file()]
    assert len(files) > 5
    keystores = 0
    for path in files:
        data = path.read_bytes()
        assert not any(n in data for n in needles), f"a patient's private key in {path}"
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, ValueError):
            continue
        if isinstance(doc, dict) and "crypto" in doc:  # a keystore v3 document
            keystores += 1
            assert str(doc.get("address", "")).lower() not in patients, path
    net = Network.open(home)
    try:
        institutions = {p.address.lower() for p in net.catalog.participants()
                        if p.kind != "patient"} | {net.config["admin"].lower()}  # fmt: skip
        kept = {f.stem.lower() for f in net.files.keystore_dir.glob("*.json")}
        assert kept and kept <= institutions
        assert keystores == len(kept)
        assert not any(net.files.keystore_file(a).exists() for a in secrets)
    finally:
        net.close()


def test_the_cli_acts_as_a_demo_patient_from_the_seed(demo_home: tuple[Path, dict]) -> None:
    """What the README shows: the CLI opens a demo patient's record, its key derived from
    the public demo seed on the spot, while the home keeps none."""
    home, summary = demo_home
    owner = summary["patients"][0]["address"]
    rows = json.loads(run_cli(home, "wallet", "list", "--owner", owner, "--json",
                              check=True).stdout)  # fmt: skip
    token = rows[0]["token_id"]
    shown = json.loads(run_cli(home, "wallet", "show", str(token), "--json", check=True).stdout)
    assert shown["token_id"] == token
    assert shown["resource"]["resourceType"] == rows[0]["resource_type"]
    verified = json.loads(run_cli(home, "verify", str(token), "--json", check=True).stdout)
    assert verified["valid"] and verified["reason"].startswith("authentic")
    assert not list((home / "keystore").glob(f"{owner}*"))


def test_the_cli_shares_as_a_demo_patient(fresh_demo_home: tuple[Path, dict]) -> None:
    """README's share: the CLI signs the grant as the demo patient (a key from the seed),
    and the home still keeps no patient keystore."""
    home, summary = fresh_demo_home
    owner = summary["patients"][0]["address"]
    members = json.loads(run_cli(home, "participant", "list", "--json", check=True).stdout)
    research = next(m["address"] for m in members if m["name"] == demo_module.DEMO_RESEARCH)
    token = json.loads(run_cli(home, "wallet", "list", "--owner", owner, "--json",
                               check=True).stdout)[0]["token_id"]  # fmt: skip
    run_cli(home, "share", str(token), "--owner", owner, "--to", research, "--purpose",
            "research", "--json", check=True)  # fmt: skip
    grants = json.loads(run_cli(home, "grants", "--owner", owner, "--json", check=True).stdout)
    assert [g["grantee"].lower() for g in grants] == [research.lower()]
    assert {f.stem.lower() for f in (home / "keystore").glob("*.json")}.isdisjoint(
        p["address"].lower() for p in summary["patients"])


def test_rerun_on_an_earlier_demos_home_drops_its_patient_keystores(
    fresh_demo_home: tuple[Path, dict], fhir_dir: Path
) -> None:
    """A home made by the demo before this change kept its patients' keystores: running
    the demo again deletes them (the seed gives the same keys again), says so, and is
    otherwise the same run: same labels, same addresses, nothing minted twice."""
    from healthnft import keys
    from healthnft.network import DEMO_PASSPHRASE

    home, first = fresh_demo_home
    for address, (secret, _enc) in _patient_secrets(first).items():
        made = keys.write_keystore(home / "keystore", secret, DEMO_PASSPHRASE, light=True)
        assert made.address == address
    proc = run_cli(home, "demo", "--data", str(fhir_dir), "--json", check=True)
    second = json.loads(proc.stdout)
    assert f"removed {len(first['patients'])} demo patient keystore(s)" in proc.stderr
    assert second["patients"] == first["patients"] and second["new_this_run"] == 0
    assert not any((home / "keystore" / f"{a}.json").exists() for a in _patient_secrets(first))
    again = run_cli(home, "demo", "--data", str(fhir_dir), "--json", check=True)
    assert "removed" not in again.stderr
