"""Transfer and burn killed with SIGKILL at every step, then run again (issue 12, crash
harness): exactly one transfer or burn, no orphan ciphertext, chain and index agree,
and every record verifies or is reported."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from conftest import run_cli

CRASH = "HEALTHNFT_CRASH_AT"


def _json(proc) -> object:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _orphans(home: Path) -> set[bytes]:
    """Ciphertexts in the vault that nothing in the index refers to."""
    with sqlite3.connect(home / "vault.sqlite") as vault:
        stored = {bytes(d) for (d,) in vault.execute("SELECT digest FROM blobs")}
    with sqlite3.connect(home / "index.sqlite") as index:
        referred = {bytes(d) for (d,) in index.execute(
            "SELECT blob_digest FROM records UNION SELECT digest FROM record_blobs "
            "UNION SELECT blob_digest FROM staged_transfers")}  # fmt: skip
    return stored - referred


def _cast(home: Path, summary: dict) -> tuple[str, str, int]:
    alice = summary["patients"][0]["address"]
    bob = summary["patients"][1]["address"]
    rows = _json(run_cli(home, "wallet", "list", "--owner", alice, "--json"))
    return alice, bob, rows[0]["token_id"]


@pytest.mark.parametrize("point", ["transfer:after-stage", "transfer:after-send"])
def test_a_killed_transfer_run_again_moves_the_record_once(fresh_demo_home, point) -> None:
    home, summary = fresh_demo_home
    alice, bob, token = _cast(home, summary)
    before_bob = len(_json(run_cli(home, "wallet", "list", "--owner", bob, "--json")))
    killed = run_cli(home, "transfer", str(token), "--owner", alice, "--to", bob,
                     env={CRASH: point})  # fmt: skip
    assert killed.returncode == -9
    # What a reader sees meanwhile is a clear answer, never an internal error.
    meanwhile = run_cli(home, "verify", str(token), "--json")
    assert "internal error" not in meanwhile.stderr
    again = run_cli(home, "transfer", str(token), "--owner", alice, "--to", bob)
    assert again.returncode == 0, again.stderr
    bobs = _json(run_cli(home, "wallet", "list", "--owner", bob, "--json"))
    assert len(bobs) == before_bob + 1 and token in [r["token_id"] for r in bobs]
    assert token not in [r["token_id"] for r in
                         _json(run_cli(home, "wallet", "list", "--owner", alice, "--json"))]
    opened = _json(run_cli(home, "wallet", "show", str(token), "--json"))
    assert opened["token_id"] == token
    assert _json(run_cli(home, "verify", str(token), "--json"))["valid"] is True
    assert _orphans(home) == set()


def test_a_killed_burn_run_again_shreds_once(fresh_demo_home) -> None:
    home, summary = fresh_demo_home
    alice, _bob, token = _cast(home, summary)
    killed = run_cli(home, "burn", str(token), "--owner", alice, "--yes",
                     env={CRASH: "burn:after-send"})  # fmt: skip
    assert killed.returncode == -9
    again = run_cli(home, "burn", str(token), "--owner", alice, "--yes")
    assert again.returncode == 0, again.stderr
    assert token not in [r["token_id"] for r in
                         _json(run_cli(home, "wallet", "list", "--owner", alice, "--json"))]
    refused = run_cli(home, "verify", str(token), "--json")
    assert refused.returncode == 1 and "burned" in json.loads(refused.stdout)["reason"]
    with sqlite3.connect(home / "index.sqlite") as index:
        (sealed,) = index.execute("SELECT count(*) FROM custodian_shares WHERE token_id = ?",
                                  (token,)).fetchone()  # fmt: skip
    assert sealed == 0
    assert _orphans(home) == set()
