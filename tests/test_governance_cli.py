"""`healthnft governance`: a council installed from the CLI decides, k of n, and the
home's admin key no longer registers anyone alone (issue 13.4)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import run_cli

ENV = {"HEALTHNFT_PASSPHRASE": "correct horse battery staple"}


def test_governance_install_propose_approve_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    run_cli(home, "init", env=ENV, check=True)
    council = []
    for kind, name in (("hospital", "H"), ("research", "R"), ("insurer", "I")):
        out = run_cli(home, "participant", "add", "--kind", kind, "--name", name,
                      "--json", env=ENV, check=True)  # fmt: skip
        council.append(json.loads(out.stdout)["address"])

    args = [a for m in council for a in ("--council", m)]
    installed = json.loads(run_cli(home, "governance", "install", *args, "--threshold", "2",
                                   "--json", env=ENV, check=True).stdout)  # fmt: skip
    assert installed["installed"] and installed["threshold"] == 2
    assert installed["council"] == council

    refused = run_cli(home, "participant", "add", "--kind", "patient", "--name", "P", env=ENV)
    assert refused.returncode != 0
    assert "ownable: caller is not the owner" in refused.stderr

    newcomer = "0x" + os.urandom(20).hex()
    proposed = json.loads(run_cli(
        home, "governance", "propose", "register", newcomer, "--member", council[0],
        "--kind", "pharma", "--key", os.urandom(32).hex(), "--json", env=ENV, check=True,
    ).stdout)  # fmt: skip
    pid = proposed["proposal"]["proposal_id"]
    assert proposed["proposal"]["state"] == "pending" and not proposed["executed"]

    again = run_cli(home, "governance", "approve", str(pid), "--member", council[0], env=ENV)
    assert again.returncode != 0 and "governance: already approved" in again.stderr

    approved = json.loads(run_cli(home, "governance", "approve", str(pid), "--member",
                                  council[1], "--json", env=ENV, check=True).stdout)  # fmt: skip
    assert approved["executed"] and approved["proposal"]["state"] == "executed"
    assert approved["gas_used"] > 0

    listed = json.loads(run_cli(home, "governance", "list", "--json", check=True).stdout)
    assert [p["proposal"]["proposal_id"] for p in listed] == [pid]
    text = run_cli(home, "governance", "list", check=True).stdout
    assert f"#{pid} register" in text and "executed, 2/2" in text
    # A home holding enough council keys decides in one call (set-up, demos).
    from healthnft.services import governance
    from healthnft.services.node import open_network

    monkeypatch.setenv("HEALTHNFT_PASSPHRASE", ENV["HEALTHNFT_PASSPHRASE"])
    net = open_network(home)
    try:
        patient = "0x" + os.urandom(20).hex()
        view = governance.decide(net, council, "register", patient, kind="patient",
                                 key=os.urandom(32))  # fmt: skip
        assert view.executed and net.ledger.is_member(patient)
        assert governance.status(net).pending == 0
    finally:
        net.close()
