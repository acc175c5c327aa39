"""Bad input gives one clear error line, a non-zero exit code, and changes nothing.

Acceptance: malformed JSON, a non-FHIR JSON, an invalid resource, an unknown
patient address, an unregistered issuer, a file that does not exist: each gives
one clear error line naming the problem, exit code ≠ 0, and nothing is minted
or lost.

"Nothing minted or lost" is checked on everything a mint touches, before and
after each bad run: the token contract's ``next_token_id`` and each wallet's
on-chain balance, the catalogue's record and batch rows (``index.sqlite``, all
of them and each wallet's), the vault's blobs (``vault.sqlite``); and at the end
of the module, every demo wallet's ``wallet list --json`` against its listing
before the first bad run.
"""

from __future__ import annotations

import copy
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from healthnft.network import Network

LIST_KEYS = ("token_id", "category", "resource_type", "status", "effective_date")
UNKNOWN_ADDRESS = "0x000000000000000000000000000000000000dEaD"


@dataclass
class Demo:
    home: Path
    issuer: str
    issuer_address: str
    patients: list[str]
    inputs: Path
    bundle: Path
    initial: dict[str, list[dict]] = field(default_factory=dict)


def _wallet_cli(home: Path, owner: str) -> list[dict]:
    proc = run_cli(home, "wallet", "list", "--owner", owner, "--json", check=True)
    return json.loads(proc.stdout)


def _close(net: Network) -> None:
    net.close()
    tester = getattr(net.ledger.w3.provider, "ethereum_tester", None)
    chain_db = getattr(getattr(tester, "backend", None), "db", None)
    if chain_db is not None:  # the embedded chain's SQLite connection
        chain_db.close()


def wallets(home: Path, owners: list[str]) -> dict[str, list[dict]]:
    """What `wallet list --json` shows for each owner, computed in-process."""
    net = Network.open(home)
    try:
        return {o: [{k: r[k] for k in LIST_KEYS} for r in net.wallet().list(o)] for o in owners}
    finally:
        _close(net)


def snapshot(home: Path, owners: list[str]) -> dict[str, Any]:
    """Everything a mint would change: tokens on chain, catalogue rows, vault blobs."""
    net = Network.open(home)
    try:
        chain = {
            "next_token_id": net.ledger.next_token_id(),
            "balances": {owner: net.ledger.balance_of(owner) for owner in owners},
        }
    finally:
        _close(net)
    index = sqlite3.connect(f"file:{home / 'index.sqlite'}?mode=ro", uri=True)
    try:
        catalogue = {
            "records": index.execute("SELECT count(*) FROM records").fetchone()[0],
            "batches": index.execute("SELECT count(*) FROM batches").fetchone()[0],
            "rows": {
                owner: index.execute(
                    "SELECT token_id, resource_type, category, status, batch_ref FROM records "
                    "WHERE lower(owner) = lower(?) ORDER BY token_id",
                    (owner,),
                ).fetchall()
                for owner in owners
            },
        }
    finally:
        index.close()
    vault = sqlite3.connect(f"file:{home / 'vault.sqlite'}?mode=ro", uri=True)
    try:
        blobs = vault.execute("SELECT count(*) FROM blobs").fetchone()[0]
    finally:
        vault.close()
    return {**chain, **catalogue, "blobs": blobs}


def assert_one_error_line(proc: Any, *fragments: str) -> str:
    """Exit code ≠ 0, no traceback, stderr is exactly one ``error:`` line naming the problem."""
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "Traceback" not in output, output
    assert proc.stdout.strip() == "", output
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, f"expected one error line, got:\n{proc.stderr}"
    line = lines[0]
    assert line.startswith("error: ") and line.removeprefix("error: ").strip(), line
    assert "internal error" not in line, line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


