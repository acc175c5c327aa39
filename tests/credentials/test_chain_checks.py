"""Credentials from outside are checked against the chain, not only their signatures.

A did:key anyone can make signs perfectly well; what makes a credential worth anything
is that the chain binds its issuer's DID to a registered hospital, has no revocation of
it, and binds the patient DID it names to the wallet it names. Every case below uses a
real demo home (embedded chain), real keys and real signatures.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import run_cli
from healthnft.credentials.did import did_for
from healthnft.credentials.presentation import create_presentation
from healthnft.credentials.vc import attest_record, attestation_id, issue_identity
from healthnft.errors import CredentialRejected
from healthnft.ingest import ingest
from healthnft.network import DEMO_PASSPHRASE, Network
from healthnft.sample import write_sample

DOMAIN = "insurer.example"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A demo home on the built-in sample (3 patients): small and quick to build."""
    root = tmp_path_factory.mktemp("chain-checks")
    data = write_sample(root / "data")
    proc = run_cli(root / "home", "demo", "--data", str(data), "--json", check=True)
    return root / "home", json.loads(proc.stdout)


def _json(proc, code: int = 0) -> dict:
    assert proc.returncode == code, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def _refused(proc) -> str:
    out = _json(proc, 1)
    assert out["valid"] is False
    return out["reason"]


def _identity(home: Path, address: str):
    net = Network.open(home)
    try:
        return net.identity(address)
    finally:
        net.close()


def _challenge(home: Path) -> str:
    return _json(run_cli(home, "credential", "challenge", "--domain", DOMAIN,
                         "--json"))["challenge"]  # fmt: skip


def _check(home: Path, vp_file: Path, as_json: bool = True):
    args = ["credential", "check-presentation", str(vp_file), "--domain", DOMAIN]
    return run_cli(home, *args, *(["--json"] if as_json else []))


def _issue(home: Path, patient: str) -> dict:
    return _json(run_cli(home, "credential", "issue", "--patient", patient, "--issuer",
                         "demo-hospital", "--json"))  # fmt: skip


