"""Crash test: SIGKILL `healthnft amend` at every step, run it again, and find exactly one
correction that supersedes the old token and verifies, and no duplicate.

Acceptance (issue 11): "Killing `healthnft amend` with SIGKILL at any moment, then
running it again, always ends with exactly one new token that supersedes the old one
and verifies, and no duplicate."

A correction is one transaction (the contract's ``amend``) journaled like any batch,
so the steps a kill can split are the minting pipeline's (``HEALTHNFT_CRASH_AT``):

* ``after-encrypt``: journaled ``prepared``, ciphertext stored, nothing signed;
* ``before-broadcast``: the signed ``amend`` journaled ``sent``, never broadcast;
* ``after-send``: mined (old token superseded on chain), batch still ``sent``, the old
  catalogue row still ``active``;
* ``after-retire``: the old row marked ``superseded``, the batch still ``sent``;
* ``after-minted``: all done locally, the process dies before answering.

Plus a second kill inside the next run's recovery (after it marks the old row), and
a kill from outside at a spread of moments. Every crash is a real SIGKILL of a real CLI
process on a private copy of one prepared home (approval already given).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from healthnft.network import Network

CRASH_POINTS = ["after-encrypt", "before-broadcast", "after-send", "after-retire",
                "after-minted"]  # fmt: skip

# Runs the CLI (argv[2:]) and SIGKILLs it as soon as the Catalog method argv[1] returns.
_KILL_AFTER = """
import os, signal, sys
from healthnft import cli
from healthnft.vault.catalog import Catalog

original = getattr(Catalog, sys.argv[1])

def killed_after(self, *args, **kwargs):
    original(self, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)

setattr(Catalog, sys.argv[1], killed_after)
sys.argv = ["healthnft", *sys.argv[2:]]
cli.main()
"""


@dataclass(frozen=True)
class Template:
    home: Path
    owner: str
    old: int
    fixed: Path
    tokens_before: int
    next_token: int  # the id the correction gets


def _patient_bundle(fhir_dir: Path) -> Path:
    for path in sorted(fhir_dir.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if any(e["resource"]["resourceType"] == "Patient" for e in doc.get("entry", [])):
            return path
    raise AssertionError("no patient bundle")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, fhir_dir: Path) -> Template:
    """A demo home over one patient, whose owner has approved the hospital's correction."""
    root = tmp_path_factory.mktemp("amend-crash")
    data = root / "data"
    data.mkdir()
    shutil.copy(_patient_bundle(fhir_dir), data)
    home = root / "home"
    demo = json.loads(run_cli(home, "demo", "--data", str(data), "--json", check=True).stdout)
    owner = demo["patients"][0]["address"]
    rows = json.loads(run_cli(home, "wallet", "list", "--owner", owner, "--json",
                              check=True).stdout)  # fmt: skip
    old = rows[len(rows) // 2]["token_id"]
    shown = json.loads(run_cli(home, "wallet", "show", str(old), "--json", check=True).stdout)
    resource = shown["resource"]
    resource.setdefault("meta", {})["tag"] = [{"code": "corrected"}]
    fixed = root / "fixed.json"
    fixed.write_text(json.dumps(resource))
    run_cli(home, "approve-amendment", str(old), "--owner", owner, "--issuer",
            "demo-hospital", check=True)  # fmt: skip
    return Template(home, owner, old, fixed, len(rows), max(r["token_id"] for r in rows) + 1)


@pytest.fixture
def home(template: Template, tmp_path: Path) -> Path:
    """A private copy of the template home (no process has it open)."""
    dest = tmp_path / "home"
    shutil.copytree(template.home, dest)
    return dest


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HEALTHNFT_CRASH_AT"}
    return {**env, "HEALTHNFT_HOME": str(home)}


def _amend_args(t: Template) -> list[str]:
    return ["amend", str(t.old), str(t.fixed), "--issuer", "demo-hospital", "--json"]


def _amend(home: Path, t: Template) -> dict:
    proc = run_cli(home, *_amend_args(t))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _killed_after(home: Path, method: str, *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_AFTER, method, "--home", str(home), *args],
        capture_output=True, text=True, env=_env(home), cwd=str(REPO), timeout=600,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)


