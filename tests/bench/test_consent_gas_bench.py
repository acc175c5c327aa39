"""The consent gas benchmark runs end to end and prints a plausible figure per operation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CONSENT_GAS_BENCH = Path(__file__).resolve().parents[2] / "bench" / "consent_gas.py"
KEYS = {
    "share_tokens_1",
    "share_tokens_10",
    "share_tokens_100",
    "share_category",
    "revoke",
    "request",
    "request_with_reward",
    "approve",
    "approve_with_reward",
    "decline_with_refund",
    "request_auto_approved",
    "add_policy",
    "log_access",
    "transfer",
    "approve_token",
    "transfer_by_approved",
    "set_approval_for_all",
    "transfer_by_operator",
}
CEILING = 1_000_000
# Sharing 100 tokens writes 100 fresh storage slots (22,100 gas each before any
# other work), so it cannot fit under the common ceiling; it gets 40,000 a token.
CEILINGS = {"share_tokens_100": 100 * 40_000}


@pytest.mark.slow
def test_consent_gas_bench_prints_every_operation() -> None:
    proc = subprocess.run(
        [sys.executable, str(CONSENT_GAS_BENCH), "--reps", "3"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)

    gas = result["gas"]
    assert set(gas) == KEYS
    for key, value in gas.items():
        assert isinstance(value, int) and not isinstance(value, bool), (key, value)
        assert 0 < value < CEILINGS.get(key, CEILING), (key, value)
    assert gas["share_tokens_100"] > gas["share_tokens_10"] > gas["share_tokens_1"], gas

    assert set(result["first_time"]) <= KEYS
    for key, value in result["first_time"].items():
        assert isinstance(value, int) and 0 < value < CEILINGS.get(key, CEILING), (key, value)
    assert result["runtime_s"] > 0

    # Approvals go to members only, and whoever moves another's token must be one: a
    # registry call each (a few thousand gas), nothing near another transaction's 21,000.
    for key in ("transfer_by_approved", "transfer_by_operator"):
        assert gas[key] < gas["transfer"] + 21_000, gas

    # A correction in one transaction costs less than the old mint + supersede.
    amend = result["extra"]["amend"]
    old = amend["two_step_baseline"]
    assert old["total"] == old["mint_one"] + old["supersede"]
    assert old["mint_one"] < amend["one_transaction"] < old["total"], amend
    assert amend["saved"] == old["total"] - amend["one_transaction"] > 21_000, amend
