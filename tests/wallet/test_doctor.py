"""An index restored from an older backup loses nothing (issue #12, point 7).

Before: after a transfer, restoring an older ``index.sqlite`` made the record unreadable
for everyone (the new owner's wrapped key lived only in the index). Now each version of a
record keeps its key card beside its ciphertext in the vault; opening a home whose index
is behind the chain is refused with a message naming ``healthnft doctor --repair``, which
rebuilds the index from the cards the chain confirms.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

from conftest import LAB_OBSERVATION as OBSERVATION
from conftest import run_cli
from healthnft.errors import Conflict


def _backup(home: Path, to: Path) -> None:
    """A consistent copy of the index, as a backup tool would take it."""
    with sqlite3.connect(home / "index.sqlite") as src, sqlite3.connect(to) as dst:
        src.backup(dst)


def _restore(home: Path, backup: Path) -> None:
    for leftover in home.glob("index.sqlite*"):
        leftover.unlink()
    shutil.copy(backup, home / "index.sqlite")


def _cards(home: Path, token_id: int) -> int:
    with sqlite3.connect(home / "vault.sqlite") as db:
        return db.execute("SELECT count(*) FROM key_cards WHERE token_id = ?",
                          (token_id,)).fetchone()[0]  # fmt: skip


def _doctor(home: Path, *args: str) -> tuple[int, dict]:
    proc = run_cli(home, "doctor", "--json", *args)
    return proc.returncode, json.loads(proc.stdout)


def _refused_as_behind(proc) -> None:
    assert proc.returncode == Conflict.exit_code, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "index.sqlite is behind the chain" in lines[0], proc.stderr
    assert "healthnft doctor --repair" in lines[0]


def test_a_transfer_survives_an_index_restored_from_before_it(fresh_demo_home, tmp_path):
    home, summary = fresh_demo_home
    p0, p1 = (p["address"] for p in summary["patients"][:2])
    token = json.loads(run_cli(home, "wallet", "list", "--owner", p0, "--json",
                               check=True).stdout)[0]["token_id"]  # fmt: skip
    assert _doctor(home) == (0, {"records": summary["records_minted"], "healthy": True,
                                 "cards": summary["records_minted"], "findings": []})
    _backup(home, tmp_path / "index-before.sqlite")
    run_cli(home, "transfer", "--owner", p0, "--to", p1, "--", str(token), check=True)
    _restore(home, tmp_path / "index-before.sqlite")

    # Every command refuses the home (none acts on the stale index), naming the fix.
    _refused_as_behind(run_cli(home, "wallet", "list", "--owner", p1))
    _refused_as_behind(run_cli(home, "open", "--as", p0, "--", str(token)))
    code, report = _doctor(home)  # looks, changes nothing
    assert code == 1 and not report["healthy"]
    assert [(f["token_id"], f["problem"], f["repairable"], f["repaired"])
            for f in report["findings"]] == [(token, "owner_behind", True, False)]  # fmt: skip
    _refused_as_behind(run_cli(home, "wallet", "list", "--owner", p1))

    code, report = _doctor(home, "--repair")
    assert code == 0 and report["healthy"], report
    assert [(f["token_id"], f["repaired"]) for f in report["findings"]] == [(token, True)]
    assert _doctor(home) == (0, {**report, "findings": []})

    # The new owner reads it and it verifies; the old owner has nothing.
    opened = run_cli(home, "open", "--as", p1, "--json", "--", str(token))
    assert opened.returncode == 0, opened.stderr
    assert json.loads(opened.stdout)["token_id"] == token
    verified = run_cli(home, "verify", "--", str(token))
    assert verified.returncode == 0 and verified.stdout.startswith("valid"), verified
    assert token not in [r["token_id"] for r in json.loads(
        run_cli(home, "wallet", "list", "--owner", p0, "--json", check=True).stdout)]
    assert _cards(home, token) == 1  # the old owner's copy and card are gone

    # Burning still shreds every copy, cards included.
    run_cli(home, "burn", "--owner", p1, "--yes", "--", str(token), check=True)
    assert _cards(home, token) == 0


def test_records_minted_after_the_backup_are_restored(fresh_demo_home, tmp_path):
    home, summary = fresh_demo_home
    p0 = summary["patients"][0]["address"]
    _backup(home, tmp_path / "index-before.sqlite")
    source = tmp_path / "observation.json"
    source.write_text(json.dumps(OBSERVATION))
    minted = json.loads(run_cli(home, "mint", "--issuer", summary["issuer"]["name"],
                                "--patient", p0, "--json", str(source), check=True).stdout)
    assert minted["records_minted"] == 1
    token = summary["records_minted"] + 1
    before = run_cli(home, "open", "--as", p0, "--json", "--", str(token), check=True).stdout
    _restore(home, tmp_path / "index-before.sqlite")
    _refused_as_behind(run_cli(home, "wallet", "list", "--owner", p0))
    code, report = _doctor(home, "--repair")
    assert code == 0, report
    assert [(f["token_id"], f["problem"], f["repaired"]) for f in report["findings"]] == [
        (token, "missing", True)]
    after = run_cli(home, "open", "--as", p0, "--json", "--", str(token), check=True).stdout
    assert json.loads(after) == json.loads(before)
    # Minting the same file again finds it already minted: the record is not doubled.
    again = json.loads(run_cli(home, "mint", "--issuer", summary["issuer"]["name"],
                               "--patient", p0, "--json", str(source), check=True).stdout)
    assert (again["records_minted"], again["already_minted"]) == (0, 1)


def test_a_card_the_chain_does_not_confirm_is_never_used(fresh_demo_home, tmp_path):
    """A key card whose commitment was altered does not match the batch root on chain:
    the doctor reports the record as not repairable and restores nothing from it."""
    home, summary = fresh_demo_home
    p0, p1 = (p["address"] for p in summary["patients"][:2])
    token = json.loads(run_cli(home, "wallet", "list", "--owner", p0, "--json",
                               check=True).stdout)[0]["token_id"]  # fmt: skip
    _backup(home, tmp_path / "index-before.sqlite")
    run_cli(home, "transfer", "--owner", p0, "--to", p1, "--", str(token), check=True)
    _restore(home, tmp_path / "index-before.sqlite")
    with sqlite3.connect(home / "vault.sqlite") as db:
        (digest, raw) = db.execute("SELECT digest, card FROM key_cards WHERE token_id = ?",
                                   (token,)).fetchone()  # fmt: skip
        card = json.loads(raw)
        card["row"]["commitment"] = "00" * 32
        db.execute("UPDATE key_cards SET card = ? WHERE digest = ?",
                   (json.dumps(card).encode(), digest))  # fmt: skip
    code, report = _doctor(home, "--repair")
    assert code == 1
    assert [(f["token_id"], f["problem"], f["repairable"], f["repaired"])
            for f in report["findings"]] == [(token, "owner_behind", False, False)]  # fmt: skip
    text = run_cli(home, "doctor")
    assert text.returncode == 1 and "restore vault.sqlite from a backup" in text.stdout