def test_presentation_of_a_revoked_identity_credential_is_refused(
    home: tuple[Path, dict], tmp_path: Path
) -> None:
    root, summary = home
    alice = summary["patients"][0]["address"]
    issued = _issue(root, alice)
    _json(run_cli(root, "credential", "revoke", issued["file"], "--json"))
    vp = tmp_path / "vp.jwt"
    run_cli(root, "wallet", "present", "--owner", alice, "--challenge", _challenge(root),
            "--domain", DOMAIN, "--credential", issued["file"], "--out", str(vp),
            check=True)  # fmt: skip
    assert _refused(_check(root, vp)) == "credential 1: revoked"
    # Without --json: one line on stderr, exit 1, and no identifier in it.
    proc = _check(root, vp, as_json=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == "invalid: credential 1: revoked\n"


def test_self_issued_credential_from_an_unregistered_did_is_refused(
    home: tuple[Path, dict], tmp_path: Path
) -> None:
    root, summary = home
    alice = summary["patients"][0]["address"]
    stranger = Ed25519PrivateKey.generate()
    did = did_for(stranger)
    now = datetime.now(UTC)
    # The stranger claims Alice's wallet for itself, signed and presented by itself.
    claim = issue_identity(stranger, did, subject_did=did, wallet=alice, valid_from=now,
                           valid_until=now + timedelta(days=1),
                           credential_id=f"urn:uuid:{uuid.uuid4()}")  # fmt: skip
    challenge = _challenge(root)
    vp = tmp_path / "self.jwt"
    vp.write_text(create_presentation(stranger, did, [claim], challenge=challenge,
                                      domain=DOMAIN))  # fmt: skip
    reason = _refused(_check(root, vp))
    assert reason == "credential 1: issuer DID is not bound on chain to any participant"
    assert did not in reason and alice not in reason
    # The challenge was not used up by the refusal: an honest presentation still passes.
    issued = _issue(root, alice)
    good = tmp_path / "good.jwt"
    run_cli(root, "wallet", "present", "--owner", alice, "--challenge", challenge, "--domain",
            DOMAIN, "--credential", issued["file"], "--out", str(good), check=True)  # fmt: skip
    checked = _json(_check(root, good))
    assert checked["valid"] and checked["holder"] == issued["holder"]


def test_presented_credentials_must_match_the_chain(
    home: tuple[Path, dict], tmp_path: Path
) -> None:
    root, summary = home
    alice, bob = (p["address"] for p in summary["patients"][:2])
    hospital = _identity(root, summary["issuer"]["address"])
    bob_id = _identity(root, bob)
    patient_id = _identity(root, alice)
    now = datetime.now(UTC)

    def present(cred: str, holder) -> Path:
        vp = tmp_path / f"{uuid.uuid4()}.jwt"
        vp.write_text(create_presentation(holder.did_private, holder.did, [cred],
                                          challenge=_challenge(root), domain=DOMAIN))  # fmt: skip
        return vp

    def identity(signer, *, subject, wallet, until=timedelta(days=1), since=timedelta(0)) -> str:
        return issue_identity(signer.did_private, signer.did, subject_did=subject, wallet=wallet,
                              valid_from=now - since, valid_until=now + until,
                              credential_id=f"urn:uuid:{uuid.uuid4()}")  # fmt: skip

    # The real hospital, but naming Alice's wallet for Bob's DID.
    wrong_wallet = identity(hospital, subject=bob_id.did, wallet=alice)
    assert _refused(_check(root, present(wrong_wallet, bob_id))) == (
        "credential 1: its patient DID is not the one bound on chain to the wallet it names"
    )
    # A registered participant that is not a hospital (a patient) issuing.
    by_patient = identity(patient_id, subject=bob_id.did, wallet=bob)
    assert _refused(_check(root, present(by_patient, bob_id))) == (
        "credential 1: issuer DID is not bound on chain to a registered hospital"
    )
    # Expired (signed by the real hospital, bound correctly).
    expired = identity(hospital, subject=bob_id.did, wallet=bob, since=timedelta(days=3),
                       until=timedelta(days=-2))  # fmt: skip
    assert _refused(_check(root, present(expired, bob_id))) == "credential 1: expired"
    # All in order: accepted.
    good = identity(hospital, subject=bob_id.did, wallet=bob)
    assert _json(_check(root, present(good, bob_id)))["holder"] == bob_id.did


def test_attestation_file_is_checked_against_the_chain(
    home: tuple[Path, dict], tmp_path: Path
) -> None:
    root, summary = home
    alice = summary["patients"][0]["address"]
    token = _json(run_cli(root, "wallet", "list", "--owner", alice, "--json"))[0]["token_id"]
    shown = _json(run_cli(root, "wallet", "show", str(token), "--json"))
    honest = tmp_path / "attestation.jwt"
    honest.write_text(shown["meta"]["attestation"] + "\n")
    ok = _json(run_cli(root, "credential", "verify", str(honest), "--json"))
    assert ok["valid"] and "HealthRecordAttestation" in ok["type"]

    # The same claims signed by a random key: a valid signature, an issuer nobody knows.
    thief = Ed25519PrivateKey.generate()
    patient_did = _identity(root, alice).did
    forged = tmp_path / "forged.jwt"
    forged.write_text(attest_record(
        thief, did_for(thief), subject_did=patient_did, wallet=alice, commitment=b"\x07" * 32,
        resource_type="Observation", category="laboratory", issued_at=datetime.now(UTC),
        valid_until=None, credential_id=f"urn:uuid:{uuid.uuid4()}"))  # fmt: skip
    assert _refused(run_cli(root, "credential", "verify", str(forged), "--json")) == (
        "issuer DID is not bound on chain to any participant"
    )
    proc = run_cli(root, "credential", "verify", str(forged))
    assert proc.returncode == 1
    assert proc.stderr == "invalid: issuer DID is not bound on chain to any participant\n"

    # Revoked on chain by its issuer: the file is refused too, as `verify TOKEN` is.
    _json(run_cli(root, "credential", "revoke", str(token), "--json"))
    assert _refused(run_cli(root, "credential", "verify", str(honest), "--json")) == "revoked"


def test_an_attestor_returning_none_is_a_clear_refusal(tmp_path: Path) -> None:
    net = Network.create(tmp_path / "home", DEMO_PASSPHRASE, demo=True)
    try:
        hospital = net.add_participant("hospital", "h")
        patient = net.add_participant("patient", "p")
        records = ingest([write_sample(tmp_path / "data", patients=1)]).patients[0].records
        with pytest.raises(CredentialRejected) as info:
            net.minter().mint(net.identity(hospital.address), patient.address, patient.enc_key,
                              records, attestor=lambda *_: None)  # fmt: skip
        assert str(info.value).endswith(
            "issuer attestation refused (malformed credential: not a compact JWS); "
            "nothing was minted"
        )
        assert net.ledger.next_token_id() == 1
        assert attestation_id(None) is None and attestation_id(b"a.b.c") is None
    finally:
        net.close()


def test_wallet_present_json(home: tuple[Path, dict], tmp_path: Path) -> None:
    root, summary = home
    alice = summary["patients"][0]["address"]
    issued = _issue(root, alice)
    out = _json(run_cli(root, "wallet", "present", "--owner", alice, "--challenge",
                        _challenge(root), "--domain", DOMAIN, "--json"))  # fmt: skip
    assert out["holder"] == issued["holder"] and out["credentials"] == 1
    assert out["domain"] == DOMAIN and out["file"] is None
    vp = tmp_path / "vp.jwt"
    vp.write_text(out["presentation"])
    assert _json(_check(root, vp))["valid"]
    # With --out as well, the file holds the same presentation and the JSON names it.
    written = tmp_path / "written.jwt"
    again = _json(run_cli(root, "wallet", "present", "--owner", alice, "--challenge",
                          _challenge(root), "--domain", DOMAIN, "--out", str(written),
                          "--json"))  # fmt: skip
    assert again["file"] == str(written)
    assert written.read_text().strip() == again["presentation"]
