"""tools/besu_genesis.py: a QBFT genesis Besu accepts, checked by decoding it back.

Besu itself cannot be installed here (docs/besu.md), so the encoding is checked
against the genesis example of Besu's own QBFT documentation (same validators, same
bytes) and by decoding our output with an independent RLP reading.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import rlp
from eth_utils import to_checksum_address
from web3 import Web3
from web3.middleware import ExtraDataToPOAMiddleware
from web3.providers.base import BaseProvider

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "besu_genesis.py"
EXAMPLE = REPO / "deploy" / "besu" / "genesis.example.json"


def _load():
    spec = importlib.util.spec_from_file_location("besu_genesis", TOOL)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["besu_genesis"] = module
    spec.loader.exec_module(module)
    return module


bg = _load()

# Besu's documentation, "Configure QBFT consensus", block header validator selection:
# these four validators and the extraData it shows for them.
DOC_VALIDATORS = [
    "0x64a702e6263b7297a96638cac6ae65e6541f4169",
    "0x3923390ad55e90c237593b3b0e401f3b08a03185",
    "0xaefdb9a738c9f433e5b6b212a6d62f6370c2f692",
    "0xc7eeb9a4e00ce683cf93039b212648e01c6c6b78",
]
DOC_EXTRA_DATA = (
    "0xf87aa00000000000000000000000000000000000000000000000000000000000000000f854"
    "9464a702e6263b7297a96638cac6ae65e6541f4169943923390ad55e90c237593b3b0e401f3b08a03185"
    "94aefdb9a738c9f433e5b6b212a6d62f6370c2f69294c7eeb9a4e00ce683cf93039b212648e01c6c6b78"
    "c080c0"
)
VALIDATORS = [f"0x{i:040x}" for i in (0xA1, 0xA2, 0xA3, 0xA4)]
ADMIN = "0x" + "ad" * 20


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_extra_data_matches_besu_documentation():
    assert bg.qbft_extra_data(DOC_VALIDATORS) == DOC_EXTRA_DATA
    decoded = bg.decode_qbft_extra_data(DOC_EXTRA_DATA)
    assert decoded == [to_checksum_address(v) for v in DOC_VALIDATORS]


def test_cli_writes_genesis_that_decodes_back(tmp_path):
    out = tmp_path / "net" / "genesis.json"
    args = ["--chain-id", "31337", "--alloc", f"{ADMIN}=1000000000000000000000", "--out", str(out)]
    for v in VALIDATORS:
        args += ["--validator", v]
    done = _run(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "tolerates 1 faulty" in done.stdout and "paris" in done.stdout

    genesis = json.loads(out.read_text())
    config = genesis["config"]
    assert config["chainId"] == 31337
    assert config["qbft"] == {
        "blockperiodseconds": 2, "epochlength": 30000, "requesttimeoutseconds": 4,
    }  # fmt: skip
    assert config["zeroBaseFee"] is True
    # London and everything before it at block 0; nothing after London (one bytecode,
    # compiled for paris, for the geth Clique test network and for Besu).
    forks = {k for k in config if k.endswith("Block") or k.endswith("Time")}
    assert forks == set(bg.FORKS)
    assert all(config[k] == 0 for k in forks)
    assert not any(k.startswith(("shanghai", "cancun", "prague")) for k in config)
    assert "clique" not in config and "ibft2" not in config
    assert genesis["mixHash"] == bg.BFT_MIX_HASH
    assert genesis["difficulty"] == "0x1"
    assert genesis["alloc"] == {"ad" * 20: {"balance": hex(10**21)}}

    # The extraData, decoded by plain RLP (not by the tool's own decoder).
    vanity, validators, vote, round_, seals = rlp.decode(bytes.fromhex(genesis["extraData"][2:]))
    assert vanity == bytes(32)
    assert ["0x" + v.hex() for v in validators] == VALIDATORS  # order kept: it is the rotation
    assert vote == [] and round_ == b"" and seals == []


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (["--validator", "0x1234"], "not 0x followed by 40 hex digits"),
        (["--validator", "64a702e6263b7297a96638cac6ae65e6541f4169"], "not 0x followed by 40"),
        (["--validator", "0x" + "g" * 40], "not 0x followed by 40 hex digits"),
        # the checksummed form of DOC_VALIDATORS[0] with one letter's case flipped
        (["--validator", "0x64a702E6263b7297a96638cAc6aE65e6541F4169"], "EIP-55 checksum"),
        (["--validator", "0x" + "0" * 40], "zero address"),
        (
            [
                "--validator",
                VALIDATORS[0],
                "--validator",
                VALIDATORS[0].upper().replace("0X", "0x"),
            ],
            "listed twice",
        ),
        ([], "at least one --validator"),
        (["--validator", VALIDATORS[0], "--alloc", "0xabc=5"], "not 0x followed by 40"),
        (["--validator", VALIDATORS[0], "--alloc", f"{ADMIN}=-1"], "cannot be negative"),
        (["--validator", VALIDATORS[0], "--alloc", f"{ADMIN}=lots"], "not a whole number"),
        (["--validator", VALIDATORS[0], "--alloc", ADMIN], "not ADDRESS=WEI"),
        (["--validator", VALIDATORS[0], "--request-timeout", "2"], "requesttimeoutseconds"),
    ],
)
def test_bad_input_is_one_clear_error_and_nothing_written(tmp_path, bad, message):
    out = tmp_path / "genesis.json"
    done = _run("--chain-id", "7", *bad, "--out", str(out), cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr and "nothing written" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1  # one line, no traceback
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left either


def test_bad_chain_id_refused():
    with pytest.raises(bg.GenesisError, match="chain id"):
        bg.build_genesis(0, VALIDATORS)


def test_decoder_refuses_what_is_not_a_genesis_extra_data():
    with pytest.raises(bg.GenesisError, match="not RLP"):
        bg.decode_qbft_extra_data("0xzz")
    with pytest.raises(bg.GenesisError, match="5-item"):
        bg.decode_qbft_extra_data("0x" + rlp.encode([bytes(32), []]).hex())
    with_seal = rlp.encode([bytes(32), [bytes(20)], [], b"", [b"\x01" * 65]])
    with pytest.raises(bg.GenesisError, match="genesis"):
        bg.decode_qbft_extra_data("0x" + with_seal.hex())


def test_committed_example_is_what_the_tool_writes():
    example = json.loads(EXAMPLE.read_text())
    validators = bg.decode_qbft_extra_data(example["extraData"])
    assert len(validators) == 4
    alloc = {"0x" + a: int(v["balance"], 16) for a, v in example["alloc"].items()}
    again = bg.build_genesis(example["config"]["chainId"], validators, alloc)
    assert again == example


class _QbftNode(BaseProvider):
    """A JSON-RPC node that answers eth_getBlockByNumber with a QBFT-shaped block."""

    def make_request(self, method, params):
        assert method == "eth_getBlockByNumber"
        block = {
            "number": "0x1", "hash": "0x" + "11" * 32, "parentHash": "0x" + "22" * 32,
            "extraData": DOC_EXTRA_DATA, "gasLimit": "0x1c9c380", "gasUsed": "0x0",
            "timestamp": "0x1", "transactions": [], "baseFeePerGas": "0x0",
            "miner": "0x" + "00" * 20, "difficulty": "0x1", "mixHash": bg.BFT_MIX_HASH,
        }  # fmt: skip
        return {"jsonrpc": "2.0", "id": 1, "result": block}


def test_web3_needs_the_poa_middleware_on_qbft_too():
    """A QBFT block's extraData is longer than 32 bytes: web3 refuses it without the
    proof-of-authority extra-data middleware, exactly as on geth Clique."""
    w3 = Web3(_QbftNode())
    with pytest.raises(Exception, match="should be 32"):
        w3.eth.get_block(1)
    w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    block = w3.eth.get_block(1)
    assert bytes(block["proofOfAuthorityData"]).hex() == DOC_EXTRA_DATA[2:]
