"""Transfer re-encrypts for the new owner; burn crypto-shreds — checked on real files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import run_cli
from healthnft.errors import AccessDenied, Tampered, UnknownParticipant
from healthnft.network import Network
from healthnft.services.access import NOT_VISIBLE
from healthnft.vault import BatchKey, open_sealed
from healthnft.vault import _primitives as prim
from healthnft.vault.custody import open_share
from healthnft.wallet.actions import OwnerActions
from healthnft.wallet.wallet import BURNED


@pytest.fixture
def home(demo_home: tuple[Path, dict], tmp_path: Path) -> tuple[Path, dict]:
    src, summary = demo_home
    dst = tmp_path / "home"
    shutil.copytree(src, dst)
    return dst, summary


def _secrets_of(net: Network, token_id: int, reader_address: str) -> dict[str, bytes]:
    """What a reader could keep before losing access: batch key, sealed DEK, DEK, blob."""
    row = net.catalog.record(token_id)
    reader = net.identity(reader_address)
    wrapped = net.catalog.batch_key(row.key_id, reader.address)
    kek = BatchKey.unwrap(reader.enc_private, wrapped, row.key_id)
    dek = prim.aead_open(kek._key, row.sealed_dek, b"healthnft/record-key/v1|" + row.commitment)
    return {"kek": kek._key, "sealed_dek": row.sealed_dek, "dek": dek,
            "ciphertext": net.blobs.get(row.blob_digest), "kek_obj": kek}  # fmt: skip


def _custody_of(net: Network, token_id: int) -> dict[str, bytes]:
    """Every custodian's share of the record's DEK: sealed as stored, and opened."""
    row = net.catalog.record(token_id)
    custody = net.custodians()
    assert custody is not None, "the demo network has key custodians"
    found: dict[str, bytes] = {}
    for n, (address, _) in enumerate(custody.members):
        held = net.catalog.custodian_share(token_id, address)
        assert held is not None, f"custodian {n} holds no share"
        key_ref, wrapped, sealed = held
        key = BatchKey.unwrap(net.identity(address).enc_private, wrapped, key_ref)
        found[f"sealed share {n}"] = bytes(sealed)
        found[f"share {n}"] = open_share(sealed, key, token_id, row.commitment)
    return found


def _files_containing(home: Path, needle: bytes) -> list[str]:
    return [str(p.relative_to(home)) for p in home.rglob("*")
            if p.is_file() and needle in p.read_bytes()]  # fmt: skip


def test_transfer_reencrypts_for_the_new_owner(home: tuple[Path, dict]) -> None:
    path, summary = home
    alice, bob = (p["address"] for p in summary["patients"][:2])
    net = Network.open(path)
    try:
        token = net.wallet().list(alice)[2]["token_id"]
        kept = _secrets_of(net, token, alice)  # everything Alice could have kept
        row = net.catalog.record(token)
        _, _, issuer_key = net.ledger.participant(row.issuer)
        actions = OwnerActions(net.ledger, net.catalog, net.blobs)
        actions.transfer(net.identity(alice), token, bob, net.participant(bob).enc_key,
                         issuer_key)  # fmt: skip
        assert net.ledger.owner_of(token) == bob
        assert token in [r["token_id"] for r in net.wallet().list(bob)]
        assert token not in [r["token_id"] for r in net.wallet().list(alice)]
        opened = net.wallet().open(token, net.identity(bob))
        assert opened.resource["resourceType"] == row.resource_type
        assert net.wallet().verify(token, net.identity(bob)).valid
        with pytest.raises(AccessDenied):
            net.wallet().open(token, net.identity(alice))
        # Alice's kept batch key and DEK open nothing of the new ciphertext.
        new = net.catalog.record(token)
        assert new.sealed_dek != kept["sealed_dek"] and new.blob_digest != row.blob_digest
        with pytest.raises(Tampered):
            open_sealed(net.blobs.get(new.blob_digest), new.sealed_dek, new.commitment,
                        kept["kek_obj"])  # fmt: skip
        with pytest.raises(prim.DecryptionFailed):
            prim.aead_open(kept["dek"], net.blobs.get(new.blob_digest), new.commitment)
        assert net.blobs.get(row.blob_digest) is None  # the old ciphertext is gone
    finally:
        net.close()


def test_transfer_to_a_stranger_changes_nothing(home: tuple[Path, dict]) -> None:
    path, summary = home
    alice = summary["patients"][0]["address"]
    before = json.loads(run_cli(path, "wallet", "list", "--owner", alice, "--json").stdout)
    proc = run_cli(path, "transfer", str(before[0]["token_id"]), "--owner", alice, "--to",
                   "0x00000000000000000000000000000000000000aa")  # fmt: skip
    assert proc.returncode != 0 and "not a registered participant" in proc.stderr
    after = json.loads(run_cli(path, "wallet", "list", "--owner", alice, "--json").stdout)
    assert after == before
    net = Network.open(path)
    try:
        with pytest.raises(UnknownParticipant):
            OwnerActions(net.ledger, net.catalog, net.blobs).transfer(
                net.identity(alice), before[0]["token_id"],
                "0x00000000000000000000000000000000000000aa", b"\x01" * 32, b"\x01" * 32,
            )  # fmt: skip
    finally:
        net.close()


def test_burn_shreds_every_copy_of_the_keys(home: tuple[Path, dict]) -> None:
    path, summary = home
    alice = summary["patients"][0]["address"]
    net = Network.open(path)
    try:
        token = net.wallet().list(alice)[1]["token_id"]
        row = net.catalog.record(token)
        kept = _secrets_of(net, token, alice)
        issuer_view = _secrets_of(net, token, row.issuer)
        assert issuer_view["dek"] == kept["dek"]
        shares = _custody_of(net, token)  # what the custodians held, before the burn
    finally:
        net.close()
    assert len(shares) >= 4
    for name in ("sealed_dek", "ciphertext", "sealed share 0"):  # the search can find them
        assert _files_containing(path, kept.get(name) or shares[name]), name
    proc = run_cli(path, "burn", str(token), "--owner", alice)
    assert proc.returncode != 0 and "--yes" in proc.stderr  # asks for confirmation
    proc = run_cli(path, "burn", str(token), "--owner", alice, "--yes", "--json")
    assert proc.returncode == 0, proc.stderr
    for name in ("dek", "sealed_dek", "ciphertext"):
        assert _files_containing(path, kept[name]) == [], f"{name} survives the burn"
    for name, data in shares.items():  # every file under the home, raw bytes
        assert _files_containing(path, data) == [], f"custodian {name} survives the burn"
    verify = json.loads(run_cli(path, "verify", str(token), "--json").stdout)
    assert verify["valid"] is False and verify["reason"].startswith("burned")
    show = run_cli(path, "wallet", "show", str(token))
    assert show.returncode != 0 and "burned" in show.stderr
    net = Network.open(path)
    try:
        for reader in (alice, row.issuer):  # neither owner nor issuer can open it
            with pytest.raises(AccessDenied, match="burned"):
                net.wallet().open(token, net.identity(reader))
        assert token not in [r["token_id"] for r in net.wallet().list(alice)]
        # Retrying is safe; a non-owner cannot burn.
        OwnerActions(net.ledger, net.catalog, net.blobs).burn(net.identity(alice), token)
        other = net.wallet().list(alice)[0]["token_id"]
        bob = summary["patients"][1]["address"]
        with pytest.raises(AccessDenied, match="only its owner"):
            OwnerActions(net.ledger, net.catalog, net.blobs).burn(net.identity(bob), other)
    finally:
        net.close()


def test_transfer_says_it_cannot_take_back_what_was_read(home: tuple[Path, dict]) -> None:
    path, summary = home
    alice, bob = (p["address"] for p in summary["patients"][:2])
    first, second = (r["token_id"] for r in json.loads(
        run_cli(path, "wallet", "list", "--owner", alice, "--json").stdout)[:2])  # fmt: skip
    note = "transfer stops future access; it cannot take back what was already read"
    told = run_cli(path, "transfer", str(first), "--owner", alice, "--to", bob, check=True)
    assert note in told.stdout and bob in told.stdout
    as_json = json.loads(run_cli(path, "transfer", str(second), "--owner", alice, "--to", bob,
                                 "--json", check=True).stdout)  # fmt: skip
    assert as_json == {"token_id": second, "owner": bob, "note": note, "custody_pending": []}


def test_open_a_burned_record_says_burned_only_to_who_could_see_it(
    home: tuple[Path, dict],
) -> None:
    """The last owner and live grantees learn it was burned; others learn nothing new."""
    path, summary = home
    alice, bob = (p["address"] for p in summary["patients"][:2])

    def add(kind: str, name: str) -> str:
        proc = run_cli(path, "participant", "add", "--kind", kind, "--name", name, "--json",
                       check=True)  # fmt: skip
        return json.loads(proc.stdout)["address"]

    research, government, insurer = (add("research", "uni"), add("government", "gov"),
                                      add("insurer", "ins"))  # fmt: skip
    rows = json.loads(run_cli(path, "wallet", "list", "--owner", alice, "--json").stdout)
    lab = next(r["token_id"] for r in rows if r["category"] == "laboratory")
    run_cli(path, "share", str(lab), "--owner", alice, "--to", research, "--purpose",
            "research", check=True)  # fmt: skip
    run_cli(path, "share", "--category", "laboratory", "--owner", alice, "--to", government,
            "--purpose", "public-health", check=True)  # fmt: skip
    shared = run_cli(path, "share", str(lab), "--owner", alice, "--to", insurer, "--purpose",
                     "insurance", "--json", check=True)  # fmt: skip
    revoked = json.loads(shared.stdout)
    run_cli(path, "revoke", str(revoked["grant_id"]), "--owner", alice, check=True)
    assert run_cli(path, "open", str(lab), "--as", research, "--json").returncode == 0
    run_cli(path, "burn", str(lab), "--owner", alice, "--yes", check=True)

    for who in (alice, research, government):  # owner, token grant, category grant
        proc = run_cli(path, "open", str(lab), "--as", who)
        assert proc.returncode != 0 and proc.stdout == ""
        assert proc.stderr == f"error: token {lab}: {BURNED}\n", who
    # A stranger, and a grantee whose grant ended before the burn: the generic refusal,
    # worded exactly as for a token that never existed.
    never = run_cli(path, "open", "999999", "--as", bob)
    assert never.returncode != 0
    for who in (bob, insurer):
        proc = run_cli(path, "open", str(lab), "--as", who)
        assert proc.returncode == never.returncode
        assert proc.stderr == f"error: {NOT_VISIBLE}\n"
        assert "burn" not in proc.stderr
    assert never.stderr == f"error: {NOT_VISIBLE}\n"
