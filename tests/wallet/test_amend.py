"""Correction, not mutation: an amended record supersedes the old one, with consent."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli


def test_amend_needs_the_owner_and_links_old_to_new(fresh_demo_home: tuple[Path, dict],
                                                     tmp_path: Path) -> None:  # fmt: skip
    home, summary = fresh_demo_home
    alice = summary["patients"][0]["address"]
    rows = json.loads(run_cli(home, "wallet", "list", "--owner", alice, "--json").stdout)
    old = next(r["token_id"] for r in rows if r["category"] == "laboratory")
    resource = json.loads(run_cli(home, "wallet", "show", str(old), "--json").stdout)["resource"]
    resource["status"] = "amended"
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps(resource))

    refused = run_cli(home, "amend", str(old), str(fixed), "--issuer", "demo-hospital")
    assert refused.returncode != 0 and "has not approved" in refused.stderr
    run_cli(home, "approve-amendment", str(old), "--owner", alice, "--issuer", "demo-hospital",
            check=True)  # fmt: skip
    done = json.loads(run_cli(home, "amend", str(old), str(fixed), "--issuer", "demo-hospital",
                              "--json", check=True).stdout)  # fmt: skip
    new = done["token_id"]
    assert done["supersedes"] == old and new > old

    verdict = run_cli(home, "verify", str(old), "--json")
    assert verdict.returncode != 0
    assert json.loads(verdict.stdout)["reason"] == f"superseded: corrected by token {new}"
    assert json.loads(run_cli(home, "verify", str(new), "--json").stdout)["valid"] is True
    shown = json.loads(run_cli(home, "wallet", "show", str(new), "--json").stdout)
    assert shown["resource"]["status"] == "amended"
    after = {r["token_id"]: r["status"] for r in json.loads(
        run_cli(home, "wallet", "list", "--owner", alice, "--json").stdout)}  # fmt: skip
    assert after[old] == "superseded" and after[new] == "active"
    # The approval is spent: a second correction needs a new one.
    again = run_cli(home, "amend", str(old), str(fixed), "--issuer", "demo-hospital")
    assert again.returncode != 0
