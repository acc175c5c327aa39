"""The network as separate parties (issue #13 acceptance): every institution its own home,
key and process; custodians their own services; a record minted at the hospital's node,
shared by the patient from the patient's own home, opened at the research institute's
node, which fetches the ciphertext from the hospital's node over HTTP and the key shares
from the custodians. No home reads another's files: each runs as its own CLI process
over its own folder, and the chain is a separate process (anvil).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from conftest import LAB_OBSERVATION, ServiceProcess, need_tool, run_cli
from custodians.test_custodian_service import Custodian
from healthnft.errors import Unavailable
from healthnft.ledger import nodes

PASS = {"HEALTHNFT_PASSPHRASE": "custodian-test-passphrase"}  # the custodians' too


def _cli(home: Path, *args: str, check: bool = True):
    at = args.index("--") if "--" in args else len(args)
    return run_cli(home, *args[:at], "--json", *args[at:], env=PASS, check=check, timeout=180)


def _json(home: Path, *args: str):
    return json.loads(_cli(home, *args).stdout)


class NodeService(ServiceProcess):
    """`healthnft serve` over one institution's home: its node for other nodes."""

    def __init__(self, home: Path) -> None:
        super().__init__(home, ["serve"], "/node/v1/challenge", PASS, clean=True, start_s=60.0)


@pytest.fixture(scope="module")
def consortium(tmp_path_factory):
    need_tool("anvil")
    root = tmp_path_factory.mktemp("across")
    admin_key = Account.create()
    (root / "admin.key").write_text(admin_key.key.hex())
    chain = nodes.start_anvil(root / "chain", prefund=[admin_key.address])
    custodians: list[Custodian] = []
    hospital_node = None
    try:
        admin = root / "admin"
        _json(admin, "init", "--rpc", chain.rpc_url, "--admin-key-file", str(root / "admin.key"))
        for n in range(3):
            custodian = Custodian(root / f"custodian{n}")
            made = _json(custodian.home, "custodian", "init", "--network",
                         str(admin / "config.json"))  # fmt: skip
            _json(admin, "participant", "add-custodian", "--address", made["address"],
                  "--enc-key", made["enc_key"], "--url", custodian.url)  # fmt: skip
            custodian.start()
            custodians.append(custodian)
        network = root / "network.json"
        run_cli(admin, "consortium", "network-file", "--out", str(network), env=PASS,
                check=True)  # fmt: skip

        def join(name: str, kind: str) -> tuple[Path, str]:
            home = root / name
            joined = _json(home, "join", str(network), "--kind", kind, "--name", name)
            _json(admin, "participant", "admit", str(home / "application.json"))
            return home, joined["address"]

        hospital, hospital_address = join("General", "hospital")
        hospital_node = NodeService(hospital)
        doc = json.loads(network.read_text())
        doc["nodes"] = {"General": {"kind": "hospital", "url": hospital_node.url,
                                    "address": hospital_address}}  # fmt: skip
        network.write_text(json.dumps(doc))
        research, research_address = join("Lab", "research")
        patient, patient_address = join("Pat", "patient")

        (root / "lab.json").write_text(json.dumps(LAB_OBSERVATION))
        minted = _json(hospital, "mint", "--issuer", "General", "--patient", patient_address,
                       str(root / "lab.json"))  # fmt: skip
        token = minted["token_ids"][0]
        _cli(patient, "share", "--owner", patient_address, "--to", research_address,
             "--purpose", "research", "--", str(token))  # fmt: skip
        hospital_node.start()
        yield {"root": root, "token": token, "research": research,
               "research_address": research_address, "custodians": custodians,
               "hospital": hospital, "patient": patient, "patient_address": patient_address,
               "chain": chain}  # fmt: skip
    finally:
        if hospital_node is not None:
            hospital_node.stop()
        for custodian in custodians:
            custodian.stop()
        chain.stop()


def _open(c, check: bool = True):
    return _cli(c["research"], "open", "--as", c["research_address"], "--", str(c["token"]),
                check=check)  # fmt: skip


def test_opened_at_the_research_node_from_the_hospital_node(consortium):
    c = consortium
    # Each party's key lives in its own home only.
    for home, other in ((c["research"], c["hospital"]), (c["hospital"], c["patient"])):
        mine = {p.name for p in (home / "keystore").iterdir()}
        assert not mine & {p.name for p in (other / "keystore").iterdir()}
    opened = json.loads(_open(c).stdout)
    assert opened["token_id"] == c["token"]
    assert opened["resource"]["valueQuantity"]["value"] == 5.4


