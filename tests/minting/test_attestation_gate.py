"""Minting refuses records whose issuer attestation does not hold — nothing is minted.

Every case uses real signatures: the attestor callback produces a credential the
way a misbehaving or compromised issuer system would, and the chain decides.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from healthnft.credentials.did import did_for
from healthnft.credentials.vc import attest_record, attestation_id, credential_hash
from healthnft.errors import CredentialRejected, NotAnIssuer
from healthnft.ingest import ingest
from healthnft.keys import Identity
from healthnft.minting.attestation import issuer_attestor
from healthnft.network import DEMO_PASSPHRASE, Network
from healthnft.records import Record
from healthnft.sample import write_sample


@dataclass
class Setup:
    net: Network
    hospital: Identity
    other_hospital: Identity
    patient: str
    patient_key: bytes
    other_patient: str
    records: list[Record]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    net = Network.create(tmp_path / "home", DEMO_PASSPHRASE, demo=True)
    h1 = net.add_participant("hospital", "h1")
    h2 = net.add_participant("hospital", "h2")
    p1 = net.add_participant("patient", "p1")
    p2 = net.add_participant("patient", "p2")
    data = write_sample(tmp_path / "data", patients=1)
    records = ingest([data]).patients[0].records
    yield Setup(net, net.identity(h1.address), net.identity(h2.address), p1.address,
                p1.enc_key, p2.address, records)  # fmt: skip
    net.close()


def _nothing_minted(s: Setup) -> None:
    assert s.net.ledger.next_token_id() == 1
    counts = s.net.catalog.counts()
    assert counts["records"] == 0 and counts["all_record_rows"] == 0 and counts["unfinished"] == 0
    assert s.net.blobs._conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 0


def _attestor(signer: Ed25519PrivateKey, *, issuer_did: str | None = None, **override):
    def attest(record: Record, commitment: bytes, subject_did: str, wallet: str) -> str:
        now = datetime.now(UTC)
        args = {
            "subject_did": subject_did,
            "wallet": wallet,
            "commitment": commitment,
            "resource_type": record.resource_type,
            "category": record.category,
            "issued_at": now,
            "valid_until": None,
            "credential_id": f"urn:uuid:{uuid.uuid4()}",
        }
        args.update(override)
        return attest_record(signer, issuer_did or did_for(signer), **args)

    return attest


def _forged(s: Setup):
    """The hospital's header and payload, signed by someone else's key (same kid)."""
    honest = issuer_attestor(s.hospital)
    thief = Ed25519PrivateKey.generate()

    def attest(record: Record, commitment: bytes, subject_did: str, wallet: str) -> str:
        head, payload, _ = honest(record, commitment, subject_did, wallet).split(".")
        sig = thief.sign(f"{head}.{payload}".encode())
        return f"{head}.{payload}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"

    return attest


def _mint(s: Setup, attestor=None, issuer: Identity | None = None):
    return s.net.minter().mint(issuer or s.hospital, s.patient, s.patient_key, s.records,
                               attestor=attestor)  # fmt: skip


def test_the_real_issuer_attests_and_the_record_carries_it(setup: Setup) -> None:
    res = _mint(setup)
    assert res.minted == res.attested == len(setup.records)
    wallet = setup.net.wallet()
    owner = setup.net.identity(setup.patient)
    opened = wallet.open(res.token_ids[0], owner)
    assert opened.meta["attestation"].count(".") == 2  # a compact JWS, encrypted with the record
    assert wallet.verify(res.token_ids[0], owner).valid


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("forged by another key", lambda s: _forged(s), "forged"),
        ("a key no hospital holds", lambda s: _attestor(Ed25519PrivateKey.generate()),
         "non-issuer"),
        ("another hospital's key", lambda s: _attestor(s.other_hospital.did_private),
         "non-issuer"),
        ("expired", lambda s: _attestor(
            s.hospital.did_private,
            issued_at=datetime.now(UTC) - timedelta(days=30),
            valid_until=datetime.now(UTC) - timedelta(days=1)), "expired"),
        ("bound to a different commitment", lambda s: _attestor(
            s.hospital.did_private, commitment=b"\x01" * 32), "different commitment"),
        ("bound to a different wallet", lambda s: _attestor(
            s.hospital.did_private, wallet=s.other_patient), "different wallet"),
        ("bound to a different patient DID", lambda s: _attestor(
            s.hospital.did_private, subject_did=did_for(Ed25519PrivateKey.generate())),
         "different patient"),
    ],
)  # fmt: skip
def test_minting_refuses_a_bad_attestation(setup: Setup, name: str, make, reason: str) -> None:
    with pytest.raises(CredentialRejected, match=reason) as info:
        _mint(setup, attestor=make(setup))
    assert "nothing was minted" in str(info.value)
    _nothing_minted(setup)
    # The same input with honest attestations then mints normally (nothing was half-done).
    assert _mint(setup).minted == len(setup.records)


def test_minting_refuses_a_flipped_byte_and_a_missing_attestation(setup: Setup) -> None:
    honest = issuer_attestor(setup.hospital)

    def flipped(record, commitment, subject_did, wallet):
        jws = honest(record, commitment, subject_did, wallet)
        head, payload, sig = jws.split(".")
        return ".".join([head, payload, sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]])

    with pytest.raises(CredentialRejected):
        _mint(setup, attestor=flipped)
    with pytest.raises(CredentialRejected, match="malformed"):
        _mint(setup, attestor=lambda *_: "")
    _nothing_minted(setup)


def test_minting_refuses_a_revoked_attestation(setup: Setup) -> None:
    cred_id = f"urn:uuid:{uuid.uuid4()}"
    setup.net.ledger.revoke_credential(setup.hospital.account, credential_hash(cred_id))
    with pytest.raises(CredentialRejected, match="revoked"):
        _mint(setup, attestor=_attestor(setup.hospital.did_private, credential_id=cred_id))
    _nothing_minted(setup)


def test_a_hospital_that_lost_the_issuer_role_cannot_mint(setup: Setup) -> None:
    admin = setup.net.admin()
    setup.net.ledger.set_issuer(admin.account, setup.hospital.address, False)
    with pytest.raises(NotAnIssuer):
        _mint(setup)
    _nothing_minted(setup)


def test_verify_reports_a_revoked_attestation(setup: Setup) -> None:
    res = _mint(setup)
    token = res.token_ids[2]
    wallet = setup.net.wallet()
    owner = setup.net.identity(setup.patient)
    opened = wallet.open(token, owner)
    cred_id = attestation_id(opened.meta["attestation"])
    assert cred_id
    setup.net.ledger.revoke_credential(setup.hospital.account, credential_hash(cred_id))
    result = wallet.verify(token, owner)
    assert not result.valid and result.reason == "attestation revoked by its issuer"
    assert wallet.verify(res.token_ids[3], owner).valid  # the others still hold
