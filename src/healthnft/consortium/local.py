"""``consortium up|status|down``: a whole network on one machine, each part its own process.

Layout of ``DIR``::

    DIR/chain/           the validators (geth Clique, see healthnft.ledger.nodes)
    DIR/admin/           the admin's home (deployed the contracts; admin.key: its secret, 0600)
    DIR/nodes/NAME/      one home per founding institution, joined and admitted;
                         serve.log: its node service's output
    DIR/secrets/         one generated passphrase per home (0600): a local demo network
    DIR/network.json     what a joining institution needs; no secret
    DIR/processes.json   every process started, with its pid and start time

Once the founders and custodians are admitted, ``up`` hands the network to the founders'
council (3 of the 4 approve each membership change, see :mod:`.council`), naming the admin
home the patients' enrolment office first: from then on ``consortium admit`` admits an
institution with three founders' keys, and the admin home admits patients only.

``up`` is safe to run again: it keeps the chain and the homes and starts only what is
not running (when some validators run and others do not, all of them are restarted
together, on the same chain). A service restarted on another port (its old one taken)
is announced to every node: a node service reads its home's configuration once, at
start, so one whose custodians or peers moved is stopped, updated and started again.
``down`` stops every recorded process, nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from healthnft.consortium.membership import (
    APPLICATION_FILE,
    Admitted,
    admit,
    join,
    network_document,
    read_application,
    read_json_file,
)
from healthnft.consortium.processes import Proc, spawn_detached, stop_all
from healthnft.errors import InvalidInput, Unavailable
from healthnft.home import Home, write_private

#: The founding institutions: (home folder and key in network.json, kind, label in its home).
FOUNDERS = (
    ("general-hospital", "hospital", "General Hospital"),
    ("research-institute", "research", "Research Institute"),
    ("insurer", "insurer", "Health Insurer"),
    ("government", "government", "Health Ministry"),
)
DEFAULT_CHAIN_ID = 1337
#: Founders' approvals each membership change needs (of the four).
COUNCIL_THRESHOLD = 3
_ADMIN_FUNDS_WEI = 10**27
_NODE_START_S = 90.0

Say = Callable[[str], None]


@dataclass(frozen=True)
class Layout:
    """Where a local consortium keeps what (one place knows the layout)."""

    root: Path

    @property
    def chain(self) -> Path:
        return self.root / "chain"

    @property
    def admin_home(self) -> Path:
        return self.root / "admin"

    @property
    def admin_key(self) -> Path:
        return self.admin_home / "admin.key"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def network_file(self) -> Path:
        return self.root / "network.json"

    @property
    def processes_file(self) -> Path:
        return self.root / "processes.json"

    def node_home(self, name: str) -> Path:
        return self.root / "nodes" / name

    def passphrase(self, name: str) -> str:
        """The home ``name``'s passphrase, generated (0600) the first time."""
        import secrets

        self.secrets.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.secrets / f"{name}.passphrase"
        if not path.exists():
            write_private(path, secrets.token_urlsafe(24).encode())
        return path.read_text().strip()

    def read_processes(self) -> dict[str, Any]:
        if not self.processes_file.exists():
            return {"validators": [], "custodians": [], "nodes": {}}
        return read_json_file(self.processes_file, "process list")

    def write_processes(self, doc: dict[str, Any]) -> None:
        write_private(self.processes_file, (json.dumps(doc, indent=2) + "\n").encode())


# -- up ---------------------------------------------------------------------------------


