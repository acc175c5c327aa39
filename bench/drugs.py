"""Drug verification benchmark (issue 15): what commissioning and dispensing cost on chain.

Runs an embedded chain in a temporary directory, deploys the network's contracts and the
DrugBatchRegistry, registers a manufacturer, a pharmacy, a hospital and two patients,
and reads every gas figure from a real transaction receipt's ``gasUsed``:

* ``tree``: seconds to build a batch of ``--serials`` packs as a manufacturer does
  (check fields, draw salts, sha256 commitments, keccak leaves and tree:
  ``build_batch``), to keep it in ``drugs.sqlite`` (``PackBook.keep``), and how many
  packs a second :meth:`PackBook.find` answers (serial -> salt and proof, each checked
  against the root), the manufacturer's side of the read path;
* ``commission``: the gas of commissioning that batch and a 10-pack one (one
  transaction each: equal, whatever the count), and gas per serial;
* ``dispense``: one pack of the big batch (a 17-node proof at 100,000) per transaction.
  Two packs share a storage word (leaf indexes ``2k`` and ``2k + 1``), so a sequence of
  ``2 * --reps`` consecutive packs is dispensed: ``first_in_word`` (a fresh storage
  slot), ``second_in_word`` (a non-zero word changed) and ``average`` over the sequence
  (what a batch dispensed whole costs per pack, in any order); ``first`` is the
  pharmacy's and the batch's first dispense; ``first_in_word_10_pack_batch`` the same
  for a 10-pack batch (4-node proof); ``alert`` is a second dispense of a pack (no
  state change), ``undo`` an undo (it carries the pack's proof); ``basket_per_pack[n]``
  is a basket of ``n`` packs dispensed in one transaction, per pack;
* ``erc721_transfer``: for comparison, in the same run, one ``transferFrom`` of the
  project's HealthRecordToken between two patients (it checks membership in the
  registry, as dispense checks the dispenser's role) and of snekmate's stock ERC-721
  (``bench/contracts/BaselineERC721.vy``, no registry); ``ratio`` is the average
  dispense over each (``first_in_word_ratio``: the dearer dispense over each);
* ``target``: the issue's ceiling of 60,000 gas per dispense, and whether the average
  single-pack dispense, the first and the second of a word, and a basket of 2 meet it;
* ``verify``: verification throughput through the service's read path
  (``healthnft.services.drugs``) on a real home (``Network``, demo keys) holding a
  commissioned batch of ``--serials`` packs, some dispensed, on one core, packs/s:
  ``served`` is the web service's case (the home is its chain's only writer, so the
  event index is synced only after a write: :class:`IndexedStatus`), ``synced_each``
  syncs the index and reads the head before every answer (a CLI run), ``whole_call``
  is ``services.drugs.verify(code)`` whole (parse the code, open the book, answer;
  served); the same-run baselines are ``book_only`` (the manufacturer's book: salt and
  proof, checked against the root: the floor of any verifier) and ``eth_call`` (the
  chain facts read with the contract's ``status_of`` view through web3, py-evm), with
  the issue's target of 2,000 packs/s.

Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from eth_account import Account

from healthnft.drugs.commitments import PackBook, build_batch, in_batch
from healthnft.ledger.client import Ledger
from healthnft.ledger.compiler import compile_contract
from healthnft.ledger.drugs import DrugRegistry
from healthnft.ledger.embedded import embedded_web3

BENCH_CONTRACTS = Path(__file__).resolve().parent / "contracts"
GTIN = "09506000134352"
EXPIRY = "301231"
TARGET_DISPENSE_GAS = 60_000
TARGET_VERIFY_PER_S = 2_000
BASKETS = (2, 4, 16)


def run(serials: int, reps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        admin = Account.create()
        w3 = embedded_web3(Path(tmp) / "chain.sqlite", {admin.address: 10**27})
        ledger = Ledger.deploy(w3, admin)
        drugs = DrugRegistry.deploy(ledger, admin)
        maker, pharmacy, hospital, alice, bob = (Account.create() for _ in range(5))
        roles = ((maker, "manufacturer"), (pharmacy, "pharmacy"), (hospital, "hospital"),
                 (alice, "patient"), (bob, "patient"))  # fmt: skip
        for acct, kind in roles:
            ledger.fund(admin, acct.address, 10**21)
            ledger.register(admin, acct.address, kind, os.urandom(32))
        ledger.set_issuer(admin, hospital.address)

        # The manufacturer's side: build, keep, answer.
        numbers = [f"SN{i:012d}" for i in range(serials)]
        t0 = time.perf_counter()
        big = build_batch(GTIN, "LOT-BIG", EXPIRY, numbers)
        build_s = time.perf_counter() - t0
        book = PackBook(Path(tmp) / "drugs.sqlite")
        t0 = time.perf_counter()
        book.keep(big, maker.address)
        keep_s = time.perf_counter() - t0
        sample = numbers[:: max(1, serials // 2000)][:2000]
        t0 = time.perf_counter()
        for s in sample:
            found = book.find(GTIN, s)
            if found is None or not in_batch(found.commitment, found.index, found.proof, big.root):
                raise RuntimeError(f"pack {s} not found or not in its batch")
        find_rate = len(sample) / (time.perf_counter() - t0)
        book.close()

        small = build_batch(GTIN, "LOT-SMALL", EXPIRY, numbers[:10])
        drugs.commission(maker, small.batch_key, small.root, small.expiry_time)
        commission_small = int(drugs.last_receipt["gasUsed"])
        drugs.commission(maker, big.batch_key, big.root, big.expiry_time)
        commission_big = int(drugs.last_receipt["gasUsed"])

        def dispense(batch, index: int) -> int:
            pack = batch.pack(index)
            return int(drugs.dispense(pharmacy, pack.batch_key, pack.index, pack.commitment,
                                      pack.proof).receipt["gasUsed"])  # fmt: skip

        first = dispense(big, 0)
        sequence = [dispense(big, 2 + i) for i in range(2 * reps)]  # reps words, in order
        small_gas = [dispense(small, 2 + 2 * i) for i in range(min(reps, 4))]
        alert = int(drugs.dispense(hospital, big.batch_key, 0, big.pack(0).commitment,
                                   big.pack(0).proof).receipt["gasUsed"])  # fmt: skip
        drugs.undo(pharmacy, big.batch_key, 2, big.pack(2).commitment, big.pack(2).proof)
        undo = int(drugs.last_receipt["gasUsed"])
        basket: dict[str, float] = {}
        next_index = 1_000
        for n in BASKETS:
            packs = [big.pack(next_index + i) for i in range(n)]
            next_index += n
            drugs.dispense_basket(pharmacy, [(p.batch_key, p.index, p.commitment, p.proof)
                                            for p in packs])  # fmt: skip
            basket[str(n)] = round(int(drugs.last_receipt["gasUsed"]) / n, 1)
        proof_nodes = len(big.pack(1).proof)

        # The comparison: ERC-721 transfers on the same chain.
        start = ledger.next_token_id()
        ledger.transact(hospital, ledger.mint_call(alice.address, reps + 1, start, os.urandom(32)))
        token_gas = []
        for i in range(reps + 1):
            receipt = ledger.transact(alice, ledger.transfer_call(alice.address, bob.address,
                                                                  start + i))  # fmt: skip
            token_gas.append(int(receipt["gasUsed"]))
        base = compile_contract("BaselineERC721", source_dir=BENCH_CONTRACTS)
        address = ledger.deploy_contract(admin, base.abi, base.bytecode,
                                         ["Baseline", "BASE", "", "Baseline", "1"])  # fmt: skip
        baseline = w3.eth.contract(address=address, abi=base.abi)
        for _ in range(reps + 1):
            ledger.transact(admin, baseline.functions.safe_mint(alice.address, ""))
        base_gas = []
        for token_id in range(reps + 1):
            receipt = ledger.transact(alice, baseline.functions.transferFrom(
                alice.address, bob.address, token_id))  # fmt: skip
            base_gas.append(int(receipt["gasUsed"]))
        w3.provider.ethereum_tester.backend.db.close()

    first_in_word = statistics.median_low(sequence[0::2])
    second_in_word = statistics.median_low(sequence[1::2])
    average = round(statistics.mean(sequence))
    token_transfer = statistics.median_low(token_gas[1:])
    plain_transfer = statistics.median_low(base_gas[1:])
    return {
        "serials": serials,
        "tree": {"build_s": round(build_s, 3), "keep_s": round(keep_s, 3),
                 "find_packs_per_s": round(find_rate)},  # fmt: skip
        "commission": {"gas": commission_big, "gas_10_serials": commission_small,
                       "gas_per_serial": round(commission_big / serials, 4)},  # fmt: skip
        "dispense": {
            "average": average, "first_in_word": first_in_word,
            "second_in_word": second_in_word, "sequence": len(sequence),
            "range": [min(sequence), max(sequence)], "proof_nodes": proof_nodes,
            "first": first,
            "first_in_word_10_pack_batch": statistics.median_low(small_gas),
            "alert": alert, "undo": undo, "basket_per_pack": basket,
        },  # fmt: skip
        "erc721_transfer": {
            "health_record_token": token_transfer, "snekmate_erc721": plain_transfer,
            "ratio_to_health_record_token": round(average / token_transfer, 3),
            "ratio_to_snekmate_erc721": round(average / plain_transfer, 3),
            "first_in_word_ratio_to_health_record_token": round(first_in_word / token_transfer, 3),
            "first_in_word_ratio_to_snekmate_erc721": round(first_in_word / plain_transfer, 3),
        },  # fmt: skip
        "target": {
            "dispense_gas_max": TARGET_DISPENSE_GAS,
            "average_met": average <= TARGET_DISPENSE_GAS,
            "first_in_word_met": first_in_word <= TARGET_DISPENSE_GAS,
            "second_in_word_met": second_in_word <= TARGET_DISPENSE_GAS,
            "basket_of_2_met": basket["2"] <= TARGET_DISPENSE_GAS,
        },
    }


def verify_throughput(serials: int, samples: int = 2_000) -> dict:
    """Packs/s answered by the service's read path, and the same run's baselines."""
    from healthnft.drugs.gs1 import parse_pack
    from healthnft.network import DEMO_PASSPHRASE, Network
    from healthnft.services import drugs as service

    def rate(items: list, fn) -> float:
        t0 = time.perf_counter()
        for item in items:
            fn(item)
        return round(len(items) / (time.perf_counter() - t0))

    with tempfile.TemporaryDirectory() as tmp:
        net = Network.create(Path(tmp) / "home", DEMO_PASSPHRASE, demo=True)
        try:
            net.add_participant("manufacturer", "bench-maker")
            net.add_participant("pharmacy", "bench-pharmacy")
            lot = "LOT-VERIFY"
            numbers = [f"SN{i:012d}" for i in range(serials)]
            service.commission(net, "bench-maker", GTIN, lot, EXPIRY, numbers,
                               product_name="Bench 10 mg tablets")
            codes = [f"(01){GTIN}(17){EXPIRY}(10){lot}(21){n}"
                     for n in numbers[:: max(1, serials // samples)][:samples]]  # fmt: skip
            for code in codes[:20]:  # some dispensed packs among the answers
                service.dispense(net, code, by="bench-pharmacy")
            packs = [parse_pack(c) for c in codes]
            statuses = {service.verify(net, c).status for c in codes[:40]}
            source = service.pack_source(net)
            registry = net.drug_registry()

            def book_only(pack) -> None:
                found = source.find(pack)
                p = None if found is None else found.proof
                root = None if p is None else registry.root_of(p.batch_key)
                if p is None or root is None or not in_batch(p.commitment, p.index, p.proof, root):
                    raise RuntimeError("a commissioned pack was not found")

            def eth_call(pack) -> None:
                p = source.find(pack).proof
                registry.pack_status(p.batch_key, p.index, p.commitment, p.proof)

            baseline_book = rate(packs, book_only)
            baseline_call = rate(packs[:100], eth_call)
            synced_each = rate(packs[:300], service.Verifier(net, source).check)
            net.ledger.enable_read_cache(ttl_s=300)  # as `healthnft serve` does
            served_verifier = service.Verifier(net, source)
            served_verifier.check(packs[0])
            served = rate(packs, served_verifier.check)
            whole = rate(codes[:500], lambda c: service.verify(net, c))
            source.close()
        finally:
            net.close()
    return {
        "packs_in_batch": serials, "statuses_seen": sorted(statuses),
        "served_packs_per_s": served, "synced_each_packs_per_s": synced_each,
        "whole_call_packs_per_s": whole,
        "baseline": {"book_only_packs_per_s": baseline_book,
                     "eth_call_packs_per_s": baseline_call},
        "ratio_served_to_eth_call": round(served / baseline_call, 1),
        "target_packs_per_s": TARGET_VERIFY_PER_S, "target_met": served >= TARGET_VERIFY_PER_S,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(
        "Measure the drug registry's gas (commission, dispense, alert, undo, baskets) "
        "against ERC-721 transfers, and the manufacturer's tree build time; prints JSON."
    ))
    parser.add_argument("--serials", type=int, default=100_000, metavar="N",
                        help="packs in the big batch (default: 100,000)")
    parser.add_argument("--reps", type=int, default=5, metavar="N",
                        help="storage words of dispenses (2 packs each) and transfers "
                             "measured (default: 5)")
    args = parser.parse_args(argv)
    if args.serials < 1_100 or not 1 <= args.reps <= 50:
        parser.error("--serials must be at least 1,100 and --reps 1..50")
    result = run(args.serials, args.reps)
    result["verify"] = verify_throughput(args.serials)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
