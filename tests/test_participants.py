"""A name is a label, not an identity: two registrations never share a wallet (issue 12.3)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli


def _add(home: Path, *extra: str):
    return run_cli(home, "participant", "add", "--kind", "patient", "--name", "Alice Test",
                   "--json", *extra)  # fmt: skip


def test_a_second_patient_with_the_same_name_is_not_merged_into_the_first(
    fresh_demo_home: tuple[Path, dict],
) -> None:
    home, _ = fresh_demo_home
    first = _add(home)
    assert first.returncode == 0, first.stderr
    alice = json.loads(first.stdout)["address"]

    second = _add(home)
    assert second.returncode == 10 and second.stdout == ""  # Conflict, nothing printed
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: a patient with this name is already")
    assert alice in lines[0] and "--same-person" in lines[0]
    assert "Alice" not in second.stderr  # the name itself is never echoed

    listed = json.loads(run_cli(home, "participant", "list", "--json", check=True).stdout)
    assert [p["address"] for p in listed if p["name"] == "Alice Test"] == [alice]

    # The caller says it is the same person: their registration, not a new one.
    same = _add(home, "--same-person")
    assert same.returncode == 0 and json.loads(same.stdout)["address"] == alice
    # Another kind may carry the same label (a label is local to its kind).
    other = run_cli(home, "participant", "add", "--kind", "research", "--name", "Alice Test",
                    "--json", check=True)  # fmt: skip
    assert json.loads(other.stdout)["address"] != alice

