"""The drug benchmark runs end to end: commissioning costs the same for any count, and a
dispense (a Merkle proof, a role check, half a storage word) stays under an ERC-721
transfer measured on the same chain, and under 60,000 gas on average."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

DRUGS_BENCH = Path(__file__).resolve().parents[2] / "bench" / "drugs.py"


@pytest.mark.slow
def test_drug_bench_prints_its_figures() -> None:
    proc = subprocess.run([sys.executable, str(DRUGS_BENCH), "--serials", "5000", "--reps", "2"],
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    commission, dispense = result["commission"], result["dispense"]
    assert abs(commission["gas"] - commission["gas_10_serials"]) < 300, commission
    assert commission["gas"] < 100_000
    assert dispense["proof_nodes"] == 13  # 5,000 packs
    # Two packs to a storage word: the first of a word pays a fresh slot, the second not;
    # over a whole batch the average meets the 60,000 (figures in docs/drugs.md).
    assert dispense["second_in_word"] + 15_000 < dispense["first_in_word"]
    assert dispense["first_in_word"] < result["erc721_transfer"]["health_record_token"]
    assert abs(2 * dispense["average"] - dispense["first_in_word"]
               - dispense["second_in_word"]) < 200  # fmt: skip
    assert result["target"]["average_met"] and result["target"]["second_in_word_met"]
    assert dispense["alert"] < dispense["first_in_word"]
    basket = dispense["basket_per_pack"]
    assert basket["16"] < basket["2"] < dispense["average"]
    assert result["target"]["basket_of_2_met"]
    assert result["tree"]["build_s"] > 0 and result["tree"]["find_packs_per_s"] > 0
    verify = result["verify"]
    assert verify["statuses_seen"] == ["active", "dispensed"]
    # The event-index read path beats eth_call on py-evm by far (figures in docs/drugs.md).
    assert verify["served_packs_per_s"] > 5 * verify["baseline"]["eth_call_packs_per_s"]
