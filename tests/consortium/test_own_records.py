"""A patient opens and verifies its own records from its own home (issue #14, points 1-2).

The cheapest network that separates the parties: one chain process (anvil), an admin
home, a hospital's home served by its own node process, and a patient-only home (keys
and cache, nothing else) registered from the `healthnft:` link its wallet shows. The
hospital mints into the patient's wallet; the patient lists, opens and verifies the
record on its own device: the node serves ciphertext, the wrapped key and the proof to
the owner only, and the patient's home checks the proof against the root on chain and
the commitment against the decrypted bytes. A ciphertext or proof altered at the node
is one "tampered" error with nothing shown; the node's home and log never hold the
patient's secret nor, after the open, the record's plaintext.

No custodians: the owner's key is wrapped for it at mint, so none is asked here (the
grantee's path through them is tests/consortium/test_across_nodes.py's).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from conftest import LAB_OBSERVATION, ServiceProcess, need_tool, one_error_line, run_cli
from healthnft.errors import InvalidInput, NotFound, Tampered
from healthnft.ledger import nodes
from minting.test_dicom_mint import chunk_digests, write_study

PASS = {"HEALTHNFT_PASSPHRASE": "own-records-test-passphrase"}
#: A value found nowhere but in the record's plaintext: grepped for where it must not be.
MARKER = "own-record-marker-5c1e9b"
RECORD = {**LAB_OBSERVATION, "id": MARKER}
#: A second record in the same batch, so the first has a Merkle proof of one sibling.
OTHER = {**LAB_OBSERVATION, "id": "lab-other", "effectiveDateTime": "2021-05-06T07:08:09Z"}


def _cli(home: Path, *args: str, check: bool = True):
    at = args.index("--") if "--" in args else len(args)
    return run_cli(home, *args[:at], "--json", *args[at:], env=PASS, check=check, timeout=180)


def _json(home: Path, *args: str) -> Any:
    return json.loads(_cli(home, *args).stdout)


class NodeService(ServiceProcess):
    """`healthnft serve` over the hospital's home: its node, for the patient's device."""

    def __init__(self, home: Path) -> None:
        super().__init__(home, ["serve"], "/node/v1/challenge", PASS, clean=True, start_s=60.0)


@pytest.fixture(scope="module")
def net(tmp_path_factory) -> Iterator[dict[str, Any]]:
    need_tool("anvil")
    started = time.monotonic()
    root = tmp_path_factory.mktemp("own")
    admin_key = Account.create()
    (root / "admin.key").write_text(admin_key.key.hex())
    chain = nodes.start_anvil(root / "chain", prefund=[admin_key.address])
    node = None
    try:
        admin = root / "admin"
        _json(admin, "init", "--rpc", chain.rpc_url, "--admin-key-file", str(root / "admin.key"))
        network = root / "network.json"
        run_cli(admin, "consortium", "network-file", "--out", str(network), env=PASS,
                check=True)  # fmt: skip
        hospital = root / "General"
        hospital_address = _json(hospital, "join", str(network), "--kind", "hospital",
                                 "--name", "General")["address"]  # fmt: skip
        _json(admin, "participant", "admit", str(hospital / "application.json"))
        node = NodeService(hospital)
        doc = json.loads(network.read_text())
        doc["nodes"] = {"General": {"kind": "hospital", "url": node.url,
                                    "address": hospital_address}}  # fmt: skip
        network.write_text(json.dumps(doc))
        patient = root / "Pat"
        joined = _json(patient, "join", str(network), "--kind", "patient", "--name", "Pat")
        card = _json(patient, "wallet", "card")
        admitted = _json(admin, "participant", "admit", card["link"])  # from the link only
        (root / "records").mkdir()
        (root / "records" / "a-lab.json").write_text(json.dumps(RECORD))
        (root / "records" / "b-lab.json").write_text(json.dumps(OTHER))
        minted = _json(hospital, "mint", "--issuer", "General", "--patient",
                       joined["address"], str(root / "records"))  # fmt: skip
        assert minted["batches"] == 1 and len(minted["token_ids"]) == 2
        study_files = write_study(root / "disc")  # an imaging study: a record of chunks
        study = _json(hospital, "mint", "--issuer", "General", "--patient",
                      joined["address"], str(root / "disc"))["token_ids"][0]  # fmt: skip
        node.start()
        print(f"network for own records: {time.monotonic() - started:.1f} s")  # noqa: T201
        yield {"root": root, "admin": admin, "hospital": hospital, "node": node,
               "patient": patient, "address": joined["address"], "card": card,
               "admitted": admitted, "tokens": minted["token_ids"], "token": minted["token_ids"][0],
               "hospital_address": hospital_address, "study": study,
               "study_files": study_files}  # fmt: skip
    finally:
        if node is not None:
            node.stop()
        chain.stop()


def _minted_order(net: dict[str, Any]) -> list[dict[str, Any]]:
    """The records in the order of their token ids (the hospital reads the folder sorted)."""
    return [RECORD, OTHER]


def _patient_secrets(net: dict[str, Any]) -> list[str]:
    """The patient's private key and encryption private key, as hex (with and without 0x):
    read from its keystore here, to look for them where they must not be."""
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    from healthnft import keys
    from healthnft.home import Home

    me = keys.read_keystore(Home(net["patient"]).keystore_dir, net["address"],
                            PASS["HEALTHNFT_PASSPHRASE"])  # fmt: skip
    account = bytes(me.account.key).hex()
    enc = me.enc_private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()).hex()
    return [account, "0x" + account, enc]


def _files_of(where: Path) -> Iterator[Path]:
    yield from (p for p in where.rglob("*") if p.is_file())


# -- registration from public data ------------------------------------------------------


def test_the_card_is_public_data_and_registers_the_patient(net):
    card, application = net["card"], (net["patient"] / "application.json").read_text()
    assert set(card) == {"address", "kind", "chain_id", "enc_public", "link"}
    assert card["address"] == net["address"] and card["kind"] == "patient"
    assert card["link"].startswith("healthnft:apply?") and len(card["link"]) < 600
    assert card["enc_public"] in card["link"] and card["address"] in card["link"]
    # Admitted from the link alone: registered on chain with that encryption key.
    assert net["admitted"] == {"address": net["address"], "kind": "patient", "issuer": False,
                               "custodian": False}  # fmt: skip
    # Neither the link nor the application holds a secret or any of the keystore.
    keystore = [json.loads(p.read_text()) for p in (net["patient"] / "keystore").iterdir()]
    assert len(keystore) == 1
    sealed = keystore[0]["crypto"]["ciphertext"]
    for text in (card["link"], application, json.dumps(card)):
        for secret in [*_patient_secrets(net), sealed]:
            assert secret.removeprefix("0x") not in text.lower()
        assert "crypto" not in text and "ciphertext" not in text
    # The link is the application itself: the same document, read either way.
    from healthnft.consortium import read_application

    assert read_application(card["link"]) == json.loads(application)
    # A QR code of it, for the wallet to show.
    qr = net["root"] / "card.png"
    drawn = _json(net["patient"], "wallet", "card", "--qr", str(qr))
    assert drawn["link"] == card["link"] and qr.read_bytes().startswith(b"\x89PNG")


def test_a_damaged_link_is_one_clear_refusal(net):
    link = net["card"]["link"]
    cut = _cli(net["admin"], "participant", "admit", link.split("&sig=")[0], check=False)
    assert "not a membership link" in one_error_line(cut, InvalidInput)
    other = link.replace(f"address={net['address']}", f"address={net['hospital_address']}")
    forged = _cli(net["admin"], "participant", "admit", other, check=False)
    assert forged.returncode != 0 and "not signed by" in forged.stderr, forged.stderr


# -- the patient's own records, on its own device -----------------------------------------


def test_the_patient_lists_opens_and_verifies_its_own_record(net):
    token, patient = net["token"], net["patient"]
    started = time.monotonic()
    listed = _json(patient, "wallet", "list")  # no --owner: the home's own member
    assert listed[-1]["token_id"] == net["study"] and listed[-1]["resource_type"] == "DicomStudy"
    assert listed[:-1] == [{"token_id": t, "category": "laboratory",
                       "resource_type": "Observation", "status": "at-issuer",
                       "effective_date": r["effectiveDateTime"][:10]}
                      for t, r in zip(net["tokens"], _minted_order(net), strict=True)]  # fmt: skip
    opened = _json(patient, "wallet", "show", "--", str(token))
    assert opened["token_id"] == token and opened["resource"] == RECORD
    assert "attestation" in opened["meta"]  # the owner's copy keeps the issuer's credential
    checked = _json(patient, "verify", "--", str(token))
    assert checked["valid"] and "commitment recomputed" in checked["reason"], checked
    print(f"list + open + verify from the patient's home: "  # noqa: T201 - timing
          f"{time.monotonic() - started:.1f} s")
    # The home holds the patient's keys and cache: its own key only, no ciphertext, no
    # record row.
    assert len(list((patient / "keystore").iterdir())) == 1
    with contextlib.closing(sqlite3.connect(patient / "vault.sqlite")) as db:
        assert db.execute("SELECT count(*) FROM blobs").fetchone() == (0,)
    with contextlib.closing(sqlite3.connect(patient / "index.sqlite")) as db:
        assert db.execute("SELECT count(*) FROM records").fetchone() == (0,)
    cache = json.loads((patient / "cache" / "own-records.json").read_text())
    assert cache[str(token)] == {"category": "laboratory", "resource_type": "Observation",
                                 "effective_date": RECORD["effectiveDateTime"][:10]}  # fmt: skip
    assert (patient / "cache" / "own-records.json").stat().st_mode & 0o077 == 0
    for path in _files_of(patient):  # plaintext only while open, never at rest
        assert MARKER.encode() not in path.read_bytes(), path


def test_the_patient_opens_its_own_imaging_study_streamed_from_the_node(net, tmp_path):
    """A study's chunks are fetched one by one with their tickets, each authenticated here;
    written back byte for byte; a chunk altered at the node is "tampered", nothing kept."""
    patient, study = net["patient"], str(net["study"])
    shown = _cli(patient, "wallet", "show", study, check=True)
    assert shown.stdout and "DicomStudy" in shown.stdout
    out = tmp_path / "study-back"
    run_cli(patient, "wallet", "show", study, "--out", str(out), env=PASS, check=True)
    assert sorted(p.read_bytes() for p in out.iterdir()) == sorted(
        p.read_bytes() for p in net["study_files"])  # fmt: skip
    checked = _json(patient, "verify", "--", study)
    assert checked["valid"] and "every imaging chunk" in checked["reason"], checked
    middle = chunk_digests(net["hospital"], net["study"])[1]
    with _altered(net["hospital"] / "vault.sqlite", "blobs", "data", "digest", middle,
                  lambda b: _flip(b, len(b) // 2)):  # fmt: skip
        again = tmp_path / "again"
        refused = run_cli(patient, "wallet", "show", study, "--out", str(again), env=PASS)
        assert "tampered" in one_error_line(refused, Tampered)
        assert not again.exists()
        shown = run_cli(patient, "wallet", "show", study, env=PASS)
        assert "tampered" in one_error_line(shown, Tampered) and shown.stdout == ""


def test_a_listing_without_a_passphrase_shows_the_chain_and_the_cache(net):
    bare = run_cli(net["patient"], "wallet", "list", "--json", env={"HEALTHNFT_PASSPHRASE": ""},
                   check=True)  # fmt: skip
    rows = {r["token_id"]: r for r in json.loads(bare.stdout)}
    assert set(rows) == {*net["tokens"], net["study"]}
    assert rows[net["token"]]["status"] == "at-issuer"


def test_an_open_on_the_device_in_process(net):
    """What an open costs once the CLI has started: three round trips to the node (challenge,
    row and keys, ciphertext), the proof against the chain's root, HPKE, AES-GCM and the
    commitment (printed; the bench is the place for numbers)."""
    from healthnft.network import Network
    from healthnft.services import records

    home = Network.open(net["patient"])
    home.remember_keys = True  # as a served wallet does: the keystore's scrypt once
    try:
        secret = PASS["HEALTHNFT_PASSPHRASE"]
        records.open_record(home, None, net["token"], secret)
        started = time.perf_counter()
        for _ in range(5):
            rec = records.open_record(home, None, net["token"], secret)
        took = (time.perf_counter() - started) / 5
        assert json.loads(rec.resource_json()) == RECORD
        print(f"own record open on the device: {took * 1000:.0f} ms")  # noqa: T201 - timing
    finally:
        home.close()


def test_the_node_holds_no_patient_secret_and_no_plaintext(net):
    """After the patient opened its record: neither its private keys nor the record's
    plaintext is in any file of the hospital's home or in its node's log."""
    _json(net["patient"], "wallet", "show", "--", str(net["token"]))
    secrets = [s.encode() for s in _patient_secrets(net)]
    log = net["hospital"].parent / f"{net['hospital'].name}.log"
    assert log.exists()
    for path in [*_files_of(net["hospital"]), log]:
        data = path.read_bytes().lower()
        for secret in secrets:
            assert secret.lower() not in data, (path, "patient secret")
        assert MARKER.encode() not in data, (path, "record plaintext")


def test_only_the_owner_gets_the_wrapped_key(net):
    """Another member proving its own DID (the hospital itself) is told what a stranger
    is told; a request without a presentation is refused before anything is looked up."""
    import requests

    from healthnft import keys
    from healthnft.credentials import create_presentation
    from healthnft.home import Home

    url, token = net["node"].url, net["token"]
    other = keys.read_keystore(Home(net["hospital"]).keystore_dir, net["hospital_address"],
                               PASS["HEALTHNFT_PASSPHRASE"])  # fmt: skip
    offer = requests.get(f"{url}/node/v1/challenge", timeout=10).json()
    vp = create_presentation(other.did_private, other.did, [], challenge=offer["challenge"],
                             domain=offer["domain"])  # fmt: skip
    stranger = requests.post(f"{url}/node/v1/own/{token}", timeout=10,
                             json={"requester": other.address, "presentation": vp})
    assert stranger.status_code == NotFound.http_status, stranger.text
    assert "wrapped" not in stranger.text
    bare = requests.post(f"{url}/node/v1/own/{token}", timeout=10,
                         json={"requester": net["address"], "presentation": "x"})
    assert bare.status_code == 401, bare.text
    # The owner's presentation answers one challenge once: a replay is refused.
    me = keys.read_keystore(Home(net["patient"]).keystore_dir, net["address"],
                            PASS["HEALTHNFT_PASSPHRASE"])  # fmt: skip
    offer = requests.get(f"{url}/node/v1/challenge", timeout=10).json()
    ask = {"requester": me.address, "presentation": create_presentation(
        me.did_private, me.did, [], challenge=offer["challenge"], domain=offer["domain"])}
    first = requests.post(f"{url}/node/v1/own/{token}", timeout=10, json=ask)
    assert first.status_code == 200 and set(first.json()["key"]) == {
        "key_id", "sealed_dek", "wrapped"}  # wrapped for the owner: no key in the clear
    replay = requests.post(f"{url}/node/v1/own/{token}", timeout=10, json=ask)
    assert replay.status_code == 401, replay.text


# -- tampering at the node ---------------------------------------------------------------


@contextlib.contextmanager
def _altered(db_path: Path, table: str, column: str, key: str, key_value: Any,
             change: Any) -> Iterator[None]:
    """``column`` of one row of the holder's SQLite file changed by ``change`` while the
    node runs, restored after."""
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        (before,) = db.execute(f"SELECT {column} FROM {table} WHERE {key} = ?",  # noqa: S608
                               (key_value,)).fetchone()  # fmt: skip
        with db:
            db.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?",  # noqa: S608
                       (change(before), key_value))  # fmt: skip
        try:
            yield
        finally:
            with db:
                db.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?",  # noqa: S608
                           (before, key_value))  # fmt: skip


def _flip(data: bytes, at: int = 40) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def _refused_as_tampered(net: dict[str, Any]) -> None:
    shown = _cli(net["patient"], "wallet", "show", "--", str(net["token"]), check=False)
    line = one_error_line(shown, Tampered)
    assert "tampered" in line and shown.stdout == "", shown.stdout
    assert MARKER not in shown.stderr
    checked = _cli(net["patient"], "verify", "--", str(net["token"]), check=False)
    assert checked.returncode == 1, checked.stderr
    result = json.loads(checked.stdout)
    assert not result["valid"] and "tampered" in result["reason"], result


def _record_row(net: dict[str, Any]) -> tuple[bytes, bytes]:
    with contextlib.closing(sqlite3.connect(net["hospital"] / "index.sqlite")) as db:
        return db.execute("SELECT blob_digest, proof FROM records WHERE token_id = ?",
                          (net["token"],)).fetchone()  # fmt: skip


def test_a_ciphertext_altered_at_the_node_is_tampered(net):
    """The stored blob's bytes changed: it no longer hashes to its digest."""
    digest, _ = _record_row(net)
    with _altered(net["hospital"] / "vault.sqlite", "blobs", "data", "digest", digest, _flip):
        _refused_as_tampered(net)
    assert _json(net["patient"], "wallet", "show", "--", str(net["token"]))["resource"] == RECORD


