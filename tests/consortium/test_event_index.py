"""The event index reads each block once, by range, and survives a reorganisation
(issue #13 point 1), on a real JSON-RPC node (anvil) and on the embedded chain."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from eth_account import Account

from conftest import need_tool
from healthnft.ledger import events as events_module
from healthnft.ledger import nodes
from healthnft.ledger.client import Ledger
from healthnft.ledger.embedded import embedded_web3
from healthnft.ledger.events import EventIndex
from healthnft.ledger.rpc import rpc_web3
from healthnft.store.events import ChainEvents
from healthnft.store.migrations import open_database
from healthnft.store.schema import INDEX


def _register(ledger: Ledger, admin, n: int) -> list[str]:
    people = [Account.create().address for _ in range(n)]
    for who in people:
        ledger.register(admin, who, "patient", os.urandom(32))
    return people


def _registered(ledger: Ledger, who: str | None = None) -> list[str]:
    found = ledger.logs("ParticipantRegistered", **({"account": who} if who else {}))
    return [ev["args"]["account"] for ev in found]


@pytest.fixture
def anvil_ledger(tmp_path):
    need_tool("anvil")
    admin = Account.create()
    node = nodes.start_anvil(tmp_path / "anvil", prefund=[admin.address])
    try:
        yield Ledger.deploy(rpc_web3(node.rpc_url), admin), admin, node
    finally:
        node.stop()


def test_each_block_is_read_once_and_by_range(tmp_path, monkeypatch):
    admin = Account.create()
    w3 = embedded_web3(tmp_path / "chain.sqlite", {admin.address: 10**24}, create=True)
    ledger = Ledger.deploy(w3, admin)
    store = ChainEvents(open_database(tmp_path / "index.sqlite", INDEX))
    ledger.attach_event_store(store)
    monkeypatch.setattr(events_module, "CHUNK_BLOCKS", 3)  # many ranges in a short chain
    calls: list[tuple[int, int]] = []
    real_get_logs = w3.eth.get_logs

    def counting(params):
        calls.append((params["fromBlock"], params.get("toBlock")))
        return real_get_logs(params)

    monkeypatch.setattr(w3.eth, "get_logs", counting)
    first = _register(ledger, admin, 4)
    assert _registered(ledger) == first
    ranges = list(calls)
    assert ranges[0][0] == 0 and all(hi - lo < 3 for lo, hi in ranges)
    assert all(b[0] == a[1] + 1 for a, b in zip(ranges, ranges[1:], strict=False))

    calls.clear()
    assert _registered(ledger, first[2]) == [first[2]]  # a filter on an indexed argument
    assert calls == []  # nothing new on chain: nothing read again
    second = _register(ledger, admin, 2)
    assert _registered(ledger) == first + second
    assert calls and calls[0][0] == ranges[-1][1] + 1  # only the new blocks

    # A process that opens the same index later carries on from its cursor.
    again = EventIndex(w3, [ledger.registry, ledger.token, ledger.consent], store)
    calls.clear()
    report = again.sync()
    assert report.logs == 0 and calls == [] and report.reorg_depth == 0
    # And the answer is the chain's own, as a scan from block 0 would give it.
    scan = ledger.registry.events.ParticipantRegistered().get_logs(from_block=0, to_block="latest")
    assert [ev["args"]["account"] for ev in scan] == first + second


def test_a_reorganisation_is_undone_and_reported(anvil_ledger):
    ledger, admin, node = anvil_ledger
    kept = _register(ledger, admin, 1)
    assert _registered(ledger) == kept
    snapshot = nodes.rpc_call(node.rpc_url, "evm_snapshot")
    orphaned = _register(ledger, admin, 2)
    assert _registered(ledger) == kept + orphaned

    # The last two blocks are replaced by others carrying different registrations.
    assert nodes.rpc_call(node.rpc_url, "evm_revert", [snapshot]) is True
    ledger.nonces.resync(admin.address)  # the node forgot them: so does the manager
    replacement = _register(ledger, admin, 3)
    assert _registered(ledger) == kept + replacement
    report = ledger.events.last_report
    assert report is not None and report.reorg_depth >= 2 and report.deep_reorg
    assert not set(orphaned) & set(_registered(ledger))


def test_a_home_on_a_node_never_rescans(tmp_path):
    """The index lives in the home's index.sqlite: a second open reads no old block."""
    from healthnft.network import Network

    need_tool("anvil")
    admin = Account.create()
    node = nodes.start_anvil(tmp_path / "anvil", prefund=[admin.address])
    try:
        home = Path(tmp_path / "home")
        net = Network.create(home, "pw-events-test", rpc_url=node.rpc_url,
                             admin_secret=bytes(admin.key))  # fmt: skip
        net.ledger.logs("ParticipantRegistered")
        head = net.ledger.w3.eth.block_number
        net.close()
        reopened = Network.open(home)
        try:
            report = reopened.ledger.events.sync()
            assert report.from_block == head + 1 and report.logs == 0
        finally:
            reopened.close()
    finally:
        node.stop()
