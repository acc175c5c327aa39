"""Crash test: kill the CLI in the middle of a mint, re-run, and find no duplicate
token, no orphan and no loss.

Acceptance: "kill the process in the middle of a batch (after encryption, before
the mint transaction, and right after it); re-run: no duplicate tokens, no orphan,
no loss."

The kill points:

* ``after-encrypt``: the batch is journaled ``prepared`` and its ciphertexts are
  stored, nothing is signed (the pipeline's own ``HEALTHNFT_CRASH_AT`` hook);
* ``before-broadcast``: the signed transaction is journaled ``sent`` but never
  reached the chain (the pipeline's hook, right after ``Catalog.mark_sent``);
* ``after-send``: the transaction is mined, the batch is still ``sent`` locally
  (the pipeline's hook).

Every crash is a real SIGKILL of a real CLI process on a real home.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from healthnft.ledger import merkle
from healthnft.network import Network
from healthnft.vault.catalog import BatchRow

# Resource types that describe the network, not a patient (never minted).
REFERENCE_TYPES = {
    "Organization", "Practitioner", "PractitionerRole", "Location", "HealthcareService",
    "Endpoint", "Medication", "Substance", "Device",
}  # fmt: skip
CRASH_POINTS = ["after-encrypt", "before-broadcast", "after-send"]

# Runs the CLI (argv[2:]), SIGKILLing the process as soon as the Catalog method named by
# argv[1] returns: a crash at a point the pipeline has no hook for.
_KILL_AFTER = """
import os, signal, sys
from healthnft import cli
from healthnft.vault.blobstore import SqliteBlobStore
from healthnft.vault.catalog import Catalog

owner_name, _, method = sys.argv[1].rpartition(".")
owner = {"": Catalog, "Catalog": Catalog, "SqliteBlobStore": SqliteBlobStore}[owner_name]
original = getattr(owner, method)

def killed_after(self, *args, **kwargs):
    original(self, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)