def test_the_patient_lists_from_its_own_home_what_the_hospital_minted(consortium):
    """The patient's home holds no copy (the ciphertext stays at the hospital's node), yet
    its wallet lists the token the chain says it owns: never an empty wallet; and its
    access log says what kind of member read it."""
    c = consortium
    listed = _json(c["patient"], "wallet", "list", "--owner", c["patient_address"])
    assert [(r["token_id"], r["status"]) for r in listed] == [(c["token"], "at-issuer")]
    # The hospital's home holds the record: listed there as it is, with its metadata.
    at_hospital = _json(c["hospital"], "wallet", "list", "--owner", c["patient_address"])
    assert [(r["token_id"], r["category"]) for r in at_hospital] == [(c["token"], "laboratory")]
    # Its access log names the grantee's kind from the chain (its home never named it).
    _open(c)
    log = _json(c["patient"], "access-log", "--owner", c["patient_address"])
    assert log and {(r["grantee"], r["grantee_kind"]) for r in log} == {
        (c["research_address"], "research")}  # fmt: skip


def test_the_patients_own_web_wallet_lists_it_as_held_at_the_issuer(consortium):
    """The patient's own home served: its records page lists the token, said as it is
    (held at the issuer's node), not as a record that failed its integrity check."""
    from fastapi.testclient import TestClient

    from healthnft import keys
    from healthnft.api import create_app, siwe
    from healthnft.home import Home

    c = consortium
    secret = PASS["HEALTHNFT_PASSPHRASE"]
    me = keys.read_keystore(Home(c["patient"]).keystore_dir, c["patient_address"], secret)
    app = create_app(c["patient"], origin="http://testserver", passphrase=secret)
    with TestClient(app) as web:
        message = web.get("/api/auth/challenge",
                          params={"address": me.address}).json()["message"]  # fmt: skip
        signed = web.post("/api/auth/verify", json={
            "message": message, "signature": siwe.sign(message, bytes(me.account.key))})
        assert signed.status_code == 200, signed.text
        rows = web.get("/api/records").json()
    assert [(r["token_id"], r["status"]) for r in rows] == [(c["token"], "at-issuer")]
    assert "issued it" in rows[0]["summary"] and "integrity" not in rows[0]["summary"]


def test_a_record_fetched_from_the_issuers_node_is_verified_as_fetched(consortium):
    """What the research node's page shows beside the record: authentic (checked on
    arrival), not "unknown token" because its own catalogue never held it."""
    from healthnft.network import Network
    from healthnft.services import records, sharing

    c = consortium
    net = Network.open(c["research"])
    try:
        # Listed as shared with it (what the chain says), though this home never held it.
        listed = sharing.shared_with(net, c["research_address"])
        assert [(r["token_id"], r.get("held_at_issuer")) for r in listed] == [(c["token"], True)]
        rec = records.open_record(net, c["research_address"], c["token"],
                                  PASS["HEALTHNFT_PASSPHRASE"])  # fmt: skip
        assert str(rec.resource["valueQuantity"]["value"]) == "5.4"  # exact decimal
        check = records.verify_shared(net, c["token"])
        assert check.valid and "issuer's node" in check.reason, check
        assert not records.verify_record(net, c["token"], content=False).valid  # not held here
    finally:
        net.close()


def test_custodian_faults_across_nodes(consortium):
    """One of three custodians down: still opens. Two down: one clear error, nothing
    logged on chain. Back up: opens again."""
    c = consortium
    c["custodians"][0].stop()
    try:
        assert json.loads(_open(c).stdout)["token_id"] == c["token"]
        c["custodians"][1].stop()
        before = nodes.rpc_call(c["chain"].rpc_url, "eth_blockNumber")
        failed = _open(c, check=False)
        assert failed.returncode == Unavailable.exit_code, failed.stderr
        lines = failed.stderr.strip().splitlines()
        assert len(lines) == 1 and "custodians needed answered" in lines[0], failed.stderr
        assert nodes.rpc_call(c["chain"].rpc_url, "eth_blockNumber") == before
    finally:
        for custodian in c["custodians"][:2]:
            custodian.start()
    assert json.loads(_open(c).stdout)["token_id"] == c["token"]
