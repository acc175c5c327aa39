"""A node process killed in the middle of a mint, on a real JSON-RPC node (issue #13
point 8): the rerun settles the batch: no duplicate token, no orphan, nothing lost.

The kills are real SIGKILLs of a real CLI process (the pipeline's ``HEALTHNFT_CRASH_AT``
points), with the chain in another process (anvil) that keeps what it was sent.
"""

from __future__ import annotations

import json
import signal

import pytest
from eth_account import Account

from conftest import LAB_OBSERVATION, need_tool, run_cli
from healthnft.ledger import nodes

PASS = {"HEALTHNFT_PASSPHRASE": "node-crash-test-passphrase"}


def _json(home, *args: str):
    return json.loads(run_cli(home, *args, "--json", env=PASS, check=True, timeout=180).stdout)


@pytest.mark.parametrize("point", ["before-broadcast", "after-send"])
def test_a_mint_killed_mid_batch_is_settled_by_the_rerun(tmp_path, point):
    need_tool("anvil")
    admin = Account.create()
    (tmp_path / "admin.key").write_text(admin.key.hex())
    anvil = nodes.start_anvil(tmp_path / "anvil", prefund=[admin.address])
    try:
        home = tmp_path / "home"
        _json(home, "init", "--rpc", anvil.rpc_url, "--admin-key-file", str(tmp_path / "admin.key"))
        _json(home, "participant", "add", "--kind", "hospital", "--name", "General")
        patient = _json(home, "participant", "add", "--kind", "patient", "--name", "P")
        records = [dict(LAB_OBSERVATION, id=f"lab-{n}",
                        valueQuantity={**LAB_OBSERVATION["valueQuantity"], "value": 5 + n})
                   for n in range(3)]  # fmt: skip
        source = tmp_path / "labs.json"
        source.write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                      "entry": [{"resource": r} for r in records]}))
        mint = ("mint", "--issuer", "General", "--patient", patient["address"], str(source))

        killed = run_cli(home, *mint, env={**PASS, "HEALTHNFT_CRASH_AT": point}, timeout=180)
        assert killed.returncode == -signal.SIGKILL, killed.stderr

        rerun = _json(home, *mint)
        minted = rerun["records_minted"] + rerun["already_minted"]
        assert minted == 3, rerun
        listed = _json(home, "wallet", "list", "--owner", patient["address"])
        assert sorted(r["token_id"] for r in listed) == [1, 2, 3]  # no duplicate, no gap
        again = _json(home, *mint)  # and a third run changes nothing
        assert (again["records_minted"], again["already_minted"]) == (0, 3)
        for token in (1, 2, 3):
            verified = run_cli(home, "verify", "--", str(token), env=PASS, check=True)
            assert verified.stdout.startswith("valid"), verified.stdout
        doctor = json.loads(run_cli(home, "doctor", "--json", env=PASS).stdout)
        assert doctor["healthy"] and doctor["findings"] == [], doctor
    finally:
        anvil.stop()