def _bundles(fhir_dir: Path) -> list[Path]:
    found = []
    for path in sorted(fhir_dir.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("resourceType") == "Bundle" and any(
            e["resource"]["resourceType"] == "Patient" for e in doc.get("entry", [])
        ):
            found.append(path)
    return found


def _an_observation(bundle: Path) -> dict:
    doc = json.loads(bundle.read_text(encoding="utf-8"))
    return next(
        e["resource"]
        for e in doc["entry"]
        if e["resource"]["resourceType"] == "Observation" and "valueQuantity" in e["resource"]
    )


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEALTHNFT_DEBUG", raising=False)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, fhir_dir: Path) -> Demo:
    """One demo home for the module (a demo run takes seconds), and the bad inputs."""
    base = tmp_path_factory.mktemp("cli-errors")
    home = base / "home"
    summary = json.loads(
        run_cli(home, "demo", "--data", str(fhir_dir), "--json", check=True).stdout
    )
    bundles = _bundles(fhir_dir)
    assert len(bundles) >= 2
    inputs = base / "inputs"
    inputs.mkdir()
    (inputs / "empty-folder").mkdir()
    (inputs / "malformed.json").write_text('{"resourceType": "Observation", "status": "fi')
    (inputs / "not-fhir.json").write_text(json.dumps({"name": "a", "values": [1, 2]}))
    (inputs / "list.json").write_text("[1, 2, 3]")
    (inputs / "unknown-type.json").write_text(json.dumps({"resourceType": "Prescription"}))
    (inputs / "organization.json").write_text(
        json.dumps({"resourceType": "Organization", "name": "General Hospital"})
    )
    obs = _an_observation(bundles[0])
    bad = copy.deepcopy(obs)
    bad["status"] = "done"  # not in Observation.status's required value set
    (inputs / "invalid-observation.json").write_text(json.dumps(bad))
    bad = copy.deepcopy(obs)
    bad["valueQuantity"]["value"] = "a lot"
    (inputs / "bad-value-observation.json").write_text(json.dumps(bad))
    d = Demo(
        home=home,
        issuer=summary["issuer"]["name"],
        issuer_address=summary["issuer"]["address"],
        patients=[p["address"] for p in summary["patients"]],
        inputs=inputs,
        bundle=bundles[0],
    )
    assert len(d.patients) >= 1 and all(p["records"] > 0 for p in summary["patients"])
    d.initial = wallets(home, d.patients)
    return d


def _mint(d: Demo, *files: Path | str, issuer: str | None = None, patient: str | None = None):
    return run_cli(
        d.home, "mint", "--issuer", issuer or d.issuer, "--patient", patient or d.patients[0],
        *map(str, files),
    )  # fmt: skip


def _new_patient(d: Demo, name: str) -> str:
    proc = run_cli(
        d.home, "participant", "add", "--kind", "patient", "--name", name, "--json", check=True
    )
    return json.loads(proc.stdout)["address"]


# -- one bad input at a time -----------------------------------------------------------

Case = Callable[[Demo], tuple[Any, tuple[str, ...]]]

CASES: list[Any] = [
    pytest.param(
        lambda d: (_mint(d, d.inputs / "malformed.json"), ("input file 1 of 1", "not valid JSON")),
        id="malformed-json",
    ),
    pytest.param(
        lambda d: (_mint(d, d.inputs / "not-fhir.json"), ("input file 1", "not a FHIR resource")),
        id="non-fhir-json-object",
    ),
    pytest.param(
        lambda d: (_mint(d, d.inputs / "list.json"), ("input file 1", "not a FHIR resource")),
        id="non-fhir-json-array",
    ),
    pytest.param(
        lambda d: (
            _mint(d, d.inputs / "invalid-observation.json"),
            ("input file 1 of 1", "invalid Observation", "status"),
        ),
        id="invalid-resource-status",
    ),
    pytest.param(
        lambda d: (
            _mint(d, d.inputs / "bad-value-observation.json"),
            ("input file 1 of 1", "invalid Observation", "valueQuantity.value"),
        ),
        id="invalid-resource-datatype",
    ),
    pytest.param(
        lambda d: (
            _mint(d, d.inputs / "unknown-type.json"),
            ("input file 1 of 1", "unknown FHIR resource type"),
        ),
        id="unknown-resource-type",
    ),
    pytest.param(
        lambda d: (
            _mint(d, d.bundle, patient=UNKNOWN_ADDRESS),
            (UNKNOWN_ADDRESS, "not a registered participant"),
        ),
        id="unknown-patient-address",
    ),
    pytest.param(
        lambda d: (_mint(d, d.bundle, patient="not-an-address"), ("not a 0x",)),
        id="malformed-patient-address",
    ),
    pytest.param(
        lambda d: (
            _mint(d, d.bundle, issuer="no-such-hospital"),
            ("no-such-hospital", "not a registered hospital"),
        ),
        id="unregistered-issuer",
    ),
    pytest.param(
        lambda d: (
            _mint(d, d.inputs / "does-not-exist.json"),
            ("input 1 of 1", "no such file"),
        ),
        id="file-does-not-exist",
    ),
    pytest.param(
        lambda d: (_mint(d, d.inputs / "empty-folder"), ("no FHIR JSON files",)),
        id="folder-without-json",
    ),
    pytest.param(
        lambda d: (_mint(d, d.inputs / "organization.json"), ("no patient records",)),
        id="only-reference-data",
    ),
    pytest.param(
        lambda d: (
            _mint(d, *_bundles(d.bundle.parent)[:2]),
            ("2 different patients",),
        ),
        id="two-patients-in-one-mint",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_error_line_and_changes_nothing(case: Case, demo: Demo) -> None:
    before = snapshot(demo.home, demo.patients)
    proc, fragments = case(demo)
    assert_one_error_line(proc, *fragments)
    assert snapshot(demo.home, demo.patients) == before


# -- retries and bundles ------------------------------------------------------------------


def test_retrying_a_mint_mints_nothing_the_second_time(demo: Demo) -> None:
    owner = _new_patient(demo, "retry-patient")
    first = _mint_json(demo, owner)
    assert first["records_minted"] > 0
    assert first["already_minted"] == 0
    assert len(first["token_ids"]) == first["records_minted"]
    after_first = snapshot(demo.home, [*demo.patients, owner])
    second = _mint_json(demo, owner)
    assert second["records_minted"] == 0
    assert second["already_minted"] == first["records_minted"]
    assert second["batches"] == 0 and second["token_ids"] == []
    assert snapshot(demo.home, [*demo.patients, owner]) == after_first
    listed = _wallet_cli(demo.home, owner)
    assert [r["token_id"] for r in listed] == first["token_ids"]


def _mint_json(demo: Demo, owner: str) -> dict:
    proc = run_cli(
        demo.home, "mint", "--issuer", demo.issuer, "--patient", owner, str(demo.bundle), "--json"
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_an_invalid_resource_in_a_bundle_mints_none_of_it(demo: Demo, tmp_path: Path) -> None:
    owner = _new_patient(demo, "broken-bundle-patient")
    doc = json.loads(demo.bundle.read_text(encoding="utf-8"))
    observations = [
        i for i, e in enumerate(doc["entry"]) if e["resource"]["resourceType"] == "Observation"
    ]
    broken_at = observations[len(observations) // 2]  # valid resources before and after it
    doc["entry"][broken_at]["resource"]["status"] = "done"
    broken = tmp_path / "broken-bundle.json"
    broken.write_text(json.dumps(doc), encoding="utf-8")
    before = snapshot(demo.home, [*demo.patients, owner])
    proc = _mint(demo, broken, patient=owner)
    assert_one_error_line(proc, "input file 1 of 1", f"entry {broken_at}", "invalid Observation")
    after = snapshot(demo.home, [*demo.patients, owner])
    assert after == before
    assert after["balances"][owner] == 0 and after["rows"][owner] == []


# -- help ---------------------------------------------------------------------------------


def test_main_help_lists_the_commands(demo: Demo) -> None:
    proc = run_cli(demo.home, "--help")
    assert proc.returncode == 0, proc.stderr
    for name in ("init", "demo", "mint", "verify", "wallet", "chain", "participant", "--home"):
        assert name in proc.stdout, name


def test_mint_help_lists_its_options(demo: Demo) -> None:
    proc = run_cli(demo.home, "mint", "--help")
    assert proc.returncode == 0, proc.stderr
    for name in ("--issuer", "--patient", "--passphrase", "--json", "FILES"):
        assert name.lower() in proc.stdout.lower(), name


# -- and at the end, through the CLI ----------------------------------------------------------


def test_every_demo_wallet_lists_as_before(demo: Demo) -> None:
    """After every failure above, each demo patient's `wallet list --json` is what it was."""
    for owner in demo.patients:
        assert demo.initial[owner], owner
        assert _wallet_cli(demo.home, owner) == demo.initial[owner], owner


def test_a_non_patient_address_is_refused(demo: Demo) -> None:
    before = snapshot(demo.home, demo.patients)
    proc = _mint(demo, demo.bundle, patient=demo.issuer_address)
    assert_one_error_line(proc, demo.issuer_address)
    assert snapshot(demo.home, demo.patients) == before