def up(root: Path, *, validators: int = 3, custodians: int = 3,
       chain_id: int = DEFAULT_CHAIN_ID, say: Say = lambda _m: None) -> dict[str, Any]:  # fmt: skip
    """Start (or complete) the consortium in ``root``; answers what runs where."""
    if not 1 <= validators <= 16:
        raise InvalidInput("--validators must be from 1 to 16")
    if not 0 <= custodians <= 16:
        raise InvalidInput("--custodians must be from 0 to 16")
    where = Layout(Path(root).resolve())
    where.root.mkdir(parents=True, exist_ok=True)
    procs = where.read_processes()
    admin_secret = _admin_secret(where)
    rpc_urls, procs["validators"] = _validators(where, procs, validators, chain_id,
                                                admin_secret, say)  # fmt: skip
    where.write_processes(procs)
    admin_net = _admin_network(where, rpc_urls[0], admin_secret, say)
    try:
        doc = network_document(admin_net, rpc_urls=rpc_urls)
        # The founders join and are admitted in threads (each a few blocks) while this
        # thread registers the custodians: only the admin's transactions are shared
        # (one nonce manager per connection), never a home's files.
        with ThreadPoolExecutor(len(FOUNDERS), thread_name_prefix="join") as pool:
            joining = [pool.submit(_join_and_admit, where, admin_net, doc, name, kind, label,
                                   rpc_urls[i % len(rpc_urls)], say)
                       for i, (name, kind, label) in enumerate(FOUNDERS)]  # fmt: skip
            recorded, custodian_rows = procs.get("custodians", []), []
            try:
                _custodian_services(where, admin_net, custodians, recorded, custodian_rows,
                                    say)  # fmt: skip
            finally:
                procs["custodians"] = custodian_rows or recorded
                where.write_processes(procs)  # `down` stops whatever started
                for job in joining:
                    job.result()  # the first failure, after all have ended
        public = [{"url": c["url"], "address": c["address"]} for c in custodian_rows]
        doc = network_document(admin_net, rpc_urls=rpc_urls, custodians=public)
        listed = [c["address"] for c in custodian_rows]
        urls = {c["address"]: c["url"] for c in custodian_rows}
        for name, _kind, _label in FOUNDERS:  # joined homes seal key shares for them
            home = Home(where.node_home(name))
            config = home.read_config()
            if config.get("custodians") != listed or config.get("custodian_urls") != urls:
                _stop_node_service(procs.get("nodes", {}).get(name))
                home.update_config(custodians=listed, custodian_urls=urls)
        _hand_over(where, admin_net, say)
        _ensure_recovery(where, admin_net, say)
    finally:
        admin_net.close()
    procs["nodes"], started = _start_node_services(where, procs.get("nodes", {}), say)
    where.write_processes(procs)  # recorded before the wait: `down` stops them whatever comes
    _await_node_services(procs["nodes"], started)
    _write_network_file(where, doc, procs["nodes"])
    return _report(where, procs, custodian_rows)


def _admin_secret(where: Layout) -> bytes:
    """The admin's key, generated once and kept 0600 in the admin home (never printed)."""
    from healthnft import keys

    where.admin_home.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not where.admin_key.exists():
        write_private(where.admin_key, keys.new_secret().hex().encode())
    return bytes.fromhex(where.admin_key.read_text().strip())


def _manifest_urls(where: Layout) -> list[str] | None:
    manifest = where.chain / "clique.json"
    if not manifest.exists():
        return None
    doc = json.loads(manifest.read_text())
    return [f"http://127.0.0.1:{v['http_port']}" for v in doc["validators"]]


def _validators(
    where: Layout, procs: dict[str, Any], count: int, chain_id: int, admin_secret: bytes,
    say: Say,
) -> tuple[list[str], list[dict[str, Any]]]:
    """The validators' RPC URLs and process records, starting them when needed."""
    from healthnft import keys
    from healthnft.ledger.nodes import CliqueNetwork

    recorded = [Proc.from_dict(v) for v in procs.get("validators", [])]
    urls = _manifest_urls(where)
    if urls is not None and len(urls) == count and recorded and len(recorded) == count \
            and all(p is not None and p.alive() for p in recorded):  # fmt: skip
        say(f"validators: {count} already running")
        return urls, procs["validators"]
    left = stop_all([p for p in recorded if p is not None])  # a partial set: restart all
    if left:
        raise Unavailable(f"validator processes {[p.pid for p in left]} did not stop")
    say(f"validators: starting {count} (geth Clique) in {where.chain}")
    admin = keys.identity_from_secret(admin_secret).address
    try:
        net = CliqueNetwork.start(where.chain, validators=count, chain_id=chain_id,
                                  alloc={admin: _ADMIN_FUNDS_WEI}, period_s=1)  # fmt: skip
    except ValueError as exc:
        raise InvalidInput(f"{exc}: give the same --validators and --chain-id as the first "
                           "`consortium up`, or another --dir") from None  # fmt: skip
    rows = [{"rpc": v.rpc_url, **Proc.of(v.node.pid).as_dict()}
            for v in net.validators if v.node is not None]  # fmt: skip
    say(f"validators: {count} sealing, heads {net.heads()}")
    return net.rpc_urls, rows