def test_a_ciphertext_replaced_with_its_digest_at_the_node_is_tampered(net):
    """A forged ciphertext stored under its own digest, the row pointing at it: it hashes
    right, so decryption under the on-chain commitment is what refuses it."""
    import hashlib

    digest, _ = _record_row(net)
    with contextlib.closing(sqlite3.connect(net["hospital"] / "vault.sqlite")) as db:
        (data,) = db.execute("SELECT data FROM blobs WHERE digest = ?", (digest,)).fetchone()
        forged = _flip(data)
        with db:
            db.execute("INSERT INTO blobs (digest, data) VALUES (?, ?)",
                       (hashlib.sha256(forged).digest(), forged))  # fmt: skip
    with _altered(net["hospital"] / "index.sqlite", "records", "blob_digest", "token_id",
                  net["token"], lambda _d: hashlib.sha256(forged).digest()):  # fmt: skip
        _refused_as_tampered(net)


def test_a_proof_or_commitment_altered_at_the_node_is_tampered(net):
    """The Merkle proof served, or the commitment, no longer leads to the batch root the
    patient's home reads from the chain."""
    _, proof = _record_row(net)
    assert len(proof) >= 32, "two records in the batch: a proof of one sibling at least"
    index = net["hospital"] / "index.sqlite"
    with _altered(index, "records", "proof", "token_id", net["token"], lambda p: _flip(p, 5)):
        _refused_as_tampered(net)
    with _altered(index, "records", "commitment", "token_id", net["token"],
                  lambda c: _flip(c, 3)):  # fmt: skip
        _refused_as_tampered(net)


def test_the_holders_node_down(net):
    """Last (it stops the node): opening is one clear error; the listing still shows what
    the chain and the cache say, at once; the node back, it opens again."""
    from healthnft.errors import Unavailable

    net["node"].stop()
    try:
        shown = _cli(net["patient"], "wallet", "show", "--", str(net["token"]), check=False)
        assert "does not answer" in one_error_line(shown, Unavailable)
        started = time.monotonic()
        rows = {r["token_id"]: r for r in _json(net["patient"], "wallet", "list")}
        assert time.monotonic() - started < 30
        assert rows[net["token"]]["resource_type"] == "Observation"  # from the cache
    finally:
        net["node"].start()
    assert _json(net["patient"], "wallet", "show", "--", str(net["token"]))["resource"] == RECORD
