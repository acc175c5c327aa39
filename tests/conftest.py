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

#: One small, valid FHIR R4 lab result (synthetic), for tests that mint a single record.
LAB_OBSERVATION = {
    "resourceType": "Observation", "id": "lab-test", "status": "final",
    "category": [{"coding": [{"system":
        "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
    "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0"}]},
    "subject": {"reference": "Patient/1"}, "effectiveDateTime": "2020-01-02T03:04:05Z",
    "valueQuantity": {"value": 5.4, "unit": "mmol/L", "system": "http://unitsofmeasure.org",
                      "code": "mmol/L"},
}  # fmt: skip


def need_tool(name: str) -> None:
    """Skip, naming ``make nodes``, when the node client ``name`` (geth, anvil) is missing."""
    from healthnft.errors import NotFound
    from healthnft.ledger import nodes

    try:
        nodes.tool_path(name)
    except NotFound as exc:
        pytest.skip(str(exc))


def _cli_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("HEALTHNFT_CRASH_AT", None)
    env["HEALTHNFT_HOME"] = str(home)
    return env


#: What a CLI process imports before it reads its arguments (about 1.7 s of a 2.3 s run).
_WARM_MODULES = [
    "healthnft.cli",
    "healthnft.network",
    "healthnft.services.node",
    "healthnft.services.demo",
    "healthnft.services.records",
    "healthnft.services.sharing",
    "healthnft.services.credentials",
    "healthnft.services.custody",
    "healthnft.ledger.embedded",
    "healthnft.minting.pipeline",
]


def _cli_process(args: list[str], env: dict[str, str], cwd: str, out: str, err: str) -> None:
    """The body of one CLI process, forked from the warm server: argv, env, cwd, fds 1 and 2."""
    for fd, path in ((1, out), (2, err)):
        handle = os.open(path, os.O_WRONLY | os.O_TRUNC)
        os.dup2(handle, fd)
        os.close(handle)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.argv = ["healthnft", *args]
    from healthnft.cli import main

    main()


_forks: Any = None


def _forkserver() -> Any:
    """multiprocessing's fork server with the CLI's modules imported once per test worker.

    Each CLI run is still its own OS process (own memory, own file handles, its state
    read from disk, killed on timeout); only the import work is shared, which is most
    of a short command's time. Nothing is opened before the fork, so no handle is shared.
    """
    global _forks
    if _forks is None:
        import multiprocessing

        _forks = multiprocessing.get_context("forkserver")
        _forks.set_forkserver_preload(_WARM_MODULES)
    return _forks


def run_cli(
    home: Path,
    *args: str,
    env: dict[str, str] | None = None,
    check: bool = False,
    cwd: Path | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """Run ``healthnft --home HOME ARGS…`` in a new process, as a user would.

    The process is forked from a warm server (see :func:`_forkserver`) rather than
    started by ``python -m healthnft.cli``; tests about start-up itself spawn their own.
    """
    import tempfile

    argv = ["--home", str(home), *args]
    with tempfile.TemporaryDirectory(prefix="cli-") as scratch:
        out, err = Path(scratch, "out"), Path(scratch, "err")
        out.touch()
        err.touch()
        proc = _forkserver().Process(
            target=_cli_process,
            args=(argv, {**_cli_env(home), **(env or {})}, str(cwd or REPO), str(out), str(err)),
        )
        proc.start()
        proc.join(timeout)
        if proc.exitcode is None:
            proc.kill()
            proc.join()
            raise subprocess.TimeoutExpired(["healthnft", *argv], timeout)
        result = subprocess.CompletedProcess(
            ["healthnft", *argv], proc.exitcode,
            out.read_text(errors="replace"), err.read_text(errors="replace"),
        )  # fmt: skip
    if check and result.returncode != 0:
        raise AssertionError(f"healthnft {' '.join(args)} failed: {result.stderr}")
    return result


class ServiceProcess:
    """``healthnft --home HOME COMMAND… --port N`` as its own process: its own session
    (a signal reaches it and its children), its output in ``HOME.log`` beside the home,
    started and awaited until ``ready`` (a path on its URL) answers, in bounded time.
    ``stop`` is a crash (SIGKILL of the group) unless ``clean`` (SIGTERM, then a wait)."""

    def __init__(self, home: Path, command: list[str], ready: str, env: dict[str, str], *,
                 clean: bool = False, start_s: float = 30.0) -> None:  # fmt: skip
        from healthnft.ledger.nodes import free_port

        self.home, self.command, self.ready, self.env = home, command, ready, env
        self.clean, self.start_s = clean, start_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float | None = None) -> None:
        import time

        import requests

        log_path = self.home.parent / f"{self.home.name}.log"
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "healthnft.cli", "--home", str(self.home),
                 *self.command, "--port", str(self.port)],
                env={**os.environ, **self.env}, stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + (timeout_s or self.start_s)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{' '.join(self.command)} exited: see {log_path}")
            try:
                if requests.get(self.url + self.ready, timeout=1).ok:
                    return
            except requests.RequestException:
                time.sleep(0.1)
        raise AssertionError(f"{' '.join(self.command)} at {self.url} did not start in time")

    def stop(self) -> None:
        import signal

        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM if self.clean else signal.SIGKILL)
            self.proc.wait(timeout=15)
        self.proc = None


