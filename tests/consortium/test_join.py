"""Joining a running network (issue #13 point 5), on anvil: a new home with its own key,
checked against the node before a file is written, admitted on chain by the admin.

The joined hospital mints into a patient the admin registered (a joined hospital cannot
register its patients without the admin yet); the patient's grant to the joined
research institute is read from the chain in the research home. Opening it there
needs the ciphertext and the custodians across homes (points 6 and 7): not here yet.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from conftest import LAB_OBSERVATION, need_tool, one_error_line, run_cli, run_cli_json
from healthnft.errors import AccessDenied, ChainMissing, Conflict, NotFound
from healthnft.ledger import nodes

ADMIN_PASS = {"HEALTHNFT_PASSPHRASE": "admin-home-passphrase"}
HOSPITAL_PASS = {"HEALTHNFT_PASSPHRASE": "hospital-home-passphrase"}
RESEARCH_PASS = {"HEALTHNFT_PASSPHRASE": "research-home-passphrase"}


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    """anvil, the admin's home on it, and the network file a joining institution gets."""
    need_tool("anvil")
    where = tmp_path_factory.mktemp("join")
    admin = Account.create()
    key_file = where / "admin.key"
    key_file.write_text(admin.key.hex())
    anvil = nodes.start_anvil(where / "anvil", prefund=[admin.address])
    try:
        home = where / "admin"
        _cli(home, ADMIN_PASS, "init", "--rpc", anvil.rpc_url, "--admin-key-file", str(key_file))
        net_file = where / "network.json"
        _cli(home, ADMIN_PASS, "consortium", "network-file", "--out", str(net_file))
        yield home, net_file, anvil
    finally:
        anvil.stop()


def _cli(home: Path, env: dict, *args: str, check: bool = True):
    return run_cli(home, *args, env=env, check=check, timeout=180)


def _json(home: Path, env: dict, *args: str):
    return run_cli_json(home, *args, env=env)


def test_joined_homes_are_admitted_then_mint_and_receive_grants(network, tmp_path):
    admin_home, net_file, anvil = network
    doc = json.loads(net_file.read_text())
    assert doc["chain_id"] == 31337 and doc["rpc_urls"] == [anvil.rpc_url]

    hospital_home, research_home = tmp_path / "hospital", tmp_path / "research"
    joined = _json(hospital_home, HOSPITAL_PASS, "join", str(net_file), "--kind", "hospital",
                   "--name", "General Hospital")  # fmt: skip
    research = _json(research_home, RESEARCH_PASS, "join", str(net_file), "--kind", "research",
                     "--name", "Research Institute")  # fmt: skip
    application = json.loads((hospital_home / "application.json").read_text())
    assert application["address"] == joined["address"] and application["kind"] == "hospital"
    assert "General Hospital" not in json.dumps(application)  # the chain never gets names
    config = json.loads((hospital_home / "config.json").read_text())
    assert config["backend"] == "jsonrpc" and config["registry"] == doc["contracts"]["registry"]
    # The drug registry travels in the network file like the other contracts (issue 15).
    assert config["drugs"] == doc["contracts"]["drugs"]
    assert [p.stem for p in (hospital_home / "keystore").iterdir()] == [joined["address"]]

    # Not admitted yet: the chain does not know it.
    line = one_error_line(_cli(hospital_home, HOSPITAL_PASS, "mint", "--issuer", "General Hospital",
                          "--patient", joined["address"], str(net_file), check=False),
                     NotFound)  # fmt: skip
    assert "not a registered participant" in line or "not allowed" in line, line

    admitted = _json(admin_home, ADMIN_PASS, "participant", "admit",
                     str(hospital_home / "application.json"))  # fmt: skip
    assert admitted == {"address": joined["address"], "kind": "hospital", "issuer": True,
                        "custodian": False}  # fmt: skip
    again = _json(admin_home, ADMIN_PASS, "participant", "admit",
                  str(research_home / "application.json"))  # fmt: skip
    assert (again["kind"], again["issuer"]) == ("research", False)
    # Admitting again is a retry: nothing new happens, nothing fails.
    assert _json(admin_home, ADMIN_PASS, "participant", "admit",
                 str(research_home / "application.json")) == again  # fmt: skip

    # Patients: registered (with their key) in the admin's home for now.
    patient = _json(admin_home, ADMIN_PASS, "participant", "add", "--kind", "patient",
                    "--name", "P One")  # fmt: skip
    source = tmp_path / "lab.json"
    source.write_text(json.dumps(LAB_OBSERVATION))
    minted = _json(hospital_home, HOSPITAL_PASS, "mint", "--issuer", "General Hospital",
                   "--patient", patient["address"], str(source))  # fmt: skip
    assert minted["records_minted"] == 1
    token = minted["token_ids"][0]
    listed = _json(hospital_home, HOSPITAL_PASS, "wallet", "list", "--owner", patient["address"])
    assert [r["token_id"] for r in listed] == [token]  # the chain says the patient owns it

    grant = _json(admin_home, ADMIN_PASS, "share", "--owner", patient["address"], "--to",
                  research["address"], "--purpose", "research", "--", str(token))  # fmt: skip
    seen = _json(research_home, RESEARCH_PASS, "grants", "--owner", patient["address"])
    assert [(g["grant_id"], g["grantee"], g["token_ids"], g["state"]) for g in seen] == [
        (grant["grant_id"], research["address"], [token], "active")]  # fmt: skip

    # A joined home has no admin key: one clear line, nothing written.
    line = one_error_line(_cli(hospital_home, HOSPITAL_PASS, "participant", "add", "--kind",
                          "patient", "--name", "P Two", check=False), AccessDenied)  # fmt: skip
    assert "this home has no admin key" in line and "admin/governance" in line, line
    assert len(list((hospital_home / "keystore").iterdir())) == 1
    line = one_error_line(_cli(hospital_home, HOSPITAL_PASS, "participant", "admit",
                          str(research_home / "application.json"), check=False),
                     AccessDenied)  # fmt: skip
    assert "this home has no admin key" in line, line


