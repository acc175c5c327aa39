"""`healthnft consortium up|status|down` as a person runs them (issue #13 point 3).

Real processes: three geth Clique validators, the admin home deploying the contracts,
four founding institutions joined and admitted, each served by its own `healthnft serve`.
Every process is stopped in the teardown, whatever happened.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from healthnft.errors import NotFound
from healthnft.ledger import nodes

pytestmark = pytest.mark.slow

FOUNDERS = {"general-hospital": "hospital", "research-institute": "research",
            "insurer": "insurer", "government": "government"}  # fmt: skip


def _healthnft(*args: str, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    env.pop("HEALTHNFT_PASSPHRASE", None)
    return subprocess.run([sys.executable, "-m", "healthnft.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, check=False)  # fmt: skip


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.fixture
def consortium_dir(tmp_path):
    for tool in ("geth",):
        try:
            nodes.tool_path(tool)
        except NotFound as exc:
            pytest.skip(str(exc))
    where = tmp_path / "consortium"
    try:
        yield where
    finally:
        # Whatever the test did: `down`, then any recorded pid still alive is killed.
        _healthnft("consortium", "down", "--dir", str(where), timeout=60)
        record = where / "processes.json"
        if record.exists():
            procs = json.loads(record.read_text())
            pids = [v["pid"] for v in procs["validators"]]
            pids += [n["pid"] for n in procs["nodes"].values()]
            pids += [c.get("pid") for c in procs.get("custodians", [])]
            for pid in pids:
                if pid and _alive(pid):
                    os.kill(pid, signal.SIGKILL)


def test_up_status_down_and_up_again_keeps_the_chain(consortium_dir):
    where = consortium_dir
    # Two custodians (not the default three): each is a few Clique blocks, on the
    # critical path of `up`; the shape is the same.
    made = _healthnft("consortium", "up", "--dir", str(where), "--custodians", "2", "--json",
                      timeout=180)  # fmt: skip
    assert made.returncode == 0, made.stderr
    result = json.loads(made.stdout)
    assert set(result) == {"validators", "custodians", "nodes", "network"}
    assert len(result["validators"]) == 3
    assert all(set(v) == {"rpc", "pid"} for v in result["validators"])
    assert [set(c) for c in result["custodians"]] == [{"url", "pid"}] * 2
    assert all(c["url"].startswith("http://127.0.0.1:") for c in result["custodians"])
    assert {name: n["kind"] for name, n in result["nodes"].items()} == FOUNDERS
    for name, n in result["nodes"].items():
        assert set(n) == {"kind", "url", "home", "pid"}
        assert n["home"] == str(where.resolve() / "nodes" / name)
    pids = [v["pid"] for v in result["validators"]] + [n["pid"] for n in result["nodes"].values()]
    pids += [c["pid"] for c in result["custodians"]]  # each custodian its own process
    assert all(_alive(pid) for pid in pids), pids
    assert "validators" in made.stderr and "admitted" in made.stderr  # progress on stderr

    # network.json: what a joining institution needs, and no secret.
    network_file = Path(result["network"])
    network = json.loads(network_file.read_text())
    text = network_file.read_text()
    assert network["chain_id"] == 1337
    assert network["rpc_urls"] == [v["rpc"] for v in result["validators"]]
    assert {name: n["url"] for name, n in network["nodes"].items()} == {
        name: n["url"] for name, n in result["nodes"].items()}  # fmt: skip
    secrets = [(where / "admin" / "admin.key").read_text().strip()]
    secrets += [p.read_text().strip() for p in (where / "secrets").iterdir()]
    # admin key, admin, founders' and custodians' passphrases
    assert len(secrets) == 1 + 1 + len(FOUNDERS) + 2
    for secret in secrets:
        assert secret.removeprefix("0x") not in text and secret not in made.stdout
        assert secret not in made.stderr
    for private in [where / "admin" / "admin.key", *(where / "secrets").iterdir()]:
        assert private.stat().st_mode & 0o077 == 0, private
    # Each founding institution's home holds its own key and no admin key.
    for name in FOUNDERS:
        keystore = list((where / "nodes" / name / "keystore").iterdir())
        assert len(keystore) == 1 and network["admin"].lower() not in keystore[0].name.lower()

    status = _healthnft("consortium", "status", "--dir", str(where), "--json", timeout=60)
    assert status.returncode == 0, status.stdout + status.stderr
    health = json.loads(status.stdout)
    assert health["healthy"] and all(v["head"] > 0 for v in health["validators"])
    assert all(n["answering"] for n in health["nodes"].values())
    assert len(health["custodians"]) == 2 and all(c["answering"] for c in health["custodians"])
    assert [c["url"] for c in network["custodians"]] == [c["url"] for c in result["custodians"]]
    for name in FOUNDERS:  # every founder's home knows the custodians' and peers' URLs
        config = json.loads((where / "nodes" / name / "config.json").read_text())
        assert sorted(config["custodian_urls"].values()) == sorted(
            c["url"] for c in result["custodians"])
        assert sorted(config["peers"].values()) == sorted(
            n["url"] for n in result["nodes"].values())
    head_before = max(v["head"] for v in health["validators"])

    # The network is the founders' council's: 3 of 4 admit an institution; the admin
    # home, only the patients' enrolment office, is refused with who decides instead.
    admin_home = str(where / "admin")
    council = _healthnft("--home", admin_home, "governance", "status", "--json", timeout=60)
    assert council.returncode == 0, council.stderr
    view = json.loads(council.stdout)
    assert view["threshold"] == 3 and len(view["council"]) == len(FOUNDERS)
    lab_home = where.parent / "new-lab"
    joined = _healthnft("--home", str(lab_home), "join", str(network_file), "--kind",
                        "research", "--name", "New Lab", "--passphrase", "new-lab-pass",
                        "--json", timeout=60)  # fmt: skip
    assert joined.returncode == 0, joined.stderr
    lab = json.loads(joined.stdout)["address"]
    application = str(lab_home / "application.json")
    alone = _healthnft("--home", admin_home, "participant", "admit", application, timeout=60)
    assert alone.returncode != 0 and "council" in alone.stderr, alone.stderr
    admitted = _healthnft("consortium", "admit", application, "--dir", str(where), "--json",
                          timeout=120)  # fmt: skip
    assert admitted.returncode == 0, admitted.stderr
    assert json.loads(admitted.stdout) == {"address": lab, "kind": "research", "issuer": False,
                                           "custodian": False}  # fmt: skip
    assert admitted.stderr.count("approved by") == 2 * 2  # register, bind-did: 2 more each
    decided = _healthnft("--home", admin_home, "governance", "list", "--json", timeout=60)
    assert [(p["proposal"]["action"], p["proposal"]["state"])
            for p in json.loads(decided.stdout)] == [("bind-did", "executed"),
                                                     ("register", "executed")]  # fmt: skip

    down = _healthnft("consortium", "down", "--dir", str(where), timeout=60)
    assert down.returncode == 0, down.stderr
    assert not any(_alive(pid) for pid in pids)
    stopped = _healthnft("consortium", "status", "--dir", str(where), "--json", timeout=60)
    assert stopped.returncode == 1 and not json.loads(stopped.stdout)["healthy"]

    # Up again: the same chain (blocks kept, same contracts), the homes kept.
    again = _healthnft("consortium", "up", "--dir", str(where), "--custodians", "2", "--json",
                       timeout=120)  # fmt: skip
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert [v["rpc"] for v in second["validators"]] == [v["rpc"] for v in result["validators"]]
    assert json.loads(network_file.read_text())["contracts"] == network["contracts"]
    assert "joining" not in again.stderr  # the homes were kept, not joined again
    health = json.loads(_healthnft("consortium", "status", "--dir", str(where), "--json",
                                   timeout=60).stdout)  # fmt: skip
    assert health["healthy"], health
    assert min(v["head"] for v in health["validators"]) >= head_before