setattr(owner, method, killed_after)
sys.argv = ["healthnft", *sys.argv[2:]]
cli.main()
"""


def _patient_records(bundle: Path) -> int:
    doc = json.loads(bundle.read_text(encoding="utf-8"))
    types = [e["resource"]["resourceType"] for e in doc.get("entry", [])]
    return sum(1 for t in types if t not in REFERENCE_TYPES)


def _patient_bundles(fhir_dir: Path) -> list[Path]:
    found = []
    for path in sorted(fhir_dir.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        types = {e["resource"]["resourceType"] for e in doc.get("entry", [])}
        if "Patient" in types:
            found.append(path)
    return found


@dataclass(frozen=True)
class Template:
    home: Path
    first: str  # the demo's patient
    first_count: int
    p2: str
    p2_file: Path
    p2_count: int
    p3: str
    p3_file: Path
    p3_count: int


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, fhir_dir: Path) -> Template:
    """A demo home over one bundle, plus two more registered patients (no records yet)."""
    bundles = _patient_bundles(fhir_dir)
    assert len(bundles) >= 3, "need three patient bundles"
    root = tmp_path_factory.mktemp("crash-template")
    data = root / "data"
    data.mkdir()
    files = []
    for i, bundle in enumerate(bundles[:3]):
        target = (data if i == 0 else root) / bundle.name
        shutil.copy(bundle, target)
        files.append(target)
    home = root / "home"
    demo = json.loads(run_cli(home, "demo", "--data", str(data), "--json", check=True).stdout)
    (first,) = demo["patients"]
    assert first["records"] == _patient_records(files[0])
    p2, p3 = (
        json.loads(run_cli(home, "participant", "add", "--kind", "patient", "--name", name,
                           "--json", check=True).stdout)["address"]
        for name in ("p2", "p3")
    )  # fmt: skip
    return Template(home, first["address"], first["records"],
                    p2, files[1], _patient_records(files[1]),
                    p3, files[2], _patient_records(files[2]))  # fmt: skip


@pytest.fixture
def home(template: Template, tmp_path: Path) -> Path:
    """A private copy of the template home (no process has it open)."""
    dest = tmp_path / "home"
    shutil.copytree(template.home, dest)
    return dest


def _mint(home: Path, patient: str, file: Path) -> dict:
    proc = run_cli(home, "mint", "--issuer", "demo-hospital", "--patient", patient, str(file),
                   "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _crash_mint(home: Path, point: str, patient: str, file: Path) -> None:
    args = ["mint", "--issuer", "demo-hospital", "--patient", patient, str(file), "--json"]
    proc = run_cli(home, *args, env={"HEALTHNFT_CRASH_AT": point})
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)


def _run_killed_after(method: str, home: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "HEALTHNFT_CRASH_AT"}
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_AFTER, method, "--home", str(home), *args],
        capture_output=True, text=True, env=env, cwd=str(REPO), timeout=600,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)


def _wallet_tokens(home: Path, owner: str) -> list[int]:
    rows = json.loads(run_cli(home, "wallet", "list", "--owner", owner, "--json",
                              check=True).stdout)  # fmt: skip
    return [r["token_id"] for r in rows]


def _verify(home: Path, token_id: int) -> None:
    proc = run_cli(home, "verify", str(token_id), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["valid"] is True, result
    assert "commitment recomputed" in result["reason"]  # the owner's key opened the record


def _crash_left(home: Path, point: str, start: int, count: int) -> BatchRow:
    """The crash happened where it should, and left one unfinished batch behind."""
    net = Network.open(home)
    try:
        (batch,) = net.catalog.unfinished_batches()
        assert batch.state == ("prepared" if point == "after-encrypt" else "sent")
        assert (batch.start_token, batch.count) == (start, count)
        minted_on_chain = point == "after-send"
        assert net.ledger.next_token_id() == start + (count if minted_on_chain else 0)
        if point == "before-broadcast":
            assert net.ledger.nonce(batch.issuer) == batch.nonce  # signed, never sent
        # Nothing of an unfinished batch is visible in a wallet.
        assert net.wallet().list(batch.owner) == []
        return batch
    finally:
        net.close()


def _check_journaled_tx_mined(home: Path, crashed: BatchRow) -> None:
    """The batch on chain came from the very transaction the crashed run signed."""
    net = Network.open(home)
    try:
        settled = net.catalog.batch(crashed.batch_ref)
        assert settled is not None and settled.state == "minted"
        assert settled.tx_hash == crashed.tx_hash
        receipt = net.ledger.w3.eth.get_transaction_receipt(crashed.tx_hash)
        assert receipt["status"] == 1
        assert receipt["from"].lower() == crashed.issuer.lower()
    finally:
        net.close()


def _check_home(home: Path, expected: dict[str, int]) -> None:
    """No duplicate, no orphan, no loss: the catalogue, the vault and the chain agree."""
    total = sum(expected.values())
    index = sqlite3.connect(home / "index.sqlite")
    vault = sqlite3.connect(home / "vault.sqlite")
    try:
        q = index.execute
        assert q("SELECT count(*) FROM batches WHERE state != 'minted'").fetchone()[0] == 0
        token_ids = [r[0] for r in q("SELECT token_id FROM records ORDER BY token_id")]
        assert token_ids == list(range(1, total + 1))  # unique and contiguous: no gap
        per_owner = dict(q("SELECT owner, count(*) FROM records GROUP BY owner").fetchall())
        assert {o.lower(): n for o, n in per_owner.items()} == {
            o.lower(): n for o, n in expected.items()
        }
        assert q("SELECT count(DISTINCT record_key) FROM records").fetchone()[0] == total
        for orphan_sql in (
            "SELECT count(*) FROM records WHERE batch_ref NOT IN (SELECT batch_ref FROM batches)",
            "SELECT count(*) FROM batch_keys "
            "WHERE batch_ref NOT IN (SELECT batch_ref FROM batches)",
            "SELECT count(*) FROM batches b WHERE count != "
            "(SELECT count(*) FROM records r WHERE r.batch_ref = b.batch_ref)",
        ):
            assert q(orphan_sql).fetchone()[0] == 0, orphan_sql
        referenced = [r[0] for r in q("SELECT blob_digest FROM records")]
        stored = [r[0] for r in vault.execute("SELECT digest FROM blobs")]
        assert len(set(referenced)) == len(referenced) == total
        orphans, missing = set(stored) - set(referenced), set(referenced) - set(stored)
        assert not orphans, f"{len(orphans)} orphan blob(s) in the vault"
        assert not missing, f"{len(missing)} record(s) without their ciphertext"
        batches = q(
            "SELECT batch_ref, owner, start_token, count, root, chain_batch_id FROM batches"
        ).fetchall()
        records = q("SELECT token_id, batch_ref, commitment, proof FROM records").fetchall()
    finally:
        index.close()
        vault.close()

    net = Network.open(home)
    try:
        ledger = net.ledger
        assert ledger.next_token_id() == total + 1
        assert ledger.batch_count() == len(batches)
        for owner, n in expected.items():
            assert ledger.balance_of(owner) == n
        roots = {}
        for ref, owner, start, count, root, chain_id in batches:
            info = ledger.batch(chain_id)
            assert (info.owner.lower(), info.start, info.end, info.root) == (
                owner.lower(), start, start + count, root,
            )  # fmt: skip
            roots[ref] = root
        for token_id, ref, commitment, proof in records:
            leaf = merkle.leaf_hash(token_id, commitment)
            assert merkle.verify(leaf, merkle.unpack_proof(proof), roots[ref]), token_id
    finally:
        net.close()


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_crash_then_rerun_the_same_mint(template: Template, home: Path, point: str) -> None:
    t = template
    start = t.first_count + 1
    _crash_mint(home, point, t.p2, t.p2_file)
    crashed = _crash_left(home, point, start, t.p2_count)

    again = _mint(home, t.p2, t.p2_file)
    if point == "after-encrypt":  # rolled back, then minted afresh into the same range
        assert (again["records_minted"], again["already_minted"]) == (t.p2_count, 0)
        assert again["token_ids"] == list(range(start, start + t.p2_count))
    else:  # recovered from the journal: the batch on chain is the one the crash left
        assert (again["records_minted"], again["already_minted"]) == (0, t.p2_count)
        assert again["batches"] == 0
        _check_journaled_tx_mined(home, crashed)
    expected = {t.first: t.first_count, t.p2: t.p2_count}
    _check_home(home, expected)
    tokens = _wallet_tokens(home, t.p2)
    assert tokens == list(range(start, start + t.p2_count))
    _verify(home, tokens[0])
    _verify(home, tokens[-1])

    third = _mint(home, t.p2, t.p2_file)  # idempotent
    assert (third["records_minted"], third["already_minted"], third["batches"]) == (
        0, t.p2_count, 0,
    )  # fmt: skip
    _check_home(home, expected)


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_crash_then_another_mint_recovers_first(
    template: Template, home: Path, point: str
) -> None:
    t = template
    start = t.first_count + 1
    _crash_mint(home, point, t.p2, t.p2_file)
    _crash_left(home, point, start, t.p2_count)

    other = _mint(home, t.p3, t.p3_file)  # recovery runs at the start of any mint
    assert (other["records_minted"], other["already_minted"]) == (t.p3_count, 0)
    if point == "after-encrypt":  # p2's batch was rolled back: p3 takes its range
        assert other["token_ids"] == list(range(start, start + t.p3_count))
        _check_home(home, {t.first: t.first_count, t.p3: t.p3_count})
        again = _mint(home, t.p2, t.p2_file)
        assert (again["records_minted"], again["already_minted"]) == (t.p2_count, 0)
        p2_start = start + t.p3_count
    else:  # p2's batch is on chain (or was re-sent), settled before p3's
        p3_start = start + t.p2_count
        assert other["token_ids"] == list(range(p3_start, p3_start + t.p3_count))
        again = _mint(home, t.p2, t.p2_file)
        assert (again["records_minted"], again["already_minted"]) == (0, t.p2_count)
        p2_start = start
    _check_home(home, {t.first: t.first_count, t.p2: t.p2_count, t.p3: t.p3_count})
    assert _wallet_tokens(home, t.p2) == list(range(p2_start, p2_start + t.p2_count))
    _verify(home, p2_start)


@pytest.mark.parametrize("killed_after", ["SqliteBlobStore.delete_many", "Catalog.drop_batch"])
def test_crash_during_recovery_leaves_no_orphan(
    template: Template, home: Path, killed_after: str
) -> None:
    """Recovery deletes ciphertexts before the journal entry; dying between is safe."""
    t = template
    _crash_mint(home, "after-encrypt", t.p2, t.p2_file)
    # The next run dies in recovery, in the middle of rolling the prepared batch back.
    _run_killed_after(killed_after, home, "mint", "--issuer", "demo-hospital",
                      "--patient", t.p3, str(t.p3_file), "--json")  # fmt: skip
    again = _mint(home, t.p2, t.p2_file)
    assert (again["records_minted"], again["already_minted"]) == (t.p2_count, 0)
    _check_home(home, {t.first: t.first_count, t.p2: t.p2_count})
