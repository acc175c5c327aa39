"""The gas benchmark runs end to end and meets its targets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

GAS_BENCH = Path(__file__).resolve().parents[2] / "bench" / "gas.py"


@pytest.mark.slow
def test_gas_bench_meets_targets() -> None:
    proc = subprocess.run(
        [sys.executable, str(GAS_BENCH)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)

    per_record = result["gas_per_record"]
    assert set(per_record) == {"1", "10", "100", "1000"}
    baseline = result["baseline_gas_per_token"]
    ratio = result["ratio_at_1000"]
    assert ratio == pytest.approx(baseline / per_record["1000"], rel=1e-3)

    assert per_record["1000"] <= 150, result
    assert ratio >= 1000, result
    assert result["batch_gas"]["1"] <= baseline, result
    assert all(result["targets"].values()), result["targets"]