def _check_corrected(home: Path, t: Template) -> None:
    """Exactly one new token, superseding the old, verifying; nothing else minted."""
    net = Network.open(home)
    try:
        assert net.catalog.unfinished_batches() == []
        assert net.ledger.next_token_id() == t.next_token + 1  # one token, no duplicate
        assert net.ledger.superseded_by(t.old) == t.next_token
        assert net.ledger.owner_of(t.next_token).lower() == t.owner.lower()
        wallet = net.wallet()
        rows = {r["token_id"]: r["status"] for r in wallet.list(t.owner)}
        assert len(rows) == t.tokens_before + 1
        assert rows[t.old] == "superseded" and rows[t.next_token] == "active"
        old = wallet.verify(t.old)
        assert (old.valid, old.reason) == (False, f"superseded: corrected by token {t.next_token}")
        new = wallet.verify(t.next_token, net.identity(t.owner))
        assert new.valid, new.reason
        assert "commitment recomputed" in new.reason  # the owner's key opened the record
        assert new.reason.endswith(f"; corrects token {t.old}")
        assert wallet.supersedes(t.next_token, from_log=True) == t.old  # one event, on chain
    finally:
        net.close()


@pytest.mark.slow
@pytest.mark.parametrize("point", CRASH_POINTS)
def test_kill_amend_then_run_it_again(template: Template, home: Path, point: str) -> None:
    t = template
    crashed = run_cli(home, *_amend_args(t), env={"HEALTHNFT_CRASH_AT": point})
    assert crashed.returncode == -signal.SIGKILL, (crashed.returncode, crashed.stderr)
    net = Network.open(home)
    try:  # the crash happened where it should
        on_chain = net.ledger.superseded_by(t.old)
        assert on_chain == (None if point in ("after-encrypt", "before-broadcast")
                            else t.next_token)  # fmt: skip
        unfinished = [b.state for b in net.catalog.unfinished_batches()]
        expected = {"after-encrypt": ["prepared"], "after-minted": []}.get(point, ["sent"])
        assert unfinished == expected
    finally:
        net.close()

    assert _amend(home, t) == {"token_id": t.next_token, "supersedes": t.old}
    _check_corrected(home, t)
    if point == "after-minted":  # done before the kill: any number of re-runs agree
        assert _amend(home, t) == {"token_id": t.next_token, "supersedes": t.old}
        _check_corrected(home, t)


@pytest.mark.slow
def test_kill_amend_then_kill_its_recovery(template: Template, home: Path) -> None:
    """The re-run dies too, inside recovery, right after it marks the old row: the third
    run finishes the same correction from the same journaled transaction."""
    t = template
    crashed = run_cli(home, *_amend_args(t), env={"HEALTHNFT_CRASH_AT": "before-broadcast"})
    assert crashed.returncode == -signal.SIGKILL
    _killed_after(home, "set_status", *_amend_args(t))
    assert _amend(home, t) == {"token_id": t.next_token, "supersedes": t.old}
    _check_corrected(home, t)


@pytest.mark.slow
def test_kill_amend_from_outside_at_any_moment(template: Template, home: Path,
                                               tmp_path: Path) -> None:  # fmt: skip
    """SIGKILL from another process after a spread of delays over a whole run (whatever
    step it lands on), each time on a fresh copy, then run again."""
    t = template
    started = time.perf_counter()
    _amend(home, t)
    whole = time.perf_counter() - started
    killed = 0
    for i, fraction in enumerate((0.6, 0.85, 0.97)):
        copy = tmp_path / f"copy{i}"
        shutil.copytree(t.home, copy)
        proc = subprocess.Popen(
            [sys.executable, "-m", "healthnft.cli", "--home", str(copy), *_amend_args(t)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(copy),
            cwd=str(REPO),
        )  # fmt: skip
        try:
            proc.wait(timeout=whole * fraction)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed += 1
        assert _amend(copy, t) == {"token_id": t.next_token, "supersedes": t.old}
        _check_corrected(copy, t)
    assert killed, "every run finished before its kill: nothing was tested"
