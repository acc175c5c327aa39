"""Custodians as services of their own (issue #13 point 6, and its faults in point 8).

On anvil: three `healthnft custodian serve` processes, each in its own home with its own
key, and one hospital home (admin, hospital, patient, research institute). The hospital
mints and pushes each custodian its sealed share; the research institute opens a record
shared with it through the custodians over HTTP. One custodian down: still opens (2 of
3). Two down: one clear error and nothing logged on chain. Back up: opens again, and a
share delivery that missed a custodian while it was down is sent when asked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from eth_account import Account

from conftest import LAB_OBSERVATION, ServiceProcess, need_tool, run_cli
from healthnft import keys
from healthnft.consent.delivery import sign_delivery
from healthnft.errors import Unavailable
from healthnft.ledger import nodes

PASS = {"HEALTHNFT_PASSPHRASE": "custodian-test-passphrase"}


def _cli(home: Path, *args: str, check: bool = True):
    return run_cli(home, *args, env=PASS, check=check, timeout=120)


def _json(home: Path, *args: str):
    at = args.index("--") if "--" in args else len(args)
    return json.loads(_cli(home, *args[:at], "--json", *args[at:]).stdout)


class Custodian(ServiceProcess):
    """One `healthnft custodian serve` process over its own home (stopped: killed)."""

    def __init__(self, home: Path) -> None:
        super().__init__(home, ["custodian", "serve"], "/challenge", PASS)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    need_tool("anvil")
    root = tmp_path_factory.mktemp("custodians")
    admin = Account.create()
    (root / "admin.key").write_text(admin.key.hex())
    anvil = nodes.start_anvil(root / "anvil", prefund=[admin.address])
    custodians: list[Custodian] = []
    try:
        home = root / "hospital"
        _json(home, "init", "--rpc", anvil.rpc_url, "--admin-key-file", str(root / "admin.key"))
        people = {kind: _json(home, "participant", "add", "--kind", kind, "--name", kind)
                  for kind in ("hospital", "patient", "research")}  # fmt: skip
        for n in range(3):
            custodian = Custodian(root / f"custodian{n}")
            made = _json(custodian.home, "custodian", "init", "--network",
                         str(home / "config.json"))  # fmt: skip
            assert not list((home / "keystore").glob(f"{made['address']}*"))  # not the issuer's
            _json(home, "participant", "add-custodian", "--address", made["address"],
                  "--enc-key", made["enc_key"], "--url", custodian.url)  # fmt: skip
            custodian.start()
            custodians.append(custodian)
        yield {"home": home, "anvil": anvil, "custodians": custodians, "root": root, **people}
    finally:
        for custodian in custodians:
            custodian.stop()
        anvil.stop()


def _mint_and_share(world, value: float) -> tuple[int, dict]:
    source = world["root"] / f"lab-{value}.json"
    record = json.loads(json.dumps(LAB_OBSERVATION))
    record["valueQuantity"]["value"] = value
    source.write_text(json.dumps(record))
    home, patient = world["home"], world["patient"]["address"]
    minted = _json(home, "mint", "--issuer", "hospital", "--patient", patient, str(source))
    token = minted["token_ids"][0]
    _cli(home, "share", "--owner", patient, "--to", world["research"]["address"],
         "--purpose", "research", "--", str(token))  # fmt: skip
    return token, minted


def _open(world, token: int, check: bool = True):
    return _cli(world["home"], "open", "--as", world["research"]["address"], "--json", "--",
                str(token), check=check)  # fmt: skip


def _blocks(world) -> int:
    return int(nodes.rpc_call(world["anvil"].rpc_url, "eth_blockNumber"), 16)


def test_open_through_custodian_services_and_their_faults(world):
    one, two, three = world["custodians"]
    token, minted = _mint_and_share(world, 5.4)
    assert minted["custody_pending"] == []
    opened = json.loads(_open(world, token).stdout)
    assert opened["resource"]["valueQuantity"]["value"] == 5.4

    one.stop()  # 2 of 3 left: still opens
    assert json.loads(_open(world, token).stdout)["resource"] == opened["resource"]

    two.stop()  # 1 of 3: one clear error, nothing released nor logged
    before = _blocks(world)
    failed = _open(world, token, check=False)
    assert failed.returncode == Unavailable.exit_code, failed.stderr
    line = failed.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "only 1 of the 2 custodians needed answered" in line and one.url in line
    assert _blocks(world) == before

    # A record minted while two custodians are down: its shares wait for them.
    late, minted = _mint_and_share(world, 6.1)
    assert len(minted["custody_pending"]) == 2
    one.start()
    two.start()
    assert json.loads(_open(world, token).stdout)["resource"] == opened["resource"]
    assert _open(world, late, check=False).returncode != 0  # one + two lack its shares yet
    delivered = _json(world["home"], "custodian", "deliver")
    assert delivered == {"delivered": 2, "pending": []}
    assert json.loads(_open(world, late).stdout)["resource"]["valueQuantity"]["value"] == 6.1
    assert three.proc is not None and three.proc.poll() is None


def test_a_forged_or_malformed_delivery_is_refused(world):
    custodian = world["custodians"][2]
    address = requests.get(custodian.url + "/challenge", timeout=5).json()["custodian"]
    stranger = keys.identity_from_secret(keys.new_secret())  # not an issuer
    forged = sign_delivery(stranger, address, b"\x01" * 16, b"\x02" * 80, [
        {"token_id": 1, "commitment": "00" * 32, "proof": "", "category": "laboratory",
         "sealed_share": "00" * 61}])  # fmt: skip
    resp = requests.post(custodian.url + "/shares", json=forged, timeout=10)
    assert resp.status_code == 403, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["code"] == "access_denied" and "not an issuer" in resp.json()["detail"]

    forged["issuer"] = world["hospital"]["address"]  # claims the hospital: signature fails
    resp = requests.post(custodian.url + "/shares", json=forged, timeout=10)
    assert (resp.status_code, resp.json()["code"]) == (401, "credential_rejected")

    resp = requests.post(custodian.url + "/shares", json={"shares": "x"}, timeout=10)
    assert (resp.status_code, resp.json()["code"]) == (400, "invalid_input")
    resp = requests.post(custodian.url + "/release", json={"token_id": 1}, timeout=10)
    assert (resp.status_code, resp.json()["code"]) == (400, "invalid_input")


def test_a_custodian_added_again_costs_no_transaction(world):
    """`consortium up` re-adds a custodian it restarts: registered, funded and allowed
    already, nothing is sent again, and the split order and URLs are kept."""
    from healthnft.network import Network

    net = Network.open(world["home"])
    try:
        order, urls = list(net.config["custodians"]), dict(net.config["custodian_urls"])
        first = order[0]
        _, _, enc_key = net.ledger.participant(first)
        before = _blocks(world)
        net.add_remote_custodian(first, enc_key, urls[first],
                                 passphrase=PASS["HEALTHNFT_PASSPHRASE"])  # fmt: skip
        assert _blocks(world) == before  # anvil mines one block per transaction
        assert net.config["custodians"] == order and net.config["custodian_urls"] == urls
    finally:
        net.close()