def _admin_network(where: Layout, rpc_url: str, admin_secret: bytes, say: Say) -> Any:
    from healthnft.network import Network

    passphrase = where.passphrase("admin")
    if Home(where.admin_home).exists():
        net = Network.open(where.admin_home)
    else:
        say("admin home: deploying the contracts (a few blocks)")
        net = Network.create(where.admin_home, passphrase, rpc_url=rpc_url,
                             admin_secret=admin_secret, confirmations=1)  # fmt: skip
    net.remember_keys = True  # the admin key is unlocked once (scrypt), not per step
    return net


def _custodian_services(where: Layout, admin_net: Any, count: int,
                        recorded: list[dict[str, Any]], rows: list[dict[str, Any]],
                        say: Say) -> None:  # fmt: skip
    """Each key custodian in its own home (``DIR/custodians/custodianN``, its key made by
    its own ``custodian init`` process and kept only there), registered by the admin
    with its URL, and served by its own ``custodian serve`` process. A custodian still
    running is kept; one that stopped is restarted on its earlier port when free.

    Making the homes and enrolling them on chain is a process start and a few blocks
    each, independent of one another: done in threads, so ``up`` waits for the slowest,
    not for the sum. Their URLs are then written in split order (custodian1 first)."""
    from healthnft.ledger.nodes import free_port

    admin_pass = where.passphrase("admin")
    with ThreadPoolExecutor(max(count, 1), thread_name_prefix="custodian") as pool:
        ready = list(pool.map(lambda i: _prepare_custodian(where, admin_net, i, say),
                              range(count)))  # fmt: skip
    for i, (home, address, enc_key) in enumerate(ready):
        old = recorded[i] if i < len(recorded) else {}
        proc = Proc.from_dict(old)
        if proc is not None and proc.alive() and answers(old["url"] + "/challenge"):
            rows.append(old)
            continue
        port = int(old["port"]) if old.get("port") and _port_free(int(old["port"])) \
            else free_port()  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        admin_net.add_remote_custodian(address, enc_key, url, passphrase=admin_pass)
        env = {**os.environ, "HEALTHNFT_PASSPHRASE": where.passphrase(home.name)}
        argv = [sys.executable, "-m", "healthnft.cli", "--home", str(home), "custodian",
                "serve", "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
        started = spawn_detached(argv, home / "serve.log", env)
        rows.append({"url": url, "address": address, "home": str(home), "port": port,
                     **started.as_dict()})  # fmt: skip
    deadline = time.monotonic() + _NODE_START_S
    for row in rows:
        while not answers(row["url"] + "/challenge"):
            proc = Proc.from_dict(row)
            if proc is None or not proc.alive() or time.monotonic() > deadline:
                tail = _tail(Path(row["home"]) / "serve.log")
                raise Unavailable(f"the custodian service at {row['url']} did not start: {tail}")
            time.sleep(0.2)
    if count:
        say(f"custodians: {count} services, each with its own home and key")


def _prepare_custodian(where: Layout, admin_net: Any, index: int,
                       say: Say) -> tuple[Path, str, bytes]:  # fmt: skip
    """Custodian ``index``'s home (made by its own ``custodian init`` process the first
    time), enrolled on chain by the admin; answers its home, address and encryption key.
    Touches no home's files but its own (safe in a thread beside the others)."""
    name = f"custodian{index + 1}"
    home = where.root / "custodians" / name
    if not Home(home).exists():
        say(f"{name}: creating its home and key")
        env = {**os.environ, "HEALTHNFT_PASSPHRASE": where.passphrase(name)}
        made = subprocess.run(
            [sys.executable, "-m", "healthnft.cli", "--home", str(home), "custodian",
             "init", "--network", str(Home(where.admin_home).config_path), "--json"],
            env=env, capture_output=True, text=True, timeout=_NODE_START_S)  # fmt: skip
        if made.returncode != 0:
            raise Unavailable(f"{name} could not be created: "
                              f"{made.stderr.strip().splitlines()[-1:]}")  # fmt: skip
    address = Home(home).read_config()["custodian"]
    _, _, enc_key = admin_net.ledger.participant(address)
    if enc_key == bytes(32):  # not registered yet: its key from its own keystore file
        enc_key = bytes.fromhex(_custodian_enc_key(home, where.passphrase(name)))
    admin_net.enroll_custodian(address, enc_key, passphrase=where.passphrase("admin"))
    return home, address, enc_key


def _custodian_enc_key(home: Path, passphrase: str) -> str:
    """A custodian's encryption key (hex), read with its passphrase from its own home."""
    from healthnft import keys

    files = Home(home)
    address = files.read_config()["custodian"]
    return keys.read_keystore(files.keystore_dir, address, passphrase).enc_public.hex()


def _join_and_admit(where: Layout, admin_net: Any, doc: dict[str, Any], name: str, kind: str,
                    label: str, rpc_url: str, say: Say) -> None:  # fmt: skip
    home = where.node_home(name)
    if not Home(home).exists():
        say(f"{name}: joining as a {kind} (node {rpc_url})")
        join(home, where.passphrase(name), doc, kind, label, rpc_url=rpc_url)
    application = read_json_file(home / APPLICATION_FILE, "membership application")
    done = _admit(where, admin_net, application, say)
    say(f"{name}: admitted {done.address}")


def _founder_accounts(where: Layout) -> list[Any]:
    """The founders' signing keys, each read from its own home with its own passphrase
    (what each institution's operator does on its side of a real consortium)."""
    from healthnft import keys

    accounts = []
    for name, _kind, _label in FOUNDERS:
        files = Home(where.node_home(name))
        address = files.read_config()["member"]["address"]
        accounts.append(keys.read_keystore(files.keystore_dir, address,
                                           where.passphrase(name)).account)  # fmt: skip
    return accounts


def _hand_over(where: Layout, admin_net: Any, say: Say) -> None:
    from healthnft.consortium.council import hand_over
    from healthnft.ledger.governance import Governance

    if Governance.of(admin_net.ledger) is not None:
        return
    admin = admin_net.admin(where.passphrase("admin"), to="hand the network over")
    council = [a.address for a in _founder_accounts(where)]
    gov = hand_over(admin_net.ledger, admin.account, council, COUNCIL_THRESHOLD,
                    registrar=admin.address,
                    evm_version=admin_net.config.get("evm_version"))  # fmt: skip
    say(f"governance: the network is the founders' council's ({gov.threshold()} of "
        f"{len(council)}); the admin home enrols patients only")


def _ensure_recovery(where: Layout, admin_net: Any, say: Say) -> None:
    """Guardian recovery on a consortium made before new homes installed it: deployed
    with the admin's key, named in the registry by the council (k founders approve a
    ``set-recovery`` proposal), or by the admin while no council owns the network.
    A rerun finds the contract named (nothing to do) or its proposal pending (approved,
    not proposed again)."""
    from healthnft.ledger.governance import Governance
    from healthnft.ledger.recovery import GuardianRecovery

    ledger = admin_net.ledger
    if GuardianRecovery.of(ledger) is not None:
        return
    admin = admin_net.admin(where.passphrase("admin"), to="install guardian recovery")
    evm = admin_net.config.get("evm_version")
    options = {"evm_version": evm} if evm else {}
    gov = Governance.of(ledger)
    if gov is None:
        GuardianRecovery.install(ledger, admin.account, **options)
        say("guardian recovery: installed")
        return
    founders = _founder_accounts(where)
    pending = [p for p in gov.proposals("pending") if p.action == "set-recovery" and p.number]
    if pending:
        pid = pending[0].proposal_id
        executed = False
    else:
        rec = GuardianRecovery.deploy(ledger, admin.account, **options)
        pid = gov.propose(founders[0], "set-recovery", rec.address, flag=True)
        executed = gov.proposal(pid).state == "executed"
    for signer in founders:
        if executed:
            break
        if not gov.has_approved(pid, signer.address):
            executed = gov.approve(signer, pid)
    say("guardian recovery: named by the council" if executed
        else "guardian recovery: proposed to the council, awaiting approvals")  # fmt: skip


def _admit(where: Layout, admin_net: Any, application: dict[str, Any], say: Say) -> Admitted:
    """Admit ``application``: by the admin key while no council owns the network (and for
    patients, as their enrolment office); an institution by three founders' keys."""
    from healthnft.consortium.council import admit_by_council
    from healthnft.consortium.membership import check_application
    from healthnft.ledger.governance import Governance

    address, kind, enc, did = check_application(admin_net, application)
    gov = Governance.of(admin_net.ledger)
    if gov is None or kind == "patient":
        return admit(admin_net, application, passphrase=where.passphrase("admin"))
    admit_by_council(gov, _founder_accounts(where), address, kind, enc, did, say=say)
    admin = admin_net.admin(where.passphrase("admin"), to="pay for the member's gas")
    admin_net.fund_member(admin, address)
    return Admitted(address, kind, admin_net.ledger.is_issuer(address), kind == "custodian")


def admit_application(root: Path, application_file: str | Path,
                      say: Say = lambda _m: None) -> Admitted:  # fmt: skip
    """``consortium admit``: the applicant of ``application_file`` admitted to the local
    consortium in ``root`` (institutions by three founders' approvals, patients by the
    admin home as enrolment office). Running it again finishes what was interrupted."""
    where = Layout(Path(root).resolve())
    if not Home(where.admin_home).exists():
        raise InvalidInput(f"no consortium in {where.root} (run `healthnft consortium up`)")
    application = read_application(application_file)  # a file or a healthnft: link
    net = _admin_network(where, "", b"", say)
    try:
        return _admit(where, net, application, say)
    finally:
        net.close()


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def answers(url: str, timeout_s: float = 2.0) -> bool:
    """Whether an HTTP service answers at ``url`` (any status below 500)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - loopback URL we wrote
            return int(resp.status) < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (OSError, ValueError):
        return False


def _start_node_services(where: Layout, recorded: dict[str, Any],
                         say: Say) -> tuple[dict[str, Any], list[str]]:  # fmt: skip
    """One ``healthnft serve`` per founding institution, started unless it runs already
    (on its earlier port when that is free); answers every node's record and the names
    of those started now."""
    from healthnft.ledger.nodes import free_port

    rows: dict[str, Any] = {}
    starting: list[tuple[str, str, int]] = []
    for name, kind, _label in FOUNDERS:
        old = recorded.get(name) or {}
        proc = Proc.from_dict(old)
        if proc is not None and proc.alive() and answers(old["url"]):
            rows[name] = old
            continue
        port = int(old["port"]) if old.get("port") and _port_free(int(old["port"])) \
            else free_port()  # fmt: skip
        rows[name] = {"kind": kind, "url": f"http://127.0.0.1:{port}",
                      "home": str(where.node_home(name)), "port": port}  # fmt: skip
        starting.append((name, kind, port))
    for name in _introduce_peers(rows):  # running, but its peers moved: started again
        row = rows[name]
        starting.append((name, row["kind"], int(row["port"])))
    started: list[str] = []
    for name, _kind, port in starting:
        home = where.node_home(name)
        argv = [sys.executable, "-m", "healthnft.cli", "--home", str(home), "serve",
                "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
        env = {**os.environ, "HEALTHNFT_PASSPHRASE": where.passphrase(name)}
        proc = spawn_detached(argv, home / "serve.log", env)
        rows[name].update(proc.as_dict())
        started.append(name)
    if started:
        say(f"nodes: starting {len(started)} node service(s): {', '.join(started)}")
    return rows, started


def _stop_node_service(row: dict[str, Any] | None) -> None:
    """Stop a running node service before its home's configuration changes: a served home
    has one writer (its service), which reads the configuration once, at start; the
    service is started again, on the same port, by :func:`_start_node_services`."""
    proc = Proc.from_dict(row)
    if proc is not None and proc.alive() and stop_all([proc]):
        raise Unavailable(f"node service {proc.pid} did not stop")


def _introduce_peers(rows: dict[str, Any]) -> list[str]:
    """Tell every founder's home where each founder's node answers (its ``peers``: member
    address -> URL), so a grantee fetches a record from the node that minted it. Written
    while no service runs over the home (see :func:`_stop_node_service`); answers the
    names of running services that were stopped for it (a peer came back on a new port)."""
    from healthnft.home import Home

    members: dict[str, str] = {}
    for row in rows.values():
        config = Home(Path(row["home"])).read_config()
        address = (config.get("member") or {}).get("address")
        if address:
            row["address"] = address
            members[address] = row["url"]
    stopped: list[str] = []
    for name, row in rows.items():
        files = Home(Path(row["home"]))
        config = files.read_config()
        if config.get("peers") != members:
            if Proc.from_dict(row) is not None:
                _stop_node_service(row)
                stopped.append(name)
            files.write_config({**config, "peers": members})
    return stopped


def _await_node_services(rows: dict[str, Any], started: list[str]) -> None:
    """Until every node started now answers; its log's tail when one dies first."""
    deadline = time.monotonic() + _NODE_START_S
    for name in started:
        row, proc = rows[name], Proc(rows[name]["pid"], rows[name]["started"])
        while not answers(row["url"]):
            if not proc.alive() or time.monotonic() > deadline:
                tail = _tail(Path(row["home"]) / "serve.log")
                raise Unavailable(f"the node service of {name} did not start: {tail}")
            time.sleep(0.2)


def _tail(path: Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:]) or "(empty log)"
    except OSError:
        return "(no log)"


