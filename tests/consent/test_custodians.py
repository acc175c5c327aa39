"""Grantees open shared records through k-of-n custodians — and only what they may."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from healthnft.consent import open_as_grantee
from healthnft.credentials.presentation import create_presentation
from healthnft.errors import (
    AccessDenied,
    CredentialRejected,
    HealthNFTError,
    LedgerError,
    Tampered,
)
from healthnft.ingest import ingest
from healthnft.keys import Identity
from healthnft.ledger.consent import Consent
from healthnft.network import DEMO_PASSPHRASE, Network
from healthnft.sample import write_sample
from healthnft.vault.custody import open_with_released_shares
from healthnft.wallet.actions import OwnerActions

DAY = 86400


@dataclass
class World:
    net: Network
    hospital: Identity
    patient: Identity
    research: Identity
    insurer: Identity
    tokens: list[dict]
    data: Path

    def consent(self) -> Consent:
        return Consent(self.net.ledger)

    def open(self, who: Identity, token_id: int):
        custody = self.net.custodians()
        return open_as_grantee(who, token_id, self.net.custodian_services(), custody.threshold,
                               self.net.ledger, self.net.catalog, self.net.blobs)  # fmt: skip

    def token(self, category: str) -> int:
        return next(t["token_id"] for t in self.tokens if t["category"] == category)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    net = Network.create(tmp_path / "home", DEMO_PASSPHRASE, demo=True)
    hospital = net.identity(net.add_participant("hospital", "h").address)
    for n in range(3):
        net.add_participant("custodian", f"c{n}")
    patient = net.add_participant("patient", "p")
    research = net.identity(net.add_participant("research", "r").address)
    insurer = net.identity(net.add_participant("insurer", "i").address)
    data = write_sample(tmp_path / "data", patients=1)
    records = ingest([data]).patients[0].records
    net.minter().mint(hospital, patient.address, patient.enc_key, records)
    yield World(net, hospital, net.identity(patient.address), research, insurer,
                net.wallet().list(patient.address), data)  # fmt: skip
    net.close()


def test_a_grantee_opens_exactly_its_grant(world: World) -> None:
    lab = world.token("laboratory")
    other = world.token("immunization")
    gid = world.consent().share_tokens(world.patient.account, world.research.address, [lab],
                                       "research", int(time.time()) + 30 * DAY)  # fmt: skip
    rec = world.open(world.research, lab)
    assert rec.resource["resourceType"] == "Observation"
    with pytest.raises(AccessDenied, match="no valid grant"):
        world.open(world.research, other)  # outside the grant
    with pytest.raises(AccessDenied, match="no valid grant"):
        world.open(world.insurer, lab)  # not the grantee
    log = world.consent().access_log(world.patient.address)
    assert {(e["token_id"], e["grantee"], e["purpose"]) for e in log} == {
        (lab, world.research.address, "research")
    }
    assert len(log) == world.net.custodians().threshold  # one entry per released share
    world.consent().revoke(world.patient.account, gid)
    with pytest.raises(AccessDenied, match="no valid grant"):
        world.open(world.research, lab)


def test_expired_grant_releases_nothing(world: World) -> None:
    lab = world.token("laboratory")
    ledger = world.net.ledger
    now = int(ledger.w3.eth.get_block("latest")["timestamp"])
    world.consent().share_tokens(world.patient.account, world.research.address, [lab],
                                 "research", now + 60)  # fmt: skip
    world.open(world.research, lab)
    ledger.w3.provider.ethereum_tester.time_travel(now + 120)
    with pytest.raises(AccessDenied, match="no valid grant"):
        world.open(world.research, lab)


def test_category_grant_covers_later_records_until_revoked(world: World, tmp_path: Path) -> None:
    gid = world.consent().share_category(world.patient.account, world.research.address,
                                         "laboratory", "research",
                                         int(time.time()) + 30 * DAY)  # fmt: skip
    for t in (t for t in world.tokens if t["category"] == "laboratory"):
        world.open(world.research, t["token_id"])
    with pytest.raises(AccessDenied):
        world.open(world.research, world.token("immunization"))  # another category
    # A laboratory record minted later is covered while the grant lives...
    extra = write_sample(tmp_path / "more", patients=2)
    later = ingest([extra / "sample-patient-2.json"]).patients[0].records
    res = world.net.minter().mint(world.hospital, world.patient.address,
                                  world.net.participant(world.patient.address).enc_key,
                                  later)  # fmt: skip
    new_lab = next(t for t in res.token_ids
                   if world.net.catalog.record(t).category == "laboratory")  # fmt: skip
    world.open(world.research, new_lab)
    # ...and after revocation no key for any of them, old or new.
    world.consent().revoke(world.patient.account, gid)
    for token_id in (new_lab, world.token("laboratory")):
        with pytest.raises(AccessDenied):
            world.open(world.research, token_id)


def test_custodian_checks_for_itself(world: World) -> None:
    lab = world.token("laboratory")
    services = world.net.custodian_services()
    svc = services[0]
    vp = create_presentation(world.research.did_private, world.research.did, [],
                             challenge=svc.challenge(), domain=svc.domain)  # fmt: skip
    with pytest.raises(AccessDenied, match="no valid grant"):
        svc.release(lab, 1, world.research.address, vp)  # asked without a grant
    gid = world.consent().share_tokens(world.patient.account, world.research.address, [lab],
                                       "research", int(time.time()) + DAY)  # fmt: skip
    vp = create_presentation(world.research.did_private, world.research.did, [],
                             challenge=svc.challenge(), domain=svc.domain)  # fmt: skip
    svc.release(lab, gid, world.research.address, vp)
    with pytest.raises(CredentialRejected, match="replayed"):
        svc.release(lab, gid, world.research.address, vp)  # the same presentation again
    # The insurer presenting to get the research institute's share: a foreign DID.
    vp_insurer = create_presentation(world.insurer.did_private, world.insurer.did, [],
                                     challenge=svc.challenge(), domain=svc.domain)  # fmt: skip
    with pytest.raises(AccessDenied, match="not from the requester"):
        svc.release(lab, gid, world.research.address, vp_insurer)
    # A presentation made for another custodian is refused here.
    vp_other = create_presentation(world.research.did_private, world.research.did, [],
                                   challenge=services[1].challenge(),
                                   domain=services[1].domain)  # fmt: skip
    with pytest.raises(HealthNFTError):
        svc.release(lab, gid, world.research.address, vp_other)


def test_k_minus_one_shares_open_nothing(world: World) -> None:
    lab = world.token("laboratory")
    gid = world.consent().share_tokens(world.patient.account, world.research.address, [lab],
                                       "research", int(time.time()) + DAY)  # fmt: skip
    svc = world.net.custodian_services()[0]
    vp = create_presentation(world.research.did_private, world.research.did, [],
                             challenge=svc.challenge(), domain=svc.domain)  # fmt: skip
    one = svc.release(lab, gid, world.research.address, vp)
    row = world.net.catalog.record(lab)
    with pytest.raises(Tampered):
        open_with_released_shares(world.net.blobs.get(row.blob_digest), [one], row.commitment,
                                  lab, world.research.enc_private)  # fmt: skip


def test_burn_deletes_every_custodian_share(world: World) -> None:
    lab = world.token("laboratory")
    catalog = world.net.catalog
    assert catalog._conn.execute("SELECT count(*) FROM custodian_shares WHERE token_id = ?",
                                 (lab,)).fetchone()[0] == 3  # fmt: skip
    world.consent().share_tokens(world.patient.account, world.research.address, [lab],
                                 "research", int(time.time()) + DAY)  # fmt: skip
    OwnerActions(world.net.ledger, catalog, world.net.blobs).burn(world.patient, lab)
    assert catalog._conn.execute("SELECT count(*) FROM custodian_shares WHERE token_id = ?",
                                 (lab,)).fetchone()[0] == 0  # fmt: skip
    with pytest.raises(AccessDenied):
        world.open(world.research, lab)


def test_after_a_transfer_the_new_owner_shares_through_the_custodians(world: World) -> None:
    lab = world.token("laboratory")
    net = world.net
    bob = net.add_participant("patient", "bob")
    row = net.catalog.record(lab)
    _, _, issuer_key = net.ledger.participant(row.issuer)
    OwnerActions(net.ledger, net.catalog, net.blobs, net.custodians()).transfer(
        world.patient, lab, bob.address, bob.enc_key, issuer_key
    )
    # Only the re-split shares of the new DEK remain.
    keys = {r[0] for r in net.catalog._conn.execute(
        "SELECT key_ref FROM custodian_shares WHERE token_id = ?", (lab,))}  # fmt: skip
    assert keys == {net.catalog.record(lab).key_id}
    bob_id = net.identity(bob.address)
    Consent(net.ledger).share_tokens(bob_id.account, world.research.address, [lab], "research",
                                     int(time.time()) + DAY)  # fmt: skip
    assert world.open(world.research, lab).resource["resourceType"] == "Observation"
    # The old owner can no longer share it.
    with pytest.raises(LedgerError, match="does not own the token"):
        Consent(net.ledger).share_tokens(world.patient.account, world.insurer.address, [lab],
                                         "insurance", int(time.time()) + DAY)  # fmt: skip
