"""Custodians asked at once, and each release logged on chain off the open's critical
path (:mod:`healthnft.consent.accesslog`), on anvil with three `healthnft custodian
serve` processes and a hospital home in this process.

- k custodians are asked in parallel, and a lying one is still named;
- after an open, each releasing custodian's settler gets its log mined and confirmed:
  exactly k ``AccessLogged`` events more on chain;
- two custodians down: one clear error, no block, no log kept by the one left;
- a custodian killed with its log accepted but unmined, and the node then losing it,
  sends the very same transaction again when it restarts: the log reaches the chain
  once, never twice; a log whose nonce another transaction took is signed again, once.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest
from eth_account import Account

from conftest import LAB_OBSERVATION, CustodianService, need_tool
from healthnft import keys
from healthnft.consent import open_as_grantee
from healthnft.consent.accesslog import BroadcastLog, Settler
from healthnft.consent.remote import RemoteCustodian
from healthnft.errors import Unavailable
from healthnft.ledger import nodes
from healthnft.ledger.consent import Consent
from healthnft.network import Network
from healthnft.services import minting, records, sharing
from healthnft.store.accesslogs import AccessLogs
from healthnft.store.connection import MEMORY
from healthnft.store.migrations import open_database
from healthnft.store.schema import INDEX
from healthnft.vault.custody import release_share

PASS = "release-logs-passphrase"
ENV = {"HEALTHNFT_PASSPHRASE": PASS}


class Served(CustodianService):
    """One `healthnft custodian serve` process over its own home (``kill``: a crash)."""

    def __init__(self, home: Path) -> None:
        super().__init__(home, ENV)

    def logs(self) -> dict:
        return self.status()["access_logs"]

    def kill(self) -> None:
        self.stop()


@dataclass
class World:
    net: Network
    anvil: nodes.NodeProcess
    custodians: list[Served]
    research: str
    token: int
    patient: str
    grant_id: int


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    need_tool("anvil")
    root = tmp_path_factory.mktemp("release-logs")
    admin = Account.create()
    anvil = nodes.start_anvil(root / "anvil", prefund=[admin.address])
    served: list[Served] = []
    net = None
    try:
        net = Network.create(root / "hospital", PASS, rpc_url=anvil.rpc_url,
                             admin_secret=bytes(admin.key))  # fmt: skip
        for n in range(3):
            custodian = Served(root / f"custodian{n}")
            made = custodian.init(net.files.config_path)
            net.add_remote_custodian(made["address"], bytes.fromhex(made["enc_key"]),
                                     custodian.url, PASS)  # fmt: skip
            custodian.start()
            served.append(custodian)
        net.add_participant("hospital", "General", PASS)
        patient = net.add_participant("patient", "Pat", PASS).address
        research = net.add_participant("research", "Lab", PASS).address
        source = root / "lab.json"
        source.write_text(json.dumps(LAB_OBSERVATION))
        minted = minting.mint_files(net, "General", patient, [source], PASS)
        assert minted.custody_pending == []
        token = net.wallet().list(patient)[0]["token_id"]
        grant = sharing.share(net, patient, research, "research", 30, token_ids=[token],
                              passphrase=PASS)  # fmt: skip
        yield World(net, anvil, served, research, token, patient, grant.grant_id)
    finally:
        for custodian in served:
            custodian.kill()
        if net is not None:
            net.close()
        anvil.stop()


def _logged(world: World) -> int:
    """``AccessLogged`` events on chain for the world's token."""
    events = Consent(world.net.ledger).access_log(world.patient)
    return sum(1 for e in events if e["token_id"] == world.token)


