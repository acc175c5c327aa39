"""Correction, not mutation: an amended record supersedes the old one, with consent."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli
from healthnft.errors import Conflict
from healthnft.network import Network


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
    approval = json.loads(run_cli(home, "approve-amendment", str(old), "--owner", alice,
                                  "--issuer", "demo-hospital", "--json", check=True).stdout)
    assert approval == {"token_id": old, "issuer": summary["issuer"]["address"],
                        "approved": True}  # fmt: skip
    done = json.loads(run_cli(home, "amend", str(old), str(fixed), "--issuer", "demo-hospital",
                              "--json", check=True).stdout)  # fmt: skip
    new = done["token_id"]
    assert done["supersedes"] == old and new > old

    verdict = run_cli(home, "verify", str(old), "--json")
    assert verdict.returncode != 0
    assert json.loads(verdict.stdout)["reason"] == f"superseded: corrected by token {new}"
    # Both directions of the link: the old names the new (above), the new names the old.
    fresh = run_cli(home, "verify", str(new), "--json")
    assert fresh.returncode == 0, fresh.stderr
    fresh_verdict = json.loads(fresh.stdout)
    assert fresh_verdict["valid"] is True
    assert fresh_verdict["reason"].startswith("authentic: ")
    assert fresh_verdict["reason"].endswith(f"; corrects token {old}")
    net = Network.open(home)
    try:
        wallet = net.wallet()
        assert wallet.supersedes(new) == old
        assert wallet.supersedes(new, from_log=True) == old  # the Superseded event, on chain
        assert wallet.supersedes(old) is None and wallet.supersedes(old, from_log=True) is None
        unchanged = next(r["token_id"] for r in rows if r["token_id"] not in (old, new))
        assert "corrects" not in wallet.verify(unchanged).reason
    finally:
        net.close()
    shown = json.loads(run_cli(home, "wallet", "show", str(new), "--json").stdout)
    assert shown["resource"]["status"] == "amended"
    after = {r["token_id"]: r["status"] for r in json.loads(
        run_cli(home, "wallet", "list", "--owner", alice, "--json").stdout)}  # fmt: skip
    assert after[old] == "superseded" and after[new] == "active"
    # Running the same correction again is safe (a retry after a crash): the same answer,
    # nothing minted twice.
    retry = json.loads(run_cli(home, "amend", str(old), str(fixed), "--issuer", "demo-hospital",
                               "--json", check=True).stdout)  # fmt: skip
    assert retry == done
    # The approval is spent: a *different* second correction is refused for that reason,
    # not as a duplicate (the file was never minted).
    resource["status"] = "entered-in-error"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(resource))
    again = run_cli(home, "amend", str(old), str(other), "--issuer", "demo-hospital")
    assert again.returncode == Conflict.exit_code, again.stderr
    assert "approval was spent" in again.stderr and f"corrected by token {new}" in again.stderr
    assert "identical" not in again.stderr
    count = len(json.loads(run_cli(home, "wallet", "list", "--owner", alice, "--json").stdout))
    assert count == len(rows) + 1
    # Resending a file already minted, with a fresh approval, is a duplicate (and says so).
    run_cli(home, "approve-amendment", str(new), "--owner", alice, "--issuer", "demo-hospital",
            check=True)  # fmt: skip
    dup = run_cli(home, "amend", str(new), str(fixed), "--issuer", "demo-hospital")
    assert dup.returncode == Conflict.exit_code and "identical to token" in dup.stderr
    assert f"{new}, already minted" in dup.stderr
