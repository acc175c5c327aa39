"""Phase 4 of ``bench/consortium.py`` alone: a grantee's open latency, without the
chain, pipeline and transfer phases (minutes of minting on a shared machine).

Starts the same geth Clique network (``--validators`` signers, 1 s blocks), an
embedded home and a Clique home, registers the hospital those phases would have
registered, then runs ``consortium.open_latency`` on both homes (in-process
custodians) and ``consortium.open_across_processes`` (custodians as ``healthnft
custodian serve`` processes) on Clique. Prints one JSON object shaped like the full
bench's ``open_latency`` key; everything is stopped and removed at the end.

Measured 2026-12-03 on the shared 2-core machine (load average 2–4 from other work),
``--opens 50``, 3 validators, k=2 of 3: across processes p50 186 / p99 348 ms (every
one of the 102 releases' logs confirmed on chain, the last 2.1 s after the last
open); in-process custodians on Clique p50 1,995 / p99 2,073 ms (awaited logs, now
asked at once: one block wait instead of two); embedded p50 222 / p99 333 ms. Before
this change: Clique in-process p50 3,995 / p99 4,143, embedded p50 476 / p99 598.

Measured 2026-12-03 later, same machine, load average 4–5, back to back (before: the
previous commit with eth-keys' pure-Python signatures, as it was installed; after:
this branch): across processes p50 206 / p99 298 and 186 / 295 before, 80 / 157 and
131 / 222 after, and 55 / 81 in a third run at load 0.9 (every release's log
confirmed on chain each time, ~2 s after the last open); the previous commit with
coincurve alone: 148 / 336. Embedded 482 / 928 and 408 / 1,243 before, 251 / 347,
217 / 388 and 132 / 228 after;
Clique in-process ~2,000 / ~2,100 both (its custodians still await their log's
receipt: a block). Where the across-processes time went (timed inside each process):
a custodian's release made five views in threads plus its simulation, nonce, fee and
signature one after the other (~58 ms under load; a signature alone ~15 ms in pure
Python), the grantee eleven views an open, each view ~2.5 ms of web3's ABI look-ups
before its round trip, and a new TCP connection per custodian request.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from eth_account import Account

import consortium as cb

pb = cb.pb


def run(args: argparse.Namespace) -> dict[str, Any]:
    from healthnft.ledger.nodes import CliqueNetwork
    from healthnft.network import PASSPHRASE_ENV, Network

    os.environ[PASSPHRASE_ENV] = cb.PASSPHRASE  # the homes' admin steps read it
    home_admin = Account.create()
    tmp = Path(tempfile.mkdtemp(prefix="healthnft-opens-"))
    clique = None
    homes: list[Any] = []
    started = time.perf_counter()
    try:
        templates = pb.load_templates(args.data) if args.data.is_dir() else []
        if not templates:
            templates = pb.load_templates(pb.write_sample(tmp / "sample"))
        pb.warm_up(templates)
        alloc = {home_admin.address: cb.ADMIN_WEI}
        clique = CliqueNetwork.start(tmp / "clique", validators=args.validators,
                                     chain_id=cb.CHAIN_ID, alloc=alloc, period_s=1)  # fmt: skip
        url = clique.rpc_urls[0]
        with cb.bounded("opens/clique", args.phase_timeout):
            net_c = Network.create(tmp / "home-clique", cb.PASSPHRASE, rpc_url=url,
                                   admin_secret=bytes(home_admin.key))  # fmt: skip
            homes.append(net_c)
            net_c.add_participant("hospital", "bench-hospital", cb.PASSPHRASE)
            open_clique = cb.open_latency(net_c, tmp, templates[0], args.opens)
        with cb.bounded("opens/embedded", args.phase_timeout):
            net_e = Network.create(tmp / "home-embedded", cb.PASSPHRASE)
            homes.append(net_e)
            net_e.add_participant("hospital", "bench-hospital", cb.PASSPHRASE)
            open_emb = cb.open_latency(net_e, tmp, templates[0], args.opens)
        with cb.bounded("opens/clique-across-processes", args.phase_timeout):
            across = cb.open_across_processes(url, bytes(home_admin.key), tmp, templates[0],
                                              args.opens)  # fmt: skip
    finally:
        for net in homes:
            with contextlib.suppress(Exception):
                net.close()
        if clique is not None:
            clique.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "open_latency": {
            "record": "laboratory Observation",
            "in_process_custodians": {
                "clique": open_clique,
                "embedded": open_emb,
                "p50_ratio_clique_to_embedded": cb._ratio(open_clique["p50_ms"],
                                                          open_emb["p50_ms"]),  # fmt: skip
            },
            "across_processes": {"clique": across},
            "target_p99_ms": cb.TARGET_OPEN_P99_MS,
            "target_met_in_process_clique": open_clique["p99_ms"] <= cb.TARGET_OPEN_P99_MS,
            "target_met_across_processes": across["p99_ms"] <= cb.TARGET_OPEN_P99_MS,
            "note": cb.open_note(open_clique, open_emb, across),
        },
        "validators": args.validators,
        "machine": {"cpus_on_machine": os.cpu_count(), "load_avg_at_end": cb.load_avg(),
                    "signatures": _signing_backend()},
        "runtime_s": round(time.perf_counter() - started, 1),
    }


def _signing_backend() -> str:
    """Which secp256k1 code signs here (coincurve's C, or eth-keys' pure Python at ~15 ms
    a signature: every custodian's access log is one)."""
    from eth_keys.backends import get_backend

    return type(get_backend()).__name__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opens", type=int, default=50, metavar="N",
                        help="timed opens per configuration (default: 50)")
    parser.add_argument("--validators", type=int, default=3, metavar="N",
                        help="Clique signers (default: 3)")
    parser.add_argument("--data", type=Path, default=cb.DEFAULT_DATA, metavar="FOLDER",
                        help="Synthea patient bundles (default: ../shared/data/synthea)")
    parser.add_argument("--phase-timeout", type=float, default=900.0, metavar="S",
                        help="seconds each phase may take (default: 900)")  # fmt: skip
    args = parser.parse_args(argv)
    if min(args.opens, args.validators) < 1:
        parser.error("--opens and --validators must be positive")
    json.dump(run(args), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
