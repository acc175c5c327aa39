"""Ciphertext between institutions (issue #13 point 7): a grantee fetches a shared record
from the node that holds it, over HTTP, as a separate process; everything it receives is
checked (the chain for the row, the digest for the ciphertext), and every request that is
not a live grantee's own, fresh one is refused."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from eth_account import Account

from conftest import LAB_OBSERVATION, need_tool, run_cli
from healthnft.errors import CredentialRejected, HealthNFTError, NotFound, Tampered
from healthnft.ledger import nodes

PASS = {"HEALTHNFT_PASSPHRASE": "exchange-test-passphrase"}


def _cli(home: Path, *args: str):
    at = args.index("--") if "--" in args else len(args)
    proc = run_cli(home, *args[:at], "--json", *args[at:], env=PASS, check=True, timeout=180)
    return json.loads(proc.stdout)


def _serve(home: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, **PASS, "HEALTHNFT_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "healthnft.cli", "serve", "--host",
                             "127.0.0.1", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "serve died")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/node/v1/challenge", timeout=1)
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("serve did not start")


def _big_ct(path: Path) -> None:
    """pydicom's bundled CT slice at 1024 x 1024 (2 MiB of pixels): a study of three
    1 MiB stream chunks, so a remote read crosses chunk boundaries."""
    import numpy as np
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    ds = dcmread(get_testdata_file("CT_small.dcm"))
    ds.Rows = ds.Columns = 1024
    ds.PixelData = np.random.default_rng(7).integers(0, 4096, (1024, 1024),
                                                     dtype="<u2").tobytes()  # fmt: skip
    ds.save_as(path)


@pytest.fixture(scope="module")
def holder(tmp_path_factory):
    """A hospital's home on anvil with one shared lab record, served as its own process."""
    need_tool("anvil")
    tmp = tmp_path_factory.mktemp("exchange")
    admin = Account.create()
    (tmp / "admin.key").write_text(admin.key.hex())
    anvil = nodes.start_anvil(tmp / "anvil", prefund=[admin.address])
    server = None
    try:
        home = tmp / "hospital"
        _cli(home, "init", "--rpc", anvil.rpc_url, "--admin-key-file", str(tmp / "admin.key"))
        _cli(home, "participant", "add", "--kind", "hospital", "--name", "General")
        patient = _cli(home, "participant", "add", "--kind", "patient", "--name", "P")
        research = _cli(home, "participant", "add", "--kind", "research", "--name", "Lab")
        outsider = _cli(home, "participant", "add", "--kind", "research", "--name", "Other")
        for n in range(3):
            _cli(home, "participant", "add", "--kind", "custodian", "--name", f"C{n}")
        (tmp / "lab.json").write_text(json.dumps(LAB_OBSERVATION))
        _big_ct(tmp / "study.dcm")
        _cli(home, "mint", "--issuer", "General", "--patient", patient["address"],
             str(tmp / "lab.json"), str(tmp / "study.dcm"))  # fmt: skip
        listed = _cli(home, "wallet", "list", "--owner", patient["address"])
        token = next(r["token_id"] for r in listed if r["category"] != "imaging")
        study = next(r["token_id"] for r in listed if r["category"] == "imaging")
        _cli(home, "share", "--owner", patient["address"], "--to", research["address"],
             "--purpose", "research", "--", str(token), str(study))  # fmt: skip
        port = nodes.free_port()
        server = _serve(home, port)
        yield {"home": home, "url": f"http://127.0.0.1:{port}", "token": token, "study": study,
               "study_file": tmp / "study.dcm",
               "research": research["address"], "outsider": outsider["address"]}
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        anvil.stop()


@pytest.fixture(scope="module")
def grantee(holder):
    """The grantee's side, in this test process (another process than the holder's)."""
    from healthnft.network import Network

    net = Network.open(holder["home"], check_index=False)
    with pytest.MonkeyPatch.context() as env:  # for this module only: later tests in this
        env.setenv("HEALTHNFT_PASSPHRASE", PASS["HEALTHNFT_PASSPHRASE"])  # worker use demos
        try:
            yield net
        finally:
            net.close()


def test_a_grantee_fetches_checks_and_opens_with_custodian_shares(holder, grantee):
    from healthnft.consent.custodian import grants_for
    from healthnft.credentials import create_presentation
    from healthnft.services.exchange import fetch_from_peer
    from healthnft.vault.custody import open_with_released_shares

    reader = grantee.identity(holder["research"])
    fetched = fetch_from_peer(grantee, reader, holder["token"], holder["url"])
    assert fetched.row.token_id == holder["token"] and fetched.chunks.digests == []
    assert fetched.row.record_key == b"" and fetched.row.sealed_dek == b""  # never sent
    grant = grants_for(grantee.ledger, reader.address, holder["token"], fetched.row.category)[0]
    released = []
    for service in grantee.custodian_services()[:2]:  # k = 2 of 3
        vp = create_presentation(reader.did_private, reader.did, [],
                                 challenge=service.challenge(), domain=service.domain)
        released.append(service.release(holder["token"], grant, reader.address, vp))
    plain = open_with_released_shares(fetched.ciphertext, released, fetched.row.commitment,
                                      holder["token"], reader.enc_private)  # fmt: skip
    assert json.loads(plain.canonical)["valueQuantity"]["value"] == 5.4


