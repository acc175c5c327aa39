"""Drug verification across the consortium (issue 15): the manufacturer's node keeps the
salts and proofs and answers verification requests; a pharmacy's home (its own folder,
key and process, no book of that batch) finds the manufacturer from the chain, asks its
node over HTTP, and checks the answer against the chain itself. It verifies a pack
active, dispenses it into a patient's wallet (a MedicationDispense the pharmacy mints,
verified there), verifies it dispensed, undoes another dispense; an invented serial
reads unknown, a relabelled expiry mismatch; with the manufacturer's node down, one
clear error. Each home is used by its own CLI process; the chain is anvil; the
manufacturer's node is `healthnft serve`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from conftest import ServiceProcess, need_tool, one_error_line, run_cli
from healthnft.errors import Unavailable
from healthnft.ledger import nodes

PASS = {"HEALTHNFT_PASSPHRASE": "drugs-across-passphrase"}
GTIN = "09506000134352"
LOT = "L1"
EXPIRY = "301231"


def _cli(home: Path, *args: str, check: bool = True):
    at = args.index("--") if "--" in args else len(args)
    return run_cli(home, *args[:at], "--json", *args[at:], env=PASS, check=check, timeout=180)


def _json(home: Path, *args: str):
    return json.loads(_cli(home, *args).stdout)


def code(serial: str, expiry: str = EXPIRY, lot: str = LOT) -> str:
    return f"(01){GTIN}(17){expiry}(10){lot}(21){serial}"


class NodeService(ServiceProcess):
    """`healthnft serve` over the manufacturer's home: its node for other members."""

    def __init__(self, home: Path) -> None:
        super().__init__(home, ["serve"], "/node/v1/challenge", PASS, clean=True, start_s=60.0)


@pytest.fixture(scope="module")
def consortium(tmp_path_factory):
    need_tool("anvil")
    root = tmp_path_factory.mktemp("drugs-across")
    admin_key = Account.create()
    (root / "admin.key").write_text(admin_key.key.hex())
    chain = nodes.start_anvil(root / "chain", prefund=[admin_key.address])
    maker_node = None
    try:
        admin = root / "admin"
        _json(admin, "init", "--rpc", chain.rpc_url, "--admin-key-file", str(root / "admin.key"))
        network = root / "network.json"
        run_cli(admin, "consortium", "network-file", "--out", str(network), env=PASS,
                check=True)  # fmt: skip

        def join(name: str, kind: str) -> tuple[Path, str]:
            home = root / name
            joined = _json(home, "join", str(network), "--kind", kind, "--name", name)
            _json(admin, "participant", "admit", str(home / "application.json"))
            return home, joined["address"]

        acme, acme_address = join("Acme", "manufacturer")
        maker_node = NodeService(acme)
        doc = json.loads(network.read_text())
        doc["nodes"] = {"Acme": {"kind": "manufacturer", "url": maker_node.url,
                                 "address": acme_address}}  # fmt: skip
        network.write_text(json.dumps(doc))
        pharmacy, _ = join("Corner", "pharmacy")  # issuer by default (issue 15, point 5)
        patient, patient_address = join("Pat", "patient")

        (root / "serials.txt").write_text("S1\nS2\nS3\n")
        _json(acme, "drug", "commission", "--manufacturer", "Acme", "--gtin", GTIN, "--lot",
              LOT, "--expiry", EXPIRY, "--serials", str(root / "serials.txt"),
              "--product-name", "Amoxicillin 500 mg capsules")  # fmt: skip
        maker_node.start()
        yield {"pharmacy": pharmacy, "patient": patient, "patient_address": patient_address,
               "acme": acme, "acme_address": acme_address, "node": maker_node}  # fmt: skip
    finally:
        if maker_node is not None:
            maker_node.stop()
        chain.stop()


def _verify(home: Path, text: str) -> dict:
    proc = _cli(home, "drug", "verify", "--", text, check=False)
    assert proc.returncode in (0, 1), proc.stderr  # 0: active, 1: any other status
    return json.loads(proc.stdout)


