"""Shared fixtures: real data, real chains, real keys — no mocks of our own parts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


# -- the web service (tests/api) ------------------------------------------------


@dataclass
class Served:
    home: Path
    app: object
    clock: list[float]
    patients: list[str]
    research: str
    hospital: str

    def patient(self, n: int) -> str:
        """The n-th patient (wrapping round: the built-in sample has fewer than Synthea)."""
        return self.patients[n % len(self.patients)]

    def client(self) -> Any:
        from fastapi.testclient import TestClient

        return TestClient(self.app)

    def key(self, address: str) -> bytes:
        return bytes(self.app.state.service.net.identity(address).account.key)

    def sign_in(self, client: Any, address: str) -> dict:
        from healthnft.api import siwe

        msg = client.get("/api/auth/challenge", params={"address": address}).json()["message"]
        r = client.post("/api/auth/verify",
                        json={"message": msg, "signature": siwe.sign(msg, self.key(address))})
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture(scope="module")
def web_home(demo_home: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session's demo home plus a research institute (tests change it)."""
    src, _summary = demo_home
    home = tmp_path_factory.mktemp("web") / "home"
    shutil.copytree(src, home)
    proc = run_cli(home, "participant", "add", "--kind", "research", "--name",
                   "demo-research-institute", "--json", check=True)
    assert json.loads(proc.stdout)["address"].startswith("0x")
    return home


@pytest.fixture(scope="module")
def served(web_home: Path) -> Iterator[Served]:
    import time

    from healthnft.api import create_app

    clock = [time.time()]
    app = create_app(web_home, session_ttl_s=600, clock=lambda: clock[0])
    net = app.state.service.net
    people = net.catalog.participants()
    yield Served(
        home=web_home,
        app=app,
        clock=clock,
        patients=[p.address for p in people if p.kind == "patient"],
        research=next(p.address for p in people if p.kind == "research"),
        hospital=next(p.address for p in people if p.kind == "hospital"),
    )
    net.close()
