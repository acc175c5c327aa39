"""The audit export holds every block, transaction, receipt, log and storage slot."""

from __future__ import annotations

import json
import os
from itertools import pairwise
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils import keccak

from healthnft.ledger.client import Ledger
from healthnft.ledger.embedded import embedded_web3
from healthnft.ledger.export import export_chain

CONSECUTIVE_TRANSFER = (
    "0x" + keccak(text="ConsecutiveTransfer(uint256,uint256,address,address)").hex()
)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("chain")
    admin = Account.create()
    hospital = Account.create()
    patient = Account.create()
    w3 = embedded_web3(home / "chain.db", {admin.address: 10**27})
    ledger = Ledger.deploy(w3, admin)
    hospital_key = os.urandom(32)
    ledger.register(admin, hospital.address, "hospital", hospital_key)
    ledger.set_issuer(admin, hospital.address)
    ledger.register(admin, patient.address, "patient", os.urandom(32))
    ledger.fund(admin, hospital.address, 10**20)
    # Starts with a zero byte: storage holds it as a stripped integer.
    root = b"\0" + b"healthnft-export-root" + os.urandom(10)
    mint = ledger.sign(hospital, ledger.mint_call(patient.address, 5, ledger.next_token_id(), root))
    ledger.broadcast(mint)
    out = home / "audit" / "export.json"
    summary = export_chain(w3, out)
    return {
        "w3": w3,
        "ledger": ledger,
        "out": out,
        "summary": summary,
        "doc": json.loads(out.read_text(encoding="utf-8")),
        "root": root,
        "hospital_key": hospital_key,
        "mint_hash": "0x" + mint.tx_hash.hex(),
    }


def _contract(doc: dict, address: str) -> dict:
    (found,) = [c for c in doc["contracts"] if c["address"] == address]
    return found


def test_every_block_is_exported(chain: dict) -> None:
    doc, w3 = chain["doc"], chain["w3"]
    assert len(doc["blocks"]) == w3.eth.block_number + 1
    assert [b["number"] for b in doc["blocks"]] == list(range(w3.eth.block_number + 1))
    for parent, child in pairwise(doc["blocks"]):
        assert child["parentHash"] == parent["hash"]
        for field in ("timestamp", "stateRoot", "gasUsed"):
            assert field in child
    assert doc["head"]["hash"] == "0x" + bytes(w3.eth.get_block("latest")["hash"]).hex()


def test_every_transaction_with_input_and_receipt(chain: dict) -> None:
    doc, w3 = chain["doc"], chain["w3"]
    expected = {
        "0x" + bytes(h).hex()
        for n in range(w3.eth.block_number + 1)
        for h in w3.eth.get_block(n)["transactions"]
    }
    txs = {tx["hash"]: tx for tx in doc["transactions"]}
    assert set(txs) == expected
    assert {r["transactionHash"] for r in doc["receipts"]} == expected
    # deploy x3, register x2, set_issuer, fund, mint
    assert len(txs) == 8  # 3 deployments (registry, token, consent) + 5 set-up and mint txs
    for tx in txs.values():
        assert tx["input"].startswith("0x")
    assert all(r["status"] == 1 for r in doc["receipts"])
    created = {r["contractAddress"] for r in doc["receipts"] if r["contractAddress"]}
    ledger = chain["ledger"]
    assert created == {ledger.registry.address, ledger.token.address, ledger.consent.address}


def test_mint_root_in_input_and_token_storage(chain: dict) -> None:
    doc, root = chain["doc"], chain["root"]
    mint = next(tx for tx in doc["transactions"] if tx["hash"] == chain["mint_hash"])
    assert root.hex() in mint["input"]
    token = _contract(doc, chain["ledger"].token.address)
    assert token["key_is_hashed"] is True
    assert token["code_size"] > 0 and len(token["code"]) == 2 + 2 * token["code_size"]
    assert "0x" + root.hex() in {entry["value"] for entry in token["storage"]}


def test_registered_key_in_registry_storage(chain: dict) -> None:
    registry = _contract(chain["doc"], chain["ledger"].registry.address)
    values = {entry["value"] for entry in registry["storage"]}
    assert "0x" + chain["hospital_key"].hex() in values


def test_logs_include_consecutive_transfer(chain: dict) -> None:
    logs = chain["doc"]["logs"]
    assert any(log["topics"][0] == CONSECUTIVE_TRANSFER for log in logs)
    token = chain["ledger"].token.address
    assert all({"address", "topics", "data"} <= set(log) for log in logs)
    assert any(log["address"] == token for log in logs)


def test_summary_matches_file(chain: dict) -> None:
    doc, summary = chain["doc"], chain["summary"]
    assert summary == {
        "blocks": len(doc["blocks"]),
        "transactions": len(doc["transactions"]),
        "logs": len(doc["logs"]),
        "contracts": len(doc["contracts"]),
        "storage_slots": sum(len(c["storage"]) for c in doc["contracts"]),
    }
    assert summary["contracts"] == 3  # registry, token, consent manager
    assert summary["storage_slots"] > 0
    # Plain storage variables get their slot back; next_token_id is slot 0 in the token.
    token = _contract(doc, chain["ledger"].token.address)
    (slot0,) = [e for e in token["storage"] if e["slot"] == 0]
    assert slot0["value"] == "0x" + (6).to_bytes(32, "big").hex()


def test_written_atomically(chain: dict) -> None:
    out: Path = chain["out"]
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def test_without_embedded_backend_storage_is_null(chain: dict, tmp_path: Path) -> None:
    class Plain:
        """A provider that is not eth-tester: same RPC, no backend to walk."""

        def __init__(self, inner: object) -> None:
            self._inner = inner

        def __getattr__(self, name: str) -> object:
            if name == "ethereum_tester":
                raise AttributeError(name)
            return getattr(self._inner, name)

    w3 = chain["w3"]
    real = w3.provider
    w3.provider = Plain(real)
    try:
        summary = export_chain(w3, tmp_path / "rpc.json")
    finally:
        w3.provider = real
    doc = json.loads((tmp_path / "rpc.json").read_text(encoding="utf-8"))
    assert summary["storage_slots"] is None
    assert summary["blocks"] == chain["summary"]["blocks"]
    assert summary["transactions"] == chain["summary"]["transactions"]
    assert doc["contracts"] and all(c["storage"] is None for c in doc["contracts"])
    assert "embedded" in doc["storage_note"]