def test_the_pharmacy_verifies_dispenses_and_mints_from_its_own_home(consortium):
    c = consortium
    pharmacy = c["pharmacy"]
    assert not (pharmacy / "products").exists()  # it holds no product credential
    first = _verify(pharmacy, code("S1"))
    assert first["status"] == "active", first
    # The product, from the credential the manufacturer's node served, checked on chain.
    assert first["product"] == {"name": "Amoxicillin 500 mg capsules",
                                "manufacturer": c["acme_address"]}  # fmt: skip

    done = _json(pharmacy, "drug", "dispense", "--by", "Corner", "--patient",
                 c["patient_address"], "--", code("S1"))  # fmt: skip
    assert done["outcome"] == "dispensed" and done["token_id"], done
    after = _verify(pharmacy, code("S1"))
    assert after["status"] == "dispensed"
    # The manufacturer's own home reads the same status from the chain.
    assert _verify(c["acme"], code("S1"))["status"] == "dispensed"
    # The MedicationDispense the pharmacy minted verifies where it is held.
    checked = _json(pharmacy, "verify", "--", str(done["token_id"]))
    assert checked["valid"], checked
    # A second dispense is sent on purpose: the chain keeps the alert.
    again = _cli(pharmacy, "drug", "dispense", "--by", "Corner", "--", code("S1"), check=False)
    assert json.loads(again.stdout)["outcome"] == "alert"
    # Undo from the pharmacy's home too (the same dispenser, within 10 days).
    _json(pharmacy, "drug", "dispense", "--by", "Corner", "--", code("S3"))
    assert _verify(pharmacy, code("S3"))["status"] == "dispensed"
    _json(pharmacy, "drug", "undo", "--by", "Corner", "--", code("S3"))
    assert _verify(pharmacy, code("S3"))["status"] == "active"


def test_an_invented_serial_and_a_relabelled_pack_are_caught(consortium):
    c = consortium
    invented = _verify(c["pharmacy"], code("NOT-MADE"))
    assert invented["status"] == "unknown" and "product" not in invented
    relabelled = _verify(c["pharmacy"], code("S2", expiry="311231"))  # genuine serial
    assert relabelled["status"] == "mismatch", relabelled
    assert _verify(c["pharmacy"], code("S2", lot="L9"))["status"] == "unknown"  # no such lot
    refused = _cli(c["pharmacy"], "drug", "dispense", "--by", "Corner", "--",
                   code("NOT-MADE"), check=False)  # fmt: skip
    assert refused.returncode != 0 and "unknown" in refused.stderr
    assert _verify(c["pharmacy"], code("S2"))["status"] == "active"  # nothing changed


def test_the_lookup_tells_one_pack_and_nothing_of_its_batch(consortium):
    import requests

    url = consortium["node"].url + "/node/v1/drugs/lookup"
    ask = {"gtin": GTIN, "lot": LOT, "expiry": EXPIRY, "serial": "S3"}
    answer = requests.post(url, json=ask, timeout=10).json()
    assert set(answer) == {"commissioned", "gtin", "lot", "expiry", "serial", "salt", "index",
                           "proof", "manufacturer", "product"}  # fmt: skip
    # This pack only: no other serial, no count.
    assert (answer["serial"], answer["lot"], answer["expiry"]) == ("S3", LOT, EXPIRY)
    assert len(bytes.fromhex(answer["salt"])) == 16
    assert answer["proof"] and all(len(bytes.fromhex(n)) == 32 for n in answer["proof"])
    none = requests.post(url, json={**ask, "serial": "S404"}, timeout=10).json()
    assert none == {"commissioned": False}
    bad = requests.post(url, json={**ask, "gtin": "09506000134353"}, timeout=10)
    assert bad.status_code == 400 and "check digit" in bad.json()["detail"]


def test_with_the_manufacturers_node_down_one_clear_error(consortium):
    c = consortium
    c["node"].stop()
    try:
        failed = _cli(c["pharmacy"], "drug", "verify", "--", code("S2"), check=False)
        line = one_error_line(failed, Unavailable)
        assert "manufacturer's node" in line and "does not answer" in line, line
        refused = _cli(c["pharmacy"], "drug", "dispense", "--by", "Corner", "--", code("S2"),
                       check=False)  # fmt: skip
        one_error_line(refused, Unavailable)
    finally:
        c["node"].start()
    assert _verify(c["pharmacy"], code("S2"))["status"] == "active"  # nothing was sent