class CustodianService(ServiceProcess):
    """One `healthnft custodian serve` process over its own home; ``init`` makes that home
    from a network file, ``status`` is the service's own count of shares and logs."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        super().__init__(home, ["custodian", "serve"], "/challenge", env)

    def init(self, network_file: Path) -> dict:
        done = subprocess.run(
            [sys.executable, "-m", "healthnft.cli", "--home", str(self.home), "custodian",
             "init", "--network", str(network_file), "--json"],
            env={**os.environ, **self.env}, capture_output=True, timeout=120, check=True,
        )  # fmt: skip
        return json.loads(done.stdout)

    def status(self) -> dict:
        import requests

        return requests.get(self.url + "/status", timeout=5).json()


def run_cli_json(home: Path, *args: str, env: dict[str, str] | None = None,
                 timeout: float = 180) -> Any:  # fmt: skip
    """``healthnft --home HOME ARGS… --json``, checked, its output parsed. ``--json`` goes
    before a ``--`` in ``args`` (what follows is the command's positional arguments)."""
    at = args.index("--") if "--" in args else len(args)
    proc = run_cli(home, *args[:at], "--json", *args[at:], env=env, check=True, timeout=timeout)
    return json.loads(proc.stdout)


def one_error_line(proc: subprocess.CompletedProcess, error: type) -> str:
    """A refusal as the CLI gives it: ``error``'s exit code and one line on stderr."""
    assert proc.returncode == error.exit_code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


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
def fresh_demo_home(tmp_path: Path, demo_home: tuple[Path, dict]) -> tuple[Path, dict]:
    """A demo home of the test's own (a copy of the session's), for tests that change or
    break things. A home is only files, so a copy is a home in the same state."""
    src, summary = demo_home
    home = tmp_path / "home"
    shutil.copytree(src, home)
    return home, {**summary, "home": str(home)}


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


def host_demo_patients(home: Path) -> list[str]:
    """Make a copy of a demo home a home that hosts its patients' wallets: each demo
    patient's keystore written into its ``keystore/`` (demo passphrase), as a home
    whose patients were added with ``participant add --kind patient`` outside a demo
    keeps them. The demo itself keeps none (issue 14); the hosted wallet's routes and
    pages are tested on such a home. Answers the patients' addresses."""
    from healthnft import keys
    from healthnft.home import Home
    from healthnft.network import DEMO_PASSPHRASE, demo_patient_identity
    from healthnft.vault.catalog import Catalog

    catalog = Catalog(Home(home).index_path)
    try:
        patients = catalog.participants("patient")
    finally:
        catalog.close()
    for p in patients:
        secret = bytes(demo_patient_identity(p.label).account.key)
        keys.write_keystore(Home(home).keystore_dir, secret, DEMO_PASSPHRASE, light=True)
    return [p.address for p in patients]


@pytest.fixture(scope="module")
def web_home(demo_home: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session's demo home plus a research institute (tests change it),
    hosting its patients' wallets (:func:`host_demo_patients`)."""
    src, _summary = demo_home
    home = tmp_path_factory.mktemp("web") / "home"
    shutil.copytree(src, home)
    host_demo_patients(home)
    proc = run_cli(home, "participant", "add", "--kind", "research", "--name",
                   "demo-research-institute", "--same-person", "--json", check=True)
    assert json.loads(proc.stdout)["address"].startswith("0x")
    return home


@pytest.fixture(scope="module")
def served(web_home: Path) -> Iterator[Served]:
    import time

    from healthnft.api import create_app

    clock = [time.time()]
    app = create_app(web_home, origin="http://testserver", session_ttl_s=600,
                     clock=lambda: clock[0])  # fmt: skip
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
