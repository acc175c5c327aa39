"""An issuer's share delivery is kept only when it checks out on the custodian's own
reading of the chain (issue #13 point 6, "a forged node-to-node request")."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from healthnft.consent.delivery import sign_delivery, verify_delivery
from healthnft.errors import AccessDenied, CredentialRejected, InvalidInput, Tampered
from healthnft.ingest import ingest
from healthnft.keys import Identity
from healthnft.network import DEMO_PASSPHRASE, Network
from healthnft.sample import write_sample


@dataclass
class World:
    net: Network
    hospital: Identity
    other_hospital: Identity
    custodian: Identity
    token: int
    key_ref: bytes

    def delivery(self, signer: Identity | None = None, **changes) -> dict:
        """The real delivery of ``token``'s share to the custodian, with ``changes``."""
        wrapped, sealed = self.net.catalog.custody.batch_shares(self.key_ref,
                                                                self.custodian.address)
        row = self.net.catalog.catalogue.record(self.token)
        share = {"token_id": self.token, "commitment": row.commitment.hex(),
                 "proof": row.proof.hex(), "category": row.category,
                 "sealed_share": dict(sealed)[self.token].hex(), **changes}  # fmt: skip
        return sign_delivery(signer or self.hospital, self.custodian.address, self.key_ref,
                             wrapped, [share])  # fmt: skip


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    net = Network.create(tmp_path / "home", DEMO_PASSPHRASE, demo=True)
    hospital = net.identity(net.add_participant("hospital", "h").address)
    other = net.identity(net.add_participant("hospital", "o").address)
    custodians = [net.add_participant("custodian", f"c{n}").address for n in range(2)]
    patient = net.add_participant("patient", "p")
    records = ingest([write_sample(tmp_path / "data", patients=1)]).patients[0].records[:2]
    net.minter().mint(hospital, patient.address, patient.enc_key, records)
    token = net.wallet().list(patient.address)[0]["token_id"]
    key_ref = net.catalog.custody.undelivered(custodians[0])[0]
    yield World(net, hospital, other, net.identity(custodians[0]), token, key_ref)
    net.close()


def test_a_true_delivery_is_kept_and_says_what_it_holds(world: World) -> None:
    [held] = verify_delivery(world.net.ledger, world.custodian, world.delivery())
    assert (held.token_id, held.issuer, held.original) == (world.token, world.hospital.address,
                                                           None)  # fmt: skip


def test_forged_deliveries_are_refused(world: World) -> None:
    ledger, me = world.net.ledger, world.custodian
    with pytest.raises(AccessDenied, match="was not minted by"):  # another issuer's record
        verify_delivery(ledger, me, world.delivery(signer=world.other_hospital))
    with pytest.raises(Tampered, match="commitment is not in its batch"):
        verify_delivery(ledger, me, world.delivery(commitment="11" * 32))
    with pytest.raises(Tampered, match="does not authenticate"):
        verify_delivery(ledger, me, world.delivery(sealed_share="00" * 61))
    altered = world.delivery()
    altered["shares"][0]["category"] = "social-history"  # after signing
    with pytest.raises(CredentialRejected, match="not signed by the issuer"):
        verify_delivery(ledger, me, altered)
    with pytest.raises(InvalidInput, match="another custodian"):
        verify_delivery(ledger, world.hospital, world.delivery())
    with pytest.raises(InvalidInput, match="needs token_id"):
        verify_delivery(ledger, me, world.delivery(token_id="x"))