def _write_network_file(where: Layout, doc: dict[str, Any], nodes: dict[str, Any]) -> None:
    public = {**doc, "nodes": {name: {"kind": row["kind"], "url": row["url"],
                                      "address": row.get("address")}
                               for name, row in nodes.items()}}  # fmt: skip
    where.network_file.write_text(json.dumps(public, indent=2) + "\n")


def _report(where: Layout, procs: dict[str, Any],
            custodian_rows: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    return {
        "validators": [{"rpc": v["rpc"], "pid": v["pid"]} for v in procs["validators"]],
        "custodians": [{"url": c["url"], "pid": c.get("pid")} for c in custodian_rows],
        "nodes": {name: {"kind": r["kind"], "url": r["url"], "home": r["home"], "pid": r["pid"]}
                  for name, r in procs["nodes"].items()},  # fmt: skip
        "network": str(where.network_file),
    }


# -- status and down ---------------------------------------------------------------------


def status(root: Path) -> dict[str, Any]:
    """Each recorded process alive?, each validator's head, each node answering?"""
    from healthnft.ledger.nodes import rpc_call

    where = Layout(Path(root).resolve())
    if not where.processes_file.exists():
        raise InvalidInput(f"no consortium in {where.root}: run `healthnft consortium up "
                           f"--dir {root}`")  # fmt: skip
    procs = where.read_processes()
    vals = []
    for v in procs.get("validators", []):
        proc = Proc.from_dict(v)
        head = -1
        if proc is not None and proc.alive():
            with contextlib.suppress(Unavailable, ValueError):
                head = int(rpc_call(v["rpc"], "eth_blockNumber", timeout_s=2.0), 16)
        vals.append({"rpc": v["rpc"], "pid": v.get("pid"),
                     "alive": bool(proc and proc.alive()), "head": head})  # fmt: skip
    nodes = {}
    for name, r in procs.get("nodes", {}).items():
        proc = Proc.from_dict(r)
        alive = bool(proc and proc.alive())
        nodes[name] = {"kind": r["kind"], "url": r["url"], "pid": r.get("pid"), "alive": alive,
                       "answering": alive and answers(r["url"])}  # fmt: skip
    custodians = []
    for r in procs.get("custodians", []):
        proc = Proc.from_dict(r)
        alive = bool(proc and proc.alive())
        custodians.append({"url": r.get("url"), "pid": r.get("pid"), "alive": alive,
                           "answering": alive and answers(f"{r.get('url')}/challenge")})
    healthy = bool(vals) and all(v["alive"] and v["head"] >= 0 for v in vals) and bool(
        nodes) and all(n["answering"] for n in nodes.values()) and all(
        c["answering"] for c in custodians)  # fmt: skip
    return {"healthy": healthy, "validators": vals, "custodians": custodians, "nodes": nodes,
            "network": str(where.network_file)}  # fmt: skip


def down(root: Path, timeout_s: float = 10.0) -> dict[str, Any]:
    """Stop every recorded process (node services first, then the validators)."""
    where = Layout(Path(root).resolve())
    if not where.processes_file.exists():
        return {"stopped": 0, "still_alive": []}
    procs = where.read_processes()
    services = [Proc.from_dict(r) for r in [*procs.get("nodes", {}).values(),
                                            *procs.get("custodians", [])]]  # fmt: skip
    validators = [Proc.from_dict(v) for v in procs.get("validators", [])]
    live = [p for p in [*services, *validators] if p is not None and p.alive()]
    left = stop_all([p for p in services if p is not None], timeout_s)
    from healthnft.ledger.nodes import halt_sealing

    halt_sealing([v["rpc"] for v, p in zip(procs.get("validators", []), validators, strict=True)
                  if p is not None and p.alive() and v.get("rpc")])  # fmt: skip
    left += stop_all([p for p in validators if p is not None], timeout_s)
    if left:
        raise Unavailable(f"processes {[p.pid for p in left]} did not stop")
    return {"stopped": len(live), "still_alive": []}