def test_join_refuses_another_chain_and_contracts_without_code(network, tmp_path):
    _, net_file, _ = network
    doc = json.loads(net_file.read_text())

    other = tmp_path / "other-chain.json"
    other.write_text(json.dumps({**doc, "chain_id": 4242}))
    home = tmp_path / "h1"
    line = one_error_line(_cli(home, HOSPITAL_PASS, "join", str(other), "--kind", "hospital",
                          "--name", "H", check=False), Conflict)  # fmt: skip
    assert "chain id 31337" in line and "4242" in line, line
    assert not (home / "config.json").exists() and not (home / "keystore").exists()

    nowhere = {k: Account.create().address for k in ("registry", "token", "consent")}
    empty = tmp_path / "no-code.json"
    empty.write_text(json.dumps({**doc, "contracts": {**doc["contracts"], **nowhere}}))
    line = one_error_line(_cli(home, HOSPITAL_PASS, "join", str(empty), "--kind", "hospital",
                          "--name", "H", check=False), ChainMissing)  # fmt: skip
    assert "no code" in line, line
    assert not (home / "config.json").exists() and not (home / "keystore").exists()

    older = tmp_path / "older.json"
    older.write_text(json.dumps({**doc, "contracts": {**doc["contracts"],
                                                      "fingerprint": "0" * 16}}))  # fmt: skip
    line = one_error_line(_cli(home, HOSPITAL_PASS, "join", str(older), "--kind", "hospital",
                          "--name", "H", check=False), Conflict)  # fmt: skip
    assert "another version" in line, line
    assert not (home / "config.json").exists()


def test_admit_refuses_an_application_not_signed_by_its_address(network, tmp_path):
    admin_home, net_file, _ = network
    home = tmp_path / "pharma"
    _cli(home, HOSPITAL_PASS, "join", str(net_file), "--kind", "pharma", "--name", "Pharma")
    application = json.loads((home / "application.json").read_text())
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps({**application, "kind": "hospital"}))  # asks for more rights
    line = one_error_line(_cli(admin_home, ADMIN_PASS, "participant", "admit", str(forged),
                          check=False), AccessDenied)  # fmt: skip
    assert "not signed by the address" in line, line
