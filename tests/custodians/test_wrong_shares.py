"""A custodian that answers garbage or a wrong share cannot corrupt a key (issue #13,
"Bad input"): the grantee checks each share, and names the custodian that lied."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from healthnft.consent import CustodianService, open_as_grantee
from healthnft.errors import Tampered
from healthnft.ingest import ingest
from healthnft.keys import Identity
from healthnft.ledger.consent import Consent
from healthnft.network import DEMO_PASSPHRASE, Network
from healthnft.sample import write_sample
from healthnft.vault.custody import release_share


@dataclass
class Liar:
    """A real custodian that checks and logs as usual, then answers a wrong share."""

    honest: CustodianService
    net: Network
    garbage: bool = False

    @property
    def address(self) -> str:
        return self.honest.address

    @property
    def domain(self) -> str:
        return self.honest.domain

    def challenge(self) -> str:
        return self.honest.challenge()

    def release(self, token_id: int, grant_id: int, requester: str, presentation: str) -> bytes:
        self.honest.release(token_id, grant_id, requester, presentation)
        if self.garbage:
            return b"\x00" * 90
        index = [a.lower() for a, _ in self.net.custodians().members].index(self.address.lower())
        commitment = self.net.catalog.catalogue.record(token_id).commitment
        _, _, requester_key = self.net.ledger.participant(requester)
        return release_share(bytes([index + 1]) + os.urandom(32), requester_key, token_id,
                             commitment)  # fmt: skip


@dataclass
class World:
    net: Network
    research: Identity
    token: int


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    net = Network.create(tmp_path / "home", DEMO_PASSPHRASE, demo=True)
    hospital = net.identity(net.add_participant("hospital", "h").address)
    for n in range(3):
        net.add_participant("custodian", f"c{n}")
    patient = net.identity(net.add_participant("patient", "p").address)
    research = net.identity(net.add_participant("research", "r").address)
    records = ingest([write_sample(tmp_path / "data", patients=1)]).patients[0].records
    net.minter().mint(hospital, patient.address, patient.enc_public, records)
    token = net.wallet().list(patient.address)[0]["token_id"]
    Consent(net.ledger).share_tokens(patient.account, research.address, [token], "research",
                                     int(time.time()) + 86400)  # fmt: skip
    yield World(net, research, token)
    net.close()


def _open(world: World, custodians: list):
    net = world.net
    members = [a for a, _ in net.custodians().members]
    return open_as_grantee(world.research, world.token, custodians, 2, net.ledger, net.catalog,
                           net.blobs, members=members)  # fmt: skip


def test_a_wrong_share_is_outvoted_and_its_custodian_named(world: World, caplog) -> None:
    first, second, third = world.net.custodian_services()
    with caplog.at_level(logging.WARNING, logger="healthnft.consent.custodian"):
        opened = _open(world, [Liar(first, world.net), second, third])
    assert opened.token_id == world.token
    assert f"custodian {first.address} released a wrong share" in caplog.text


def test_garbage_is_caught_before_it_is_combined(world: World) -> None:
    first, second, third = world.net.custodian_services()
    assert _open(world, [Liar(first, world.net, garbage=True), second, third]).token_id
    with pytest.raises(Tampered, match=f"only 1 of the 2.*{first.address}.*not for this key"):
        _open(world, [Liar(first, world.net, garbage=True), second])


def test_k_shares_that_do_not_fit_are_refused_whole(world: World) -> None:
    first, second, _ = world.net.custodian_services()
    with pytest.raises(Tampered, match="do not open the record together"):
        _open(world, [Liar(first, world.net), second])
    # Another custodian's share in a custodian's answer: named by its index.
    with pytest.raises(Tampered, match=f"{second.address}.*another custodian's share"):
        _open(world, [first, Swapped(second, first)])


@dataclass
class Swapped:
    """A custodian answering with the share another custodian released."""

    me: CustodianService
    other: CustodianService

    @property
    def address(self) -> str:
        return self.me.address

    @property
    def domain(self) -> str:
        return self.other.domain

    def challenge(self) -> str:
        return self.other.challenge()

    def release(self, token_id: int, grant_id: int, requester: str, presentation: str) -> bytes:
        return self.other.release(token_id, grant_id, requester, presentation)
