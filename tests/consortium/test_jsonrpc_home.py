"""A home on a real JSON-RPC node (anvil from npm), through the CLI (issue #13 point 1).

The same services and contracts as the embedded default; only the backend differs. Each
failure a node can cause is one clear message: unreachable, another chain, an unfunded
admin. Nonces come from one manager per connection, so concurrent senders never collide.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from eth_account import Account

from conftest import LAB_OBSERVATION, need_tool, one_error_line, run_cli, run_cli_json
from healthnft.errors import Conflict, InvalidInput, Unavailable
from healthnft.ledger import nodes

PASS = {"HEALTHNFT_PASSPHRASE": "jsonrpc-test-passphrase"}


def _anvil(where: Path, **kwargs) -> nodes.NodeProcess:
    need_tool("anvil")
    return nodes.start_anvil(where, **kwargs)


@pytest.fixture
def node(tmp_path):
    admin = Account.create()
    key_file = tmp_path / "admin.key"
    key_file.write_text(admin.key.hex())
    anvil = _anvil(tmp_path / "anvil", prefund=[admin.address])
    yield anvil, key_file, admin
    anvil.stop()


def _cli(home: Path, *args: str, check: bool = True):
    return run_cli(home, *args, env=PASS, check=check, timeout=180)


def _json(home: Path, *args: str):
    return run_cli_json(home, *args, env=PASS)


def test_mint_share_open_on_anvil_and_restart_keeps_it(node, tmp_path):
    anvil, key_file, admin = node
    home = tmp_path / "home"
    made = _json(home, "init", "--rpc", anvil.rpc_url, "--admin-key-file", str(key_file))
    assert (made["backend"], made["rpc_url"], made["chain_id"]) == ("jsonrpc", anvil.rpc_url,
                                                                    31337)  # fmt: skip
    assert made["admin"] == admin.address
    config = json.loads((home / "config.json").read_text())
    assert config["evm_version"] == "prague" and not (home / "chain.sqlite").exists()
    assert admin.key.hex() not in (home / "config.json").read_text()

    hospital = _json(home, "participant", "add", "--kind", "hospital", "--name", "General")
    patient = _json(home, "participant", "add", "--kind", "patient", "--name", "P One")
    research = _json(home, "participant", "add", "--kind", "research", "--name", "Lab")
    for n in range(3):  # in this home (one process): issue #13 point 6 makes them services
        _cli(home, "participant", "add", "--kind", "custodian", "--name", f"C{n}")
    source = tmp_path / "lab.json"
    source.write_text(json.dumps(LAB_OBSERVATION))
    minted = _json(home, "mint", "--issuer", "General", "--patient", patient["address"],
                   str(source))  # fmt: skip
    assert minted["records_minted"] == 1 and hospital["kind"] == "hospital"
    token = _json(home, "wallet", "list", "--owner", patient["address"])[0]["token_id"]
    _cli(home, "share", "--owner", patient["address"], "--to", research["address"],
         "--purpose", "research", "--", str(token))  # fmt: skip
    opened = _json(home, "open", "--as", research["address"], "--", str(token))
    assert opened["resource"]["valueQuantity"]["value"] == 5.4

    # The node restarts from its own state file: the home finds everything again.
    anvil.stop()
    restarted = nodes.start_anvil(anvil.data_dir, port=int(anvil.rpc_url.rsplit(":", 1)[1]))
    try:
        again = _json(home, "open", "--as", patient["address"], "--", str(token))
        assert again["resource"] == opened["resource"]
        assert _cli(home, "verify", "--", str(token)).stdout.startswith("valid")
    finally:
        restarted.stop()


def test_one_clear_error_per_node_failure(node, tmp_path):
    anvil, key_file, _ = node
    home = tmp_path / "home"
    _json(home, "init", "--rpc", anvil.rpc_url, "--admin-key-file", str(key_file))
    patient = _json(home, "participant", "add", "--kind", "patient", "--name", "P")
    listing = ("wallet", "list", "--owner", patient["address"])

    # Another chain at the home's URL (same port, other chain id): refused, not used.
    port = int(anvil.rpc_url.rsplit(":", 1)[1])
    anvil.stop()
    other = nodes.start_anvil(tmp_path / "other", port=port, chain_id=4242)
    try:
        line = one_error_line(_cli(home, *listing, check=False), Conflict)
        assert "chain id 4242" in line and "31337" in line, line
    finally:
        other.stop()

    # Nobody listening: unavailable, naming the node, nothing else.
    line = one_error_line(_cli(home, *listing, check=False), Unavailable)
    assert anvil.rpc_url in line and "does not answer" in line, line


def test_init_refuses_an_unfunded_admin_and_writes_nothing(node, tmp_path):
    anvil, _, _ = node
    poor = tmp_path / "poor.key"
    poor.write_text(Account.create().key.hex())
    home = tmp_path / "home"
    line = one_error_line(_cli(home, "init", "--rpc", anvil.rpc_url, "--admin-key-file", str(poor),
                          check=False), InvalidInput)  # fmt: skip
    assert "has no funds" in line
    assert not (home / "config.json").exists() and not (home / "keystore").exists()

    bad = tmp_path / "bad.key"
    bad.write_text("not a key")
    line = one_error_line(_cli(home, "init", "--rpc", anvil.rpc_url, "--admin-key-file", str(bad),
                          check=False), InvalidInput)  # fmt: skip
    assert "64 hex digits" in line and "not a key" not in line
    line = one_error_line(_cli(home, "init", "--rpc", "http://127.0.0.1:9", "--admin-key-file",
                          str(poor), check=False), Unavailable)  # fmt: skip
    assert "http://127.0.0.1:9" in line
    assert not (home / "config.json").exists()


def test_concurrent_senders_never_share_a_nonce(node):
    from healthnft.ledger.client import Ledger
    from healthnft.ledger.rpc import rpc_web3

    anvil, _, admin = node
    w3 = rpc_web3(anvil.rpc_url, chain_id=31337)
    nowhere = "0x" + "00" * 20
    ledgers = [Ledger(w3, nowhere, nowhere) for _ in range(2)]  # two clients, one manager
    receipts: list[dict] = []
    failures: list[Exception] = []

    def pay(i: int) -> None:
        try:
            receipts.append(ledgers[i % 2].fund(admin, Account.create().address, 1))
        except Exception as exc:  # collected and asserted below
            failures.append(exc)

    threads = [threading.Thread(target=pay, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures and len(receipts) == 12
    nonces = sorted(w3.eth.get_transaction(r["transactionHash"])["nonce"] for r in receipts)
    assert nonces == list(range(12))

    # A new process (a new connection, a new manager) continues after them: no reuse.
    fresh = Ledger(rpc_web3(anvil.rpc_url), nowhere, nowhere)
    receipt = fresh.fund(admin, Account.create().address, 1)
    assert w3.eth.get_transaction(receipt["transactionHash"])["nonce"] == 12


def test_confirmations_wait_for_later_blocks(tmp_path):
    from healthnft.ledger.client import Ledger
    from healthnft.ledger.rpc import rpc_web3

    admin = Account.create()
    anvil = _anvil(tmp_path / "anvil", prefund=[admin.address], block_time_s=0.2)
    try:
        w3 = rpc_web3(anvil.rpc_url)
        nowhere = "0x" + "00" * 20
        receipt = Ledger(w3, nowhere, nowhere, confirmations=3).fund(admin, nowhere, 1)
        assert w3.eth.block_number >= receipt["blockNumber"] + 2
        hasty = Ledger(w3, nowhere, nowhere, confirmations=3, receipt_timeout_s=0.3)
        with pytest.raises(Unavailable, match="not mined within"):
            hasty.fund(admin, nowhere, 1)
    finally:
        anvil.stop()