def test_no_grant_forgery_and_replay_are_refused(holder, grantee):
    import requests

    from healthnft.credentials import create_presentation
    from healthnft.services.exchange import fetch_from_peer

    url, token = holder["url"], holder["token"]
    with pytest.raises(NotFound, match="no record you may open"):
        fetch_from_peer(grantee, grantee.identity(holder["outsider"]), token, url)
    with pytest.raises(NotFound, match="no record you may open"):  # unknown: the same
        fetch_from_peer(grantee, grantee.identity(holder["research"]), 999_999, url)

    reader = grantee.identity(holder["research"])
    offer = requests.get(f"{url}/node/v1/challenge", timeout=5).json()
    vp = create_presentation(reader.did_private, reader.did, [], challenge=offer["challenge"],
                             domain=offer["domain"])  # fmt: skip
    ask = {"requester": reader.address, "presentation": vp}
    first = requests.post(f"{url}/node/v1/records/{token}", json=ask, timeout=5)
    assert first.status_code == 200, first.text
    replay = requests.post(f"{url}/node/v1/records/{token}", json=ask, timeout=5)
    assert replay.status_code == CredentialRejected.http_status
    assert "replayed" in replay.json()["detail"]

    # The outsider's DID over a fresh challenge, claiming to be the grantee: refused.
    outsider = grantee.identity(holder["outsider"])
    offer = requests.get(f"{url}/node/v1/challenge", timeout=5).json()
    forged = create_presentation(outsider.did_private, outsider.did, [],
                                 challenge=offer["challenge"], domain=offer["domain"])
    answer = requests.post(f"{url}/node/v1/records/{token}", timeout=5,
                           json={"requester": reader.address, "presentation": forged})
    assert answer.status_code == CredentialRejected.http_status
    assert "not from the requester" in answer.json()["detail"]

    # A presentation made for another node is refused here.
    other = create_presentation(reader.did_private, reader.did, [],
                                challenge=requests.get(f"{url}/node/v1/challenge",
                                                       timeout=5).json()["challenge"],
                                domain="healthnft-node:http://elsewhere.example")  # fmt: skip
    answer = requests.post(f"{url}/node/v1/records/{token}", timeout=5,
                           json={"requester": reader.address, "presentation": other})
    assert answer.status_code == CredentialRejected.http_status

    # A ticket is good once, for its requester only.
    row, tickets = first.json()["row"], first.json()["tickets"]
    digest = row["blob_digest"]
    headers = {"Authorization": f"Bearer {tickets[digest]}", "X-Requester": reader.address}
    assert requests.get(f"{url}/node/v1/blobs/{digest}", headers=headers,
                        timeout=5).status_code == 200  # fmt: skip
    again = requests.get(f"{url}/node/v1/blobs/{digest}", headers=headers, timeout=5)
    assert again.status_code == CredentialRejected.http_status


def test_a_ciphertext_that_does_not_match_its_address_is_refused(holder, grantee):
    from healthnft.services.exchange import fetch_from_peer

    reader = grantee.identity(holder["research"])
    vault = holder["home"] / "vault.sqlite"
    record = grantee.catalog.catalogue.record(holder["token"])
    with sqlite3.connect(vault) as db:
        digest, data = db.execute("SELECT digest, data FROM blobs WHERE digest = ?",
                                  (record.blob_digest,)).fetchone()  # fmt: skip
        db.execute("UPDATE blobs SET data = ? WHERE digest = ?", (bytes(data)[:-1] + b"!",
                                                                  digest))  # fmt: skip
    try:
        with pytest.raises(Tampered, match="does not match its address"):
            fetch_from_peer(grantee, reader, holder["token"], holder["url"])
    finally:
        with sqlite3.connect(vault) as db:
            db.execute("UPDATE blobs SET data = ? WHERE digest = ?", (data, digest))


def test_a_shared_study_is_streamed_chunk_by_chunk_from_the_holders_node(holder, grantee,
                                                                         tmp_path):  # fmt: skip
    from healthnft.consent.custodian import gather_and_open, grants_for
    from healthnft.records.dicom import StudyWriter
    from healthnft.services.exchange import fetch_from_peer

    reader = grantee.identity(holder["research"])
    study = holder["study"]
    fetched = fetch_from_peer(grantee, reader, study, holder["url"])
    assert len(fetched.chunks.digests) == 3  # 2 MiB of pixels in 1 MiB chunks: none fetched yet
    grant = grants_for(grantee.ledger, reader.address, study, fetched.row.category)[0]
    threshold, members = 2, [a for a, _ in grantee.custodians().members]
    plain = gather_and_open(reader, study, grant, fetched.row.commitment, fetched.ciphertext,
                            grantee.custodian_services(), threshold, members)  # fmt: skip
    written: list[StudyWriter] = []

    def sink(manifest):
        written.append(StudyWriter(manifest, tmp_path))
        return written[0]

    grantee.wallet(fetched.chunks).stream_row(fetched.row, plain, sink)
    written[0].finish()
    [copy] = written[0].paths
    assert copy.read_bytes() == holder["study_file"].read_bytes()
    # Each chunk's ticket was used once; a chunk that is not the record's is not asked for.
    with pytest.raises(HealthNFTError, match="refused"):
        fetched.chunks.get(fetched.chunks.digests[0])
    assert fetched.chunks.get(bytes(32)) is None
