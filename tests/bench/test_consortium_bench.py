"""The consortium benchmark runs end to end on tiny sizes against real nodes.

It starts a 3-validator geth Clique network and an anvil node (installed by
``make nodes``), so it is skipped, saying why, where they are not installed. The
figures are what the benchmark prints, not what this test checks: a shared CI
machine's timing says little; missing keys, a non-positive figure or a ratio that is
not the figures' ratio say a lot.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from healthnft.errors import NotFound
from healthnft.ledger.nodes import tool_path

CONSORTIUM_BENCH = Path(__file__).resolve().parents[2] / "bench" / "consortium.py"


def _missing_nodes() -> str | None:
    for name in ("geth", "anvil"):
        try:
            tool_path(name)
        except NotFound as exc:
            return f"the consortium bench needs {name}: {exc}"
    return None


@pytest.mark.slow
def test_consortium_bench_reports_every_figure() -> None:
    missing = _missing_nodes()
    if missing:
        pytest.skip(missing)
    records, batch, transfers, opens = 200, 100, 20, 3
    proc = subprocess.run(
        [sys.executable, str(CONSORTIUM_BENCH), "--records", str(records), "--batch-size",
         str(batch), "--transfers", str(transfers), "--opens", str(opens),
         "--chain-rounds", "3", "--phase-timeout", "300", "--quiet"],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout)
    assert (result["records"], result["batch_size"], result["validators"]) == (records, batch, 3)

    chain = result["chain"]
    for side in ("clique", "embedded"):
        figures = chain[side]
        assert figures["records"] == records
        assert figures["transactions"] == 2  # 200 records in batches of 100
        assert figures["seconds"] > 0 and figures["records_per_s"] > 0
        assert figures["records_per_s"] == pytest.approx(records / figures["seconds"], rel=0.01)
        assert figures["gas_used"] > 0
        assert figures["rounds"] == 3 and len(figures["seconds_per_round"]) == 3
        assert figures["seconds"] in figures["seconds_per_round"]  # the median round
    assert chain["clique"]["evm_version"] == "paris"  # a Clique chain never has Shanghai
    assert chain["ratio"] == pytest.approx(
        chain["clique"]["records_per_s"] / chain["embedded"]["records_per_s"], rel=0.01, abs=0.001
    )
    assert chain["target_ratio"] == 0.9
    assert chain["target_met"] == (chain["ratio"] >= 0.9)

    pipeline = result["pipeline"]
    for side in ("clique", "embedded"):
        figures = pipeline[side]
        assert figures["minted"] == figures["records"] == records
        assert figures["records_per_s"] > 0 and figures["seconds"] > 0
        assert figures["broadcast_s"] > 0
    assert pipeline["ratio"] == pytest.approx(
        pipeline["clique"]["records_per_s"] / pipeline["embedded"]["records_per_s"],
        rel=0.01,
        abs=0.001,
    )
    assert isinstance(pipeline["note"], str) and pipeline["note"]

    tx = result["transfers"]
    for side in ("clique", "anvil"):
        assert tx[side]["transactions"] == transfers
        assert tx[side]["tx_per_s"] > 0
    assert tx["ratio_clique_to_anvil"] == pytest.approx(
        tx["clique"]["tx_per_s"] / tx["anvil"]["tx_per_s"], rel=0.01, abs=0.001
    )

    latency = result["open_latency"]
    assert latency["across_processes"] is None  # custodians as HTTP services: not yet
    assert latency["target_p99_ms"] == 200
    for side in ("clique", "embedded"):
        figures = latency["in_process_custodians"][side]
        assert figures["opens"] == opens
        assert 0 < figures["min_ms"] <= figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]
        # k = 2 of 3 custodians, each logging its release on chain, per open.
        assert figures["threshold"] == 2
        assert figures["log_access_calls"] == 2 * opens

    machine = result["machine"]
    assert machine["cpus_on_machine"] >= 1
    assert machine["load_avg_at_start"] is None or len(machine["load_avg_at_start"]) == 3
    assert all(h > 0 for h in result["clique"]["heads_at_end"])