def _settled(world: World, timeout_s: float = 30.0) -> list[dict]:
    """Each custodian's access-log counts once none has a pending log (bounded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        logs = [c.logs() for c in world.custodians if c.proc is not None]
        if not any(log["pending"] for log in logs) or time.monotonic() > deadline:
            return logs
        time.sleep(0.1)


def _open(world: World):
    return records.open_record(world.net, world.research, world.token, PASS)


def _head(world: World) -> int:
    return int(nodes.rpc_call(world.anvil.rpc_url, "eth_blockNumber"), 16)


@dataclass
class Liar:
    """A real custodian service that checks and logs as usual, then answers a wrong share;
    it records when it was asked, to show the custodians were asked at once."""

    honest: RemoteCustodian
    world: World
    spans: list[tuple[float, float]] = field(default_factory=list)
    concurrent = True

    @property
    def address(self) -> str:
        return self.honest.address

    @property
    def domain(self) -> str:
        return self.honest.domain

    def challenge(self) -> str:
        return self.honest.challenge()

    def release(self, token_id: int, grant_id: int, requester: str, presentation: str) -> bytes:
        t = time.monotonic()
        self.honest.release(token_id, grant_id, requester, presentation)
        time.sleep(0.3)  # long enough that a sequential ask could not overlap it
        self.spans.append((t, time.monotonic()))
        members = [a.lower() for a, _ in self.world.net.custodians().members]
        commitment = self.world.net.catalog.catalogue.record(token_id).commitment
        _, _, requester_key = self.world.net.ledger.participant(requester)
        return release_share(bytes([members.index(self.address.lower()) + 1]) + os.urandom(32),
                             requester_key, token_id, commitment)  # fmt: skip


@dataclass
class Timed:
    """A true custodian whose asks are timed (and which says it may be asked at once)."""

    inner: RemoteCustodian
    spans: list[tuple[float, float]]
    concurrent = True

    @property
    def address(self) -> str:
        return self.inner.address

    @property
    def domain(self) -> str:
        return self.inner.domain

    def challenge(self) -> str:
        return self.inner.challenge()

    def release(self, token_id: int, grant_id: int, requester: str, presentation: str) -> bytes:
        t = time.monotonic()
        try:
            return self.inner.release(token_id, grant_id, requester, presentation)
        finally:
            self.spans.append((t, time.monotonic()))


def test_custodians_are_asked_at_once_and_a_liar_is_still_named(world: World, caplog) -> None:
    net = world.net
    first, second, third = net.custodian_services()
    assert all(isinstance(c, RemoteCustodian) and c.concurrent for c in (first, second, third))
    spans: list[tuple[float, float]] = []
    liar = Liar(first, world, spans)
    reader = net.identity(world.research, PASS)
    members = [a for a, _ in net.custodians().members]
    with caplog.at_level(logging.WARNING, logger="healthnft.consent.custodian"):
        opened = open_as_grantee(reader, world.token, [liar, Timed(second, spans), third], 2,
                                 net.ledger, net.catalog, net.blobs, members=members)  # fmt: skip
    assert opened.resource["valueQuantity"]["value"] == Decimal("5.4")
    assert f"custodian {first.address} released a wrong share" in caplog.text
    (a_start, a_end), (b_start, b_end) = sorted(spans)
    assert b_start < a_end, "the first k custodians were asked one after the other"
    assert threading.active_count() < 20  # the ask's threads are gone


def test_the_log_is_on_chain_after_the_open(world: World) -> None:
    _settled(world)
    before, counts = _logged(world), [c.logs()["confirmed"] for c in world.custodians]
    t = time.monotonic()
    assert _open(world).resource["valueQuantity"]["value"] == Decimal("5.4")
    opened_s = time.monotonic() - t
    logs = _settled(world)
    assert [log["pending"] for log in logs] == [0, 0, 0]
    assert [log["failed"] for log in logs] == [0, 0, 0]
    after = [log["confirmed"] for log in logs]
    assert sum(after) - sum(counts) == 2  # k releases, k confirmed logs
    assert _logged(world) == before + 2, f"open took {opened_s:.2f} s"


def test_two_custodians_down_one_error_and_nothing_on_chain(world: World) -> None:
    one, two, three = world.custodians
    _settled(world)
    kept = three.logs()
    one.kill()
    two.kill()
    try:
        head, logged = _head(world), _logged(world)
        with pytest.raises(Unavailable, match="only 1 of the 2 custodians needed answered"):
            _open(world)
        assert _head(world) == head and _logged(world) == logged
        assert three.logs() == kept  # the one left kept no log, released nothing
    finally:
        one.start()
        two.start()
    assert _open(world).token_id == world.token


def test_a_pending_log_is_sent_again_after_a_custodian_restart(world: World) -> None:
    """Accepted, not mined, custodian killed, node loses it: the restart settles it once."""
    _settled(world)
    before = _logged(world)
    confirmed = sum(c.logs()["confirmed"] for c in world.custodians)
    url = world.anvil.rpc_url
    nodes.rpc_call(url, "evm_setAutomine", [False])
    try:
        head = _head(world)
        assert _open(world).token_id == world.token  # released on acceptance, not mining
        assert _head(world) == head
        assert sum(c.logs()["pending"] for c in world.custodians) == 2
        for custodian in world.custodians:
            custodian.kill()
        nodes.rpc_call(url, "anvil_dropAllTransactions")  # the node forgot them
    finally:
        nodes.rpc_call(url, "evm_setAutomine", [True])
    assert _logged(world) == before
    for custodian in world.custodians:
        custodian.start()  # sends its kept logs again before it serves
    logs = _settled(world)
    assert [log["pending"] for log in logs] == [0, 0, 0]
    assert sum(log["confirmed"] for log in logs) == confirmed + 2
    assert _logged(world) == before + 2  # once each: the same bytes, never a second log
    assert all(log["failed"] == 0 and log["problems"] == [] for log in logs)
    status = subprocess.run(
        [sys.executable, "-m", "healthnft.cli", "--home", str(world.custodians[0].home),
         "custodian", "status", "--json"], capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    assert json.loads(status.stdout)["healthy"] is True


def test_a_log_whose_nonce_another_transaction_took_is_signed_again_once(world: World) -> None:
    """The settler's re-sign: kept bytes that can never be mined (a mined transaction
    used their nonce) give way to one new log, checked again; the old never lands."""
    custodian = world.custodians[2]
    custodian.kill()  # its account is used here alone
    try:
        address = json.loads((custodian.home / "config.json").read_text())["custodian"]
        account = keys.read_keystore(custodian.home / "keystore", address, PASS).account
        ledger = world.net.ledger
        logs = AccessLogs(open_database(MEMORY, INDEX))
        sent = ledger.sign(account, Consent(ledger).log_access_call(world.grant_id, world.token))
        logs.keep("a-release", world.grant_id, world.token, sent.raw, sent.tx_hash, sent.nonce)
        ledger.nonces.release(address, sent.nonce)
        ledger.fund(account, address, 0)  # mined with the kept log's nonce
        before = _logged(world)
        assert Settler(BroadcastLog(ledger, logs), account).wait_settled(30)
        kept = logs.get("a-release")
        assert kept is not None and (kept.state, kept.attempts) == ("confirmed", 2)
        assert kept.tx_hash != sent.tx_hash and ledger.receipt_of(sent.tx_hash) is None
        assert _logged(world) == before + 1
    finally:
        custodian.start()
