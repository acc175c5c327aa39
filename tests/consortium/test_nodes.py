"""Real nodes on loopback: anvil (the fast single node) and a 3-validator geth Clique
network that keeps sealing with one validator down (issue 13, points 2 and 8).

The clients come from ``make nodes`` (``make test`` installs them); without them these
tests are skipped with the reason, never faked. The fixtures live here, not in a
``conftest.py``: a second ``conftest`` module would shadow ``tests/conftest.py`` for the
suite's ``from conftest import ...``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from healthnft.errors import NotFound, Unavailable
from healthnft.ledger import nodes
from healthnft.ledger.client import Ledger
from healthnft.ledger.nodes import (
    CliqueNetwork,
    clique_genesis,
    clique_web3,
    rpc_call,
    start_anvil,
    tool_path,
)


def _installed(name: str) -> Path:
    try:
        path = tool_path(name)
    except NotFound as exc:
        pytest.skip(f"{exc} — the consortium tests need real clients")
    if not path.exists():
        pytest.skip(f"{name} is not at {path}: run `make nodes`")
    return path


@pytest.fixture(scope="session")
def geth() -> Path:
    return _installed("geth")


@pytest.fixture(scope="session")
def anvil() -> Path:
    return _installed("anvil")


@dataclass
class Consortium:
    net: CliqueNetwork
    w3: Web3
    ledger: Ledger
    admin: LocalAccount
    hospital: LocalAccount
    patient: LocalAccount

    def mint(self, count: int = 1) -> tuple[range, dict]:
        """Mint ``count`` tokens to the patient as the hospital: (token ids, receipt)."""
        start = self.ledger.next_token_id()
        call = self.ledger.mint_call(self.patient.address, count, start, os.urandom(32))
        receipt = self.ledger.transact(self.hospital, call)
        return range(start, start + count), receipt


@pytest.fixture(scope="module")
def consortium(geth: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    """Three Clique validators with the project's contracts (for paris: no PUSH0 on a
    Clique chain), a hospital issuer and a patient registered; stopped afterwards."""
    admin, hospital, patient = (Account.create() for _ in range(3))
    base = tmp_path_factory.mktemp("clique")
    with CliqueNetwork.start(base, validators=3, alloc={admin.address: 10**27}) as net:
        w3 = net.web3(0)
        ledger = Ledger.deploy(w3, admin, evm_version="paris")
        for acct in (hospital, patient):
            ledger.fund(admin, acct.address, 10**20)
        ledger.register(admin, hospital.address, "hospital", os.urandom(32))
        ledger.set_issuer(admin, hospital.address)
        ledger.register(admin, patient.address, "patient", os.urandom(32))
        yield Consortium(net, w3, ledger, admin, hospital, patient)


# -- the tools -----------------------------------------------------------------------


def test_a_missing_client_names_make_nodes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("HEALTHNFT_GETH", raising=False)
    monkeypatch.setitem(nodes._TOOL_PATHS, "geth", ("HEALTHNFT_GETH", tmp_path / "no-geth"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NotFound, match=r"geth is not installed: run `make nodes`.*HEALTHNFT_GETH"):
        nodes.tool_path("geth")


def test_clique_genesis_lists_sorted_signers_and_no_shanghai() -> None:
    signers = ["0x" + "bb" * 20, "0x" + "AA" * 20]
    genesis = clique_genesis(99, signers, {"0x" + "cc" * 20: 5}, period_s=2, timestamp=1000)
    extra = bytes.fromhex(genesis["extraData"][2:])
    assert extra == bytes(32) + bytes([0xAA] * 20) + bytes([0xBB] * 20) + bytes(65)
    config = genesis["config"]
    assert config["chainId"] == 99 and config["londonBlock"] == 0 and config["berlinBlock"] == 0
    assert config["clique"] == {"period": 2, "epoch": 30000}
    assert "shanghaiTime" not in config and "terminalTotalDifficulty" not in config
    assert genesis["timestamp"] == hex(1000)
    assert genesis["alloc"] == {"cc" * 20: {"balance": "0x5"}}


# -- anvil -----------------------------------------------------------------------------


def test_anvil_keeps_its_state_across_a_restart(anvil: Path, tmp_path: Path) -> None:
    admin, bob = Account.create(), Account.create()
    node = start_anvil(tmp_path / "anvil", prefund=[admin.address])
    try:
        balance = rpc_call(node.rpc_url, "eth_getBalance", [admin.address, "latest"])
        assert int(balance, 16) == 10**27
        ledger = Ledger.deploy(Web3(Web3.HTTPProvider(node.rpc_url)), admin)
        ledger.fund(admin, bob.address, 12345)
        ledger.register(admin, bob.address, "patient", b"\x01" * 32)
        registry = ledger.registry.address
        token, consent = ledger.token.address, ledger.consent.address
    finally:
        node.stop()  # SIGTERM: anvil writes state.json
    assert (tmp_path / "anvil" / "state.json").exists()

    again = start_anvil(tmp_path / "anvil")
    try:
        w3 = Web3(Web3.HTTPProvider(again.rpc_url))
        assert w3.eth.get_balance(bob.address) == 12345
        ledger = Ledger(w3, registry, token, consent)
        assert ledger.missing_contracts() == []
        assert ledger.is_member(bob.address)
    finally:
        again.stop()
    assert not again.alive()


# -- geth Clique -------------------------------------------------------------------------


@pytest.mark.slow
def test_three_validators_seal_and_run_the_contracts(consortium: Consortium) -> None:
    net = consortium.net
    assert len(net.validators) == 3 and net.running() == [0, 1, 2]
    assert sorted(a.lower() for a in rpc_call(net.rpc_urls[1], "clique_getSigners")) == sorted(
        a.lower() for a in net.signers
    )
    before = net.heads()
    after = net.wait_blocks(2, timeout_s=15)
    assert all(a >= b + 2 for a, b in zip(after, before, strict=True))

    ledger = consortium.ledger
    assert ledger.missing_contracts() == []
    # Every validator holds the deployed code, not only the one the client talks to.
    for url in net.rpc_urls:
        other = Ledger(clique_web3(url), ledger.registry.address, ledger.token.address,
                       ledger.consent.address)  # fmt: skip
        assert other.missing_contracts() == []
    assert ledger.is_issuer(consortium.hospital.address)

    ids, receipt = consortium.mint(3)
    assert receipt["status"] == 1
    assert ledger.balance_of(consortium.patient.address) >= 3
    assert ledger.owner_of(ids[0]) == consortium.patient.address
    assert ledger.minted_batch(receipt) is not None


@pytest.mark.slow
def test_the_chain_survives_one_failed_validator(consortium: Consortium) -> None:
    net, ledger = consortium.net, consortium.ledger
    down = 2  # the client talks to validator 0
    net.stop_validator(down)  # SIGKILL: a crash
    assert net.running() == [0, 1]
    heads = net.wait_blocks(3, timeout_s=20)
    assert heads[down] == -1 and min(heads[0], heads[1]) >= 3

    ids, receipt = consortium.mint(2)
    assert receipt["status"] == 1 and ledger.owner_of(ids[-1]) == consortium.patient.address
    mined_in = receipt["blockNumber"]

    net.start_validator(down)
    took = net.wait_synced(down, timeout_s=40)
    assert took < 40
    # The restarted validator has the block minted while it was down, and keeps up.
    back = clique_web3(net.rpc_urls[down])
    assert back.eth.get_transaction_receipt(receipt["transactionHash"])["status"] == 1
    assert back.eth.get_block(mined_in)["hash"] == consortium.w3.eth.get_block(mined_in)["hash"]
    net.wait_blocks(2, timeout_s=15)
    assert net.running() == [0, 1, 2]


@pytest.mark.slow
def test_the_network_restarts_on_its_own_directory(geth: Path, tmp_path: Path) -> None:
    admin = Account.create()
    with CliqueNetwork.start(tmp_path / "net", alloc={admin.address: 7}) as net:
        net.wait_blocks(2, timeout_s=15)
        # The same directory started twice: refused on its ports, nothing left behind.
        with pytest.raises(Unavailable, match="in use .*already running"):
            CliqueNetwork.start(tmp_path / "net")
        assert net.running() == [0, 1, 2]
        urls, reached = net.rpc_urls, max(net.heads())
    assert all(not v.running() for v in net.validators)
    with pytest.raises(ValueError, match="chain 1337 with 3 validators"):
        CliqueNetwork.start(tmp_path / "net", chain_id=5)
    started = time.monotonic()
    with CliqueNetwork.start(tmp_path / "net") as again:
        assert again.rpc_urls == urls and again.signers == net.signers
        assert min(again.wait_blocks(1, timeout_s=20)) > reached
        assert clique_web3(again.rpc_urls[1]).eth.get_balance(admin.address) == 7
    assert time.monotonic() - started < 40
