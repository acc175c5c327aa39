"""Correction, not mutation: an amended record supersedes the old one, with consent."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli
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
    # The approval is spent: a second correction needs a new one.
    again = run_cli(home, "amend", str(old), str(fixed), "--issuer", "demo-hospital")
    assert again.returncode != 0
