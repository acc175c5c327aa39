"""Shared fixtures: real data, real chains, real keys — no mocks of our own parts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SYNTHEA = SHARED_DATA / "synthea"


def _cli_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("HEALTHNFT_CRASH_AT", None)
    env["HEALTHNFT_HOME"] = str(home)
    return env


def run_cli(home: Path, *args: str, env: dict[str, str] | None = None, check: bool = False,
            cwd: Path | None = None) -> subprocess.CompletedProcess:  # fmt: skip
    """Run ``healthnft --home HOME ARGS…`` in a fresh process, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "healthnft.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        env={**_cli_env(home), **(env or {})},
        cwd=str(cwd or REPO),
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"healthnft {' '.join(args)} failed: {proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def fhir_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Synthea patients when ../shared is present, else the package's own sample."""
    if SYNTHEA.is_dir():
        return SYNTHEA
    from healthnft.sample import write_sample

    return write_sample(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory: pytest.TempPathFactory, fhir_dir: Path) -> tuple[Path, dict]:
    """A home after `healthnft demo --json` on the real data (shared, read-only use)."""
    home = tmp_path_factory.mktemp("demo") / "home"
    proc = run_cli(home, "demo", "--data", str(fhir_dir), "--json", check=True)
    return home, json.loads(proc.stdout)


@pytest.fixture
def fresh_demo_home(tmp_path: Path, fhir_dir: Path) -> tuple[Path, dict]:
    """A demo home of the test's own, for tests that change or break things."""
    home = tmp_path / "home"
    proc = run_cli(home, "demo", "--data", str(fhir_dir), "--json", check=True)
    return home, json.loads(proc.stdout)
