"""The acceptance flow of issue #13 on the network `consortium up` starts.

Real processes throughout: three geth Clique validators, three custodian services and
four institutions' node services, as `healthnft consortium up` starts them (one `up` for
the module: it is most of the time). A patient joins from its own home and is admitted
by the consortium's enrolment office from the `healthnft:` link its wallet shows
(`wallet card`: public data only); the hospital's operator mints a lab result into the
patient's wallet through the hospital node's web API (a served home holds its writer
lock: its node is the only door); the patient lists, opens (on its own device) and
shares it from its own home (CLI, JSON-RPC backend); the research institute's operator
opens it through the research node's web API, which fetches the ciphertext from the
hospital's node and the key from k of the custodian services. Then the custodian faults
of point 8, on the real processes: one killed still opens, two killed is one clear
error, `up` again restarts them and it opens again. Last, the life cycle a person sees:
what `up` printed and wrote (no secret anywhere), `status`, the founders' council
admitting an institution (3 of 4; the admin home is refused), `down`, and `up` again on
the same chain.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import LAB_OBSERVATION, REPO, need_tool, run_cli

pytestmark = pytest.mark.slow

_PATIENT_PASS = "patient-device-passphrase"
FOUNDERS = {"general-hospital": "hospital", "research-institute": "research",
            "insurer": "insurer", "government": "government"}  # fmt: skip
_HTTP_TIMEOUT_S = 60.0  # an open waits for k custodians' releases, each a block


def _healthnft(*args: str, timeout: float,
               passphrase: str | None = None) -> subprocess.CompletedProcess:  # fmt: skip
    """``healthnft ARGS`` as its own process (this worktree's sources), bounded in time."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    env.pop("HEALTHNFT_PASSPHRASE", None)
    if passphrase is not None:
        env["HEALTHNFT_PASSPHRASE"] = passphrase
    return subprocess.run([sys.executable, "-m", "healthnft.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, check=False)  # fmt: skip


def _at_home(home: Path, *args: str, passphrase: str) -> Any:
    """``healthnft --home HOME ARGS --json`` as its own process (forked from the warm CLI
    server: the imports are most of a short command), its JSON answer."""
    return _json_of(run_cli(home, *args, "--json", env={"HEALTHNFT_PASSPHRASE": passphrase},
                            timeout=120))  # fmt: skip


def _json_of(proc: subprocess.CompletedProcess) -> Any:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _kill_recorded(where: Path) -> None:
    """SIGKILL every recorded process still alive (after `down`, whatever it did)."""
    record = where / "processes.json"
    if not record.exists():
        return
    procs = json.loads(record.read_text())
    pids = [v.get("pid") for v in procs.get("validators", [])]
    pids += [n.get("pid") for n in procs.get("nodes", {}).values()]
    pids += [c.get("pid") for c in procs.get("custodians", [])]
    for pid in pids:
        if pid and _alive(pid):
            os.kill(pid, signal.SIGKILL)


# -- acting as an institution's operator, over its node's web API -----------------------


def _operator_key(where: Path, name: str) -> tuple[str, bytes]:
    """The address and key of founder ``name``, read from its own home's keystore with its
    passphrase: the test acts as that institution's operator, nothing more."""
    from healthnft import keys
    from healthnft.consortium.local import Layout
    from healthnft.home import Home

    layout = Layout(where.resolve())
    files = Home(layout.node_home(name))
    address = files.read_config()["member"]["address"]
    ident = keys.read_keystore(files.keystore_dir, address, layout.passphrase(name))
    return ident.address, bytes(ident.account.key)


def _sign_in(url: str, address: str, key: bytes) -> requests.Session:
    """A session on the node at ``url``, signed in (EIP-4361) with ``key``."""
    from healthnft.api import siwe

    web = requests.Session()
    offer = web.get(f"{url}/api/auth/challenge", params={"address": address},
                    timeout=_HTTP_TIMEOUT_S)  # fmt: skip
    assert offer.status_code == 200, offer.text
    message = offer.json()["message"]
    signed = web.post(f"{url}/api/auth/verify", timeout=_HTTP_TIMEOUT_S,
                      json={"message": message, "signature": siwe.sign(message, key)})  # fmt: skip
    assert signed.status_code == 200, signed.text
    web.headers["Authorization"] = f"Bearer {signed.json()['token']}"
    return web


def _mint_through_node(web: requests.Session, url: str, patient: str, record: Path,
                       timeout_s: float = 120.0) -> list[int]:  # fmt: skip
    """Upload ``record`` for ``patient`` to the hospital node's ``/api/mint`` and poll its
    job until the batch is confirmed on chain; answers the token ids."""
    with record.open("rb") as body:
        started = web.post(f"{url}/api/mint", data={"patient": patient},
                           files={"files": (record.name, body, "application/fhir+json")},
                           timeout=_HTTP_TIMEOUT_S)  # fmt: skip
    assert started.status_code == 200, started.text
    job_id = started.json()["job_id"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = web.get(f"{url}/api/jobs/{job_id}", timeout=_HTTP_TIMEOUT_S).json()
        if job["state"] == "done":
            return list(job["result"]["token_ids"])
        assert job["state"] == "running", job
        time.sleep(0.5)
    raise AssertionError(f"the mint job {job_id} did not finish in {timeout_s} s")


# -- the module's consortium ------------------------------------------------------------


@pytest.fixture(scope="module")
def consortium(tmp_path_factory) -> Any:
    """One `consortium up` (3 validators, 3 custodians, 4 nodes) and a patient admitted."""
    need_tool("geth")
    where = tmp_path_factory.mktemp("flow") / "consortium"
    try:
        started = time.monotonic()
        made = _healthnft("consortium", "up", "--dir", str(where), "--json", timeout=300)
        up = _json_of(made)
        print(f"consortium up: {time.monotonic() - started:.1f} s")  # noqa: T201 - timing
        patient_home = where.parent / "patient"
        joined = _at_home(patient_home, "join", up["network"], "--kind", "patient", "--name",
                          "Pat", passphrase=_PATIENT_PASS)  # fmt: skip
        card = _at_home(patient_home, "wallet", "card", passphrase=_PATIENT_PASS)
        admitted = _json_of(_healthnft("consortium", "admit", card["link"], "--dir", str(where),
                                       "--json", timeout=120))  # the enrolment office, from
        assert admitted["address"] == joined["address"]  # the wallet's link: public data only
        yield {"dir": where, "up": up, "made": made, "patient_home": patient_home,
               "patient": joined["address"]}  # fmt: skip
    finally:
        _healthnft("consortium", "down", "--dir", str(where), timeout=120)
        _kill_recorded(where)


@pytest.fixture(scope="module")
def shared_record(consortium, tmp_path_factory) -> dict[str, Any]:
    """A lab result minted at the hospital's node into the patient's wallet, listed and
    shared with the research institute by the patient from its own home."""
    c = consortium
    hospital_url = c["up"]["nodes"]["general-hospital"]["url"]
    record = tmp_path_factory.mktemp("upload") / "lab.json"
    record.write_text(json.dumps(LAB_OBSERVATION))
    address, key = _operator_key(c["dir"], "general-hospital")
    tokens = _mint_through_node(_sign_in(hospital_url, address, key), hospital_url,
                                c["patient"], record)  # fmt: skip
    assert len(tokens) == 1
    home = c["patient_home"]
    listed = _at_home(home, "wallet", "list", "--owner", c["patient"], passphrase=_PATIENT_PASS)
    assert [(row["token_id"], row["status"]) for row in listed] == [(tokens[0], "at-issuer")]
    # Opened on the patient's device: ciphertext, wrapped key and proof from the hospital's
    # node, checked against the chain here (tests/consortium/test_own_records.py for more).
    opened = _at_home(home, "wallet", "show", str(tokens[0]), passphrase=_PATIENT_PASS)
    assert opened["resource"] == LAB_OBSERVATION and listed[0]["resource_type"] == "Observation"
    research, _ = _operator_key(c["dir"], "research-institute")
    grant = _at_home(home, "share", "--owner", c["patient"], "--to", research, "--purpose",
                     "research", str(tokens[0]), passphrase=_PATIENT_PASS)  # fmt: skip
    return {"token": tokens[0], "grant": grant}


def _research_session(c: dict[str, Any]) -> tuple[requests.Session, str]:
    url = c["up"]["nodes"]["research-institute"]["url"]
    address, key = _operator_key(c["dir"], "research-institute")
    return _sign_in(url, address, key), url


def _open_at_research(c: dict[str, Any], token: int) -> requests.Response:
    web, url = _research_session(c)
    return web.get(f"{url}/api/records/{token}", timeout=_HTTP_TIMEOUT_S)


def test_minted_at_the_hospital_node_opened_at_the_research_node(consortium, shared_record):
    web, url = _research_session(consortium)
    shared = web.get(f"{url}/api/shared", timeout=_HTTP_TIMEOUT_S)  # what its page lists
    assert shared.status_code == 200, shared.text
    assert [(r["token_id"], r.get("held_at_issuer")) for r in shared.json()] == [
        (shared_record["token"], True)]  # fmt: skip
    opened = web.get(f"{url}/api/records/{shared_record['token']}", timeout=_HTTP_TIMEOUT_S)
    assert opened.status_code == 200, opened.text
    view = opened.json()
    assert view["owned"] is False and view["token_id"] == shared_record["token"]
    assert view["resource"] == LAB_OBSERVATION  # the plaintext minted, byte for value
    assert view["verification"]["valid"], view["verification"]
    # Each custodian that released a share logged it on chain: k = 2 of the 3.
    research, _ = _operator_key(consortium["dir"], "research-institute")
    logged = _releases_of(consortium, shared_record["token"], at_least=2)
    assert len({r["custodian"] for r in logged}) >= 2
    assert {r["grantee"].lower() for r in logged} == {research.lower()}


def test_a_category_grant_lists_records_held_at_another_node(consortium, shared_record):
    """A category grant names no token, and only the hospital's node knows the category of
    the record it holds: the insurer's node asks its peers (as the grantee, with a
    presentation) and lists the patient's lab result with its coarse metadata, then
    opens it. A peer asked about a grant that is not the asker's answers nothing."""
    c = consortium
    insurer, key = _operator_key(c["dir"], "insurer")
    _at_home(c["patient_home"], "share", "--owner", c["patient"], "--to", insurer,
             "--purpose", "insurance", "--category", "laboratory",
             passphrase=_PATIENT_PASS)  # fmt: skip
    url = c["up"]["nodes"]["insurer"]["url"]
    web = _sign_in(url, insurer, key)
    shared = web.get(f"{url}/api/shared", timeout=_HTTP_TIMEOUT_S)
    assert shared.status_code == 200, shared.text
    rows = {r["token_id"]: r for r in shared.json()}
    assert set(rows) == {shared_record["token"]}
    row = rows[shared_record["token"]]
    assert (row["category"], row["resource_type"], row["owner"].lower()) == (
        "laboratory", "Observation", c["patient"].lower())  # fmt: skip
    assert row["purpose"] == "insurance" and not row.get("held_at_issuer")
    opened = web.get(f"{url}/api/records/{shared_record['token']}", timeout=_HTTP_TIMEOUT_S)
    assert opened.status_code == 200, opened.text
    assert opened.json()["resource"] == LAB_OBSERVATION
    # The research institute asks the hospital's node about the insurer's grant: refused.
    research_web, _ = _research_session(c)
    hospital_url = c["up"]["nodes"]["general-hospital"]["url"]
    offer = research_web.get(f"{hospital_url}/node/v1/challenge", timeout=_HTTP_TIMEOUT_S)
    assert offer.status_code == 200
    foreign = research_web.post(f"{hospital_url}/node/v1/grants/{row['grant_id']}/records",
                                json={"requester": insurer, "presentation": "x.y.z"},
                                timeout=_HTTP_TIMEOUT_S)  # fmt: skip
    assert foreign.status_code in (400, 401, 403), foreign.text
    assert "laboratory" not in foreign.text and "Observation" not in foreign.text


def _releases(c: dict[str, Any]) -> list[dict[str, Any]]:
    """The key releases logged on chain for the patient's records (its own home reads them)."""
    return _at_home(c["patient_home"], "access-log", "--owner", c["patient"],
                    passphrase=_PATIENT_PASS)


def _releases_of(c: dict[str, Any], token: int, at_least: int) -> list[dict[str, Any]]:
    """The releases of ``token`` logged on chain, once there are ``at_least``: a custodian
    service releases as soon as the node accepted its log and gets it mined after (about
    a block), so the log of an open that just ended may still be on its way."""
    deadline = time.monotonic() + 60
    while True:
        logged = [r for r in _releases(c) if r["token_id"] == token]
        if len(logged) >= at_least or time.monotonic() > deadline:
            return logged
        time.sleep(0.5)


def _settled_releases(c: dict[str, Any], quiet_s: float = 3.0) -> list[dict[str, Any]]:
    """The releases logged on chain once no more are on their way: a custodian service
    logs after it released (about a block later), and an earlier test's opens may still
    be landing; the list is taken when it has not changed for ``quiet_s``."""
    deadline = time.monotonic() + 60
    logged, since = _releases(c), time.monotonic()
    while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
        time.sleep(0.5)
        now = _releases(c)
        if now != logged:
            logged, since = now, time.monotonic()
    return logged


def _kill_custodian(c: dict[str, Any], index: int) -> None:
    pid = c["up"]["custodians"][index]["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def test_custodian_faults_on_the_consortium(consortium, shared_record):
    """One of three custodian processes killed: it still opens (2 of 3). Two killed: one
    clear error, no release logged. `consortium up` again restarts them (one on a new
    port, its old one taken meanwhile): it opens again."""
    c, token = consortium, shared_record["token"]
    _kill_custodian(c, 0)
    logged_before = len([r for r in _settled_releases(c) if r["token_id"] == token])
    still = _open_at_research(c, token)
    assert still.status_code == 200, still.text
    assert still.json()["resource"] == LAB_OBSERVATION
    assert len(_releases_of(c, token, at_least=logged_before + 2)) >= logged_before + 2  # k=2

    _kill_custodian(c, 1)
    releases = _releases(c)
    failed = _open_at_research(c, token)
    assert failed.status_code == 503, failed.text
    problem = failed.json()
    assert "custodians needed answered" in problem["detail"], problem
    time.sleep(3)  # a few blocks: a log on its way would have landed
    assert _releases(c) == releases  # nothing changed: no key release logged on chain

    # Something else took both killed custodians' ports meanwhile: they come back on other
    # ports, and the nodes (which read their configuration at start) must learn them: two
    # of three are needed, so the open below reaches at least one at its new URL.
    before = [row["url"] for row in c["up"]["custodians"]]
    with contextlib.ExitStack() as squatters:
        for url in before[:2]:
            squatter = squatters.enter_context(socket.socket())
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
            squatter.bind(("127.0.0.1", int(url.rsplit(":", 1)[1])))
            squatter.listen()
        again = _json_of(_healthnft("consortium", "up", "--dir", str(c["dir"]), "--json",
                                    timeout=300))  # fmt: skip
        after = [row["url"] for row in again["custodians"]]
        assert all(_alive(row["pid"]) for row in again["custodians"])
        assert after[0] not in before and after[1] not in before and after[2] == before[2]
        reopened = _open_at_research(c, token)
    assert reopened.status_code == 200, reopened.text
    assert reopened.json()["resource"] == LAB_OBSERVATION


def test_up_status_governance_down_and_up_again_keep_the_chain(consortium):
    """What `up` printed and wrote (no secret anywhere), `status`, the founders' council
    admitting an institution, `down` stopping everything, `up` again on the same chain.
    Last in this module: it stops and restarts the whole consortium."""
    where, made = consortium["dir"], consortium["made"]
    # What runs now (the faults test restarted custodians): `up` with all running starts
    # nothing and reports it.
    current = _healthnft("consortium", "up", "--dir", str(where), "--json", timeout=300)
    assert "already running" in current.stderr, current.stderr
    result = _json_of(current)
    assert set(result) == {"validators", "custodians", "nodes", "network"}
    assert len(result["validators"]) == 3
    assert all(set(v) == {"rpc", "pid"} for v in result["validators"])
    assert [set(c) for c in result["custodians"]] == [{"url", "pid"}] * 3
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
    assert len(secrets) == 1 + 1 + len(FOUNDERS) + 3
    for secret in secrets:
        assert secret.removeprefix("0x") not in text and secret not in made.stdout
        assert secret not in made.stderr
    for private in [where / "admin" / "admin.key", *(where / "secrets").iterdir()]:
        assert private.stat().st_mode & 0o077 == 0, private
    # Each founding institution's home holds its own key and no admin key.
    for name in FOUNDERS:
        keystore = list((where / "nodes" / name / "keystore").iterdir())
        assert len(keystore) == 1 and network["admin"].lower() not in keystore[0].name.lower()
    # Guardian recovery out of the box: a founder's home finds the contract (no recovery yet).
    founder = where / "nodes" / next(iter(FOUNDERS))
    assert _at_home(founder, "recovery", "status", passphrase="unused") == []

    status = _healthnft("consortium", "status", "--dir", str(where), "--json", timeout=60)
    assert status.returncode == 0, status.stdout + status.stderr
    health = json.loads(status.stdout)
    assert health["healthy"] and all(v["head"] > 0 for v in health["validators"])
    assert all(n["answering"] for n in health["nodes"].values())
    assert len(health["custodians"]) == 3 and all(c["answering"] for c in health["custodians"])
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
    again = _healthnft("consortium", "up", "--dir", str(where), "--json", timeout=300)
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert [v["rpc"] for v in second["validators"]] == [v["rpc"] for v in result["validators"]]
    assert json.loads(network_file.read_text())["contracts"] == network["contracts"]
    assert "joining" not in again.stderr  # the homes were kept, not joined again
    health = json.loads(_healthnft("consortium", "status", "--dir", str(where), "--json",
                                   timeout=60).stdout)  # fmt: skip
    assert health["healthy"], health
    assert min(v["head"] for v in health["validators"]) >= head_before
