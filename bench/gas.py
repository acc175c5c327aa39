"""Gas benchmark: batch minting against snekmate's one-token-per-transaction ERC-721.

Runs an embedded chain in a temporary directory, deploys the network's
contracts and a baseline (snekmate's stock ERC-721, see
``bench/contracts/BaselineERC721.vy``), and reads every figure from a real
transaction receipt's ``gasUsed`` on that one chain:

* ``gas_per_record[n]``: a registered hospital mints a batch of ``n`` records
  (under a real Merkle root) into a registered patient, measured as the
  patient's second or later batch, i.e. after a warm-up mint; the warm-up is
  reported as ``first_batch_gas`` so nothing is hidden;
* ``baseline_gas_per_token``: mean ``gasUsed`` of ``safe_mint`` with a
  72-character URI into the same patient, after the first mint (reported as
  ``baseline_first_mint_gas``);
* ``ratio_at_1000``: baseline gas per token over gas per record at 1000.

Prints one JSON object on stdout (progress, if any, goes to stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from healthnft.ledger.client import Ledger
from healthnft.ledger.compiler import compile_contract
from healthnft.ledger.embedded import embedded_web3
from healthnft.ledger.merkle import build, leaf_hash

BENCH_CONTRACTS = Path(__file__).resolve().parent / "contracts"
SIZES = (1, 10, 100, 1000)
URI_LENGTH = 72
# Explicit gas limits for the raw transactions (none comes near them).
MINT_GAS = 1_000_000
BASELINE_MINT_GAS = 1_000_000

TARGET_GAS_PER_RECORD_1000 = 150
TARGET_RATIO_AT_1000 = 1000


def _mint_batch(ledger: Ledger, issuer: LocalAccount, patient: str, count: int) -> int:
    """Mint ``count`` records into ``patient``; return the receipt's gasUsed."""
    start = ledger.next_token_id()
    leaves = [leaf_hash(start + i, os.urandom(32)) for i in range(count)]
    root, _proofs = build(leaves)
    call = ledger.mint_call(patient, count, start, root)
    receipt = ledger.broadcast(ledger.sign(issuer, call, gas=MINT_GAS))
    if ledger.next_token_id() != start + count:
        raise RuntimeError(f"batch of {count} did not advance the token range")
    return int(receipt["gasUsed"])


def _random_uri() -> str:
    """A 72-character URI shaped like an IPFS link (the baseline stores it per token)."""
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    prefix = "ipfs://"
    body = "".join(secrets.choice(alphabet) for _ in range(URI_LENGTH - len(prefix)))
    return prefix + body


def run(baseline_mints: int = 20) -> dict:
    started = time.perf_counter()
    admin = Account.create()
    hospital = Account.create()
    patient = Account.create()

    with tempfile.TemporaryDirectory(prefix="healthnft-gas-") as tmp:
        w3 = embedded_web3(Path(tmp) / "chain.sqlite", {admin.address: 10**27})
        ledger = Ledger.deploy(w3, admin)
        ledger.register(admin, hospital.address, "hospital", os.urandom(32))
        ledger.register(admin, patient.address, "patient", os.urandom(32))
        ledger.set_issuer(admin, hospital.address)
        ledger.fund(admin, hospital.address, 10**24)

        # 1. Batch mints: one warm-up (the patient's and the contract's first),
        #    then every size as a later batch.
        first_batch_gas = _mint_batch(ledger, hospital, patient.address, 1)
        batch_gas = {n: _mint_batch(ledger, hospital, patient.address, n) for n in SIZES}

        # 2. Baseline: snekmate's ERC-721, one token per transaction, same patient.
        base = compile_contract("BaselineERC721", source_dir=BENCH_CONTRACTS)
        base_address = ledger.deploy_contract(
            admin,
            base.abi,
            base.bytecode,
            ["Baseline health record", "BASE", "", "Baseline health record", "1"],
        )
        baseline = w3.eth.contract(address=base_address, abi=base.abi)
        mint_gas: list[int] = []
        for _ in range(baseline_mints):
            call = baseline.functions.safe_mint(patient.address, _random_uri())
            receipt = ledger.broadcast(ledger.sign(admin, call, gas=BASELINE_MINT_GAS))
            mint_gas.append(int(receipt["gasUsed"]))
        if baseline.functions.balanceOf(patient.address).call() != baseline_mints:
            raise RuntimeError("baseline mints did not all land")
        if ledger.balance_of(patient.address) != 1 + sum(SIZES):
            raise RuntimeError("batch mints did not all land")

    gas_per_record = {str(n): round(g / n, 2) for n, g in batch_gas.items()}
    baseline_per_token = statistics.fmean(mint_gas[1:])
    ratio = baseline_per_token / (batch_gas[1000] / 1000)
    return {
        "gas_per_record": gas_per_record,
        "baseline_gas_per_token": round(baseline_per_token, 1),
        "ratio_at_1000": round(ratio, 1),
        "batch_gas": {str(n): g for n, g in batch_gas.items()},
        "first_batch_gas": {"records": 1, "gas": first_batch_gas},
        "baseline_first_mint_gas": mint_gas[0],
        "baseline_mint_gas_range": [min(mint_gas[1:]), max(mint_gas[1:])],
        "baseline_mints": baseline_mints,
        "baseline_uri_chars": URI_LENGTH,
        "targets": {
            f"gas_per_record_1000_le_{TARGET_GAS_PER_RECORD_1000}": (
                batch_gas[1000] / 1000 <= TARGET_GAS_PER_RECORD_1000
            ),
            f"ratio_at_1000_ge_{TARGET_RATIO_AT_1000}": ratio >= TARGET_RATIO_AT_1000,
            "batch_of_1_le_baseline_per_token": batch_gas[1] <= baseline_per_token,
        },
        "runtime_s": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(
            "Measure gas per record of batch mints (1, 10, 100, 1000 records) against "
            "snekmate's ERC-721 minting one token per transaction, on an embedded "
            "chain; prints one JSON object."
        )
    )
    parser.add_argument(
        "--baseline-mints",
        type=int,
        default=20,
        metavar="N",
        help="baseline tokens to mint, one transaction each (default: 20; at least 2)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit with status 1 when a target is missed",
    )
    args = parser.parse_args(argv)
    if args.baseline_mints < 2:
        parser.error("--baseline-mints must be at least 2 (the first mint is not steady state)")
    result = run(args.baseline_mints)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    if args.check and not all(result["targets"].values()):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
