"""Real EVM node processes on loopback: anvil (the fast single node) and geth Clique.

Why here: the consortium, its tests and its benchmark all start real nodes installed
by ``make nodes`` (nothing downloads at run time). Each node is a child process with
its own data directory, started on a free port and awaited until its JSON-RPC
answers; :class:`NodeProcess` stops it (SIGTERM, then SIGKILL) and never leaves it
behind. Written by hand: no library starts these two clients.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from healthnft.errors import NotFound, Unavailable

#: Where ``make nodes`` installs the clients (repository root / .tools).
TOOLS_DIR = Path(__file__).resolve().parents[3] / ".tools"
_TOOL_PATHS = {
    "geth": ("HEALTHNFT_GETH", TOOLS_DIR / "bin" / "geth"),
    "anvil": (
        "HEALTHNFT_ANVIL",
        TOOLS_DIR / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil",
    ),
}


def tool_path(name: str) -> Path:
    """The installed client ``name`` (``geth`` or ``anvil``): $HEALTHNFT_GETH /
    $HEALTHNFT_ANVIL, else ``.tools/`` from ``make nodes``, else on PATH."""
    env, default = _TOOL_PATHS[name]
    if os.environ.get(env):
        chosen = Path(os.environ[env])
        if not chosen.is_file():
            raise NotFound(f"{env} names {chosen}, which is not a file: fix it or unset it")
        return chosen
    if default.exists():
        return default
    found = shutil.which(name)
    if found:
        return Path(found)
    raise NotFound(f"{name} is not installed: run `make nodes` (or set {env})")


def free_port() -> int:
    """A TCP port nobody listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rpc_call(url: str, method: str, params: list | None = None, timeout_s: float = 5.0) -> Any:
    """One JSON-RPC call; :class:`Unavailable` when the node does not answer."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    req = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            answer = json.loads(resp.read())
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise Unavailable(f"the node at {url} does not answer ({type(exc).__name__})") from None
    if "error" in answer:
        raise Unavailable(f"the node at {url} refused {method}: {answer['error'].get('message')}")
    return answer["result"]


@dataclass
class NodeProcess:
    """One running client: its process, JSON-RPC URL, data directory and log file."""

    name: str
    process: subprocess.Popen
    rpc_url: str
    data_dir: Path
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Until the JSON-RPC answers ``eth_chainId``; the log's tail when it dies first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise Unavailable(f"{self.name} exited at start-up: {self.log_tail()}")
            with contextlib.suppress(Unavailable):
                rpc_call(self.rpc_url, "eth_chainId", timeout_s=1.0)
                return
            time.sleep(0.05)
        self.stop()
        raise Unavailable(f"{self.name} did not answer within {timeout_s:.0f} s: {self.log_tail()}")

    def log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``; idempotent."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout_s)

    def kill(self) -> None:
        """SIGKILL at once: a crash, for fault tests."""
        if self.alive():
            self.process.kill()
            self.process.wait(timeout=10)


def spawn(name: str, argv: list[str], rpc_url: str, data_dir: Path) -> NodeProcess:
    """Start ``argv`` with its output in ``data_dir/NAME.log``, in its own process group
    (a Ctrl-C on the terminal is the parent's to handle)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    return NodeProcess(name, process, rpc_url, data_dir, log_path)


def start_anvil(
    state_dir: Path,
    *,
    port: int | None = None,
    chain_id: int = 31337,
    prefund: list[str] | None = None,
    block_time_s: float | None = None,
    timeout_s: float = 30.0,
) -> NodeProcess:
    """anvil on loopback: mines on every transaction (or each ``block_time_s``), keeps its
    state in ``state_dir/state.json`` across restarts, and gives each ``prefund`` address
    10^27 wei (anvil's own dev accounts are never used: homes bring their keys)."""
    port = port or free_port()
    state_dir.mkdir(parents=True, exist_ok=True)
    argv = [str(tool_path("anvil")), "--host", "127.0.0.1", "--port", str(port),
            "--chain-id", str(chain_id), "--accounts", "0", "--silent",
            "--state", str(state_dir / "state.json"), "--hardfork", "prague"]  # fmt: skip
    if block_time_s:
        argv += ["--block-time", str(block_time_s)]
    node = spawn("anvil", argv, f"http://127.0.0.1:{port}", state_dir)
    node.wait_ready(timeout_s)
    for address in prefund or []:
        rpc_call(node.rpc_url, "anvil_setBalance", [address, hex(10**27)])
    return node


# -- geth Clique: the multi-validator network ------------------------------------------

#: Forks a Clique chain activates at block 0. Never Shanghai: multi-node geth Clique
#: networks halt at ``shanghaiTime``, so contracts for this chain are compiled for paris.
_CLIQUE_FORKS = ("homesteadBlock", "eip150Block", "eip155Block", "eip158Block",
                 "byzantiumBlock", "constantinopleBlock", "petersburgBlock",
                 "istanbulBlock", "muirGlacierBlock", "berlinBlock", "londonBlock")  # fmt: skip
_KEYSTORE_PASSWORD = "healthnft-validator"  # noqa: S105 - loopback keys; the file sits by the keystore
_GETH_APIS = "eth,net,web3,clique,admin,txpool,miner,debug"


def clique_genesis(
    chain_id: int,
    signers: list[str],
    alloc: dict[str, int],
    period_s: int = 1,
    timestamp: int | None = None,
) -> dict:
    """A geth genesis for a Clique chain sealed by ``signers``: every fork up to London at
    block 0 (no Shanghai, no terminal difficulty), ``alloc`` as address -> wei."""
    if not signers:
        raise ValueError("a Clique chain needs at least one signer")
    sealers = sorted(bytes.fromhex(a.lower().removeprefix("0x")) for a in signers)
    if any(len(s) != 20 for s in sealers):
        raise ValueError("a signer is not a 20-byte address")
    extra = bytes(32) + b"".join(sealers) + bytes(65)
    config: dict[str, Any] = {"chainId": chain_id, **dict.fromkeys(_CLIQUE_FORKS, 0)}
    config["clique"] = {"period": period_s, "epoch": 30000}
    return {
        "config": config,
        "nonce": "0x0",
        "timestamp": hex(int(time.time()) if timestamp is None else timestamp),
        "extraData": "0x" + extra.hex(),
        "gasLimit": hex(30_000_000),
        "difficulty": "0x1",
        "baseFeePerGas": hex(10**9),
        "mixHash": "0x" + "00" * 32,
        "coinbase": "0x" + "00" * 20,
        "alloc": {a.lower().removeprefix("0x"): {"balance": hex(w)} for a, w in alloc.items()},
        "number": "0x0",
        "gasUsed": "0x0",
        "parentHash": "0x" + "00" * 32,
    }


def clique_web3(url: str, timeout_s: float = 10.0) -> Any:
    """A ``Web3`` on a Clique node's JSON-RPC: web3's proof-of-authority middleware at
    layer 0, since Clique blocks carry 97 bytes of extra-data (seals and signers)."""
    from web3 import Web3
    from web3.middleware import ExtraDataToPOAMiddleware

    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout_s}))
    w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    return w3


def _enode(node_key: bytes, port: int) -> str:
    """The enode URL of the geth whose node key is ``node_key`` (its secp256k1 public
    key, uncompressed, without the 0x04 prefix)."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = ec.derive_private_key(int.from_bytes(node_key, "big"), ec.SECP256K1())
    point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return f"enode://{point[1:].hex()}@127.0.0.1:{port}?discport=0"


@dataclass
class Validator:
    """One geth signer: its account, data directory, ports and (when running) process."""

    index: int
    address: str
    data_dir: Path
    p2p_port: int
    http_port: int
    auth_port: int
    node: NodeProcess | None = None

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def running(self) -> bool:
        return self.node is not None and self.node.alive()


def halt_sealing(rpc_urls: list[str], settle_s: float = 5.0) -> None:
    """Every validator at ``rpc_urls`` stops sealing, and (within ``settle_s``) they share
    one head, before any goes down: stopped one after the other while still sealing,
    the last ones up would seal blocks the others never see, a fork on disk that stalls
    Clique at the next start. Best effort: a validator that does not answer is skipped."""

    def head(url: str) -> int:
        try:
            return int(rpc_call(url, "eth_blockNumber", timeout_s=2.0), 16)
        except (Unavailable, ValueError):
            return -1

    for url in rpc_urls:
        with contextlib.suppress(Unavailable):
            rpc_call(url, "miner_stop", [], timeout_s=5.0)
    deadline = time.monotonic() + settle_s
    while rpc_urls and time.monotonic() < deadline and len({head(u) for u in rpc_urls}) > 1:
        time.sleep(0.1)


@dataclass
class CliqueNetwork:
    """Validators of one geth Clique chain on loopback, peered statically.

    :meth:`start` creates the network in ``base_dir`` (or starts again the one already
    there, keeping its chain: ``base_dir/clique.json`` lists the signers and ports, no
    secret). Each validator seals with its own key from its keystore; with three
    signers the chain keeps sealing with any two. Use it as a context manager, or call
    :meth:`stop`: no geth is ever left behind.
    """

    base_dir: Path
    chain_id: int
    validators: list[Validator]
    period_s: int = 1

    # -- life cycle ---------------------------------------------------------------

    @classmethod
    def start(
        cls,
        base_dir: Path,
        validators: int = 3,
        chain_id: int = 1337,
        alloc: dict[str, int] | None = None,
        period_s: int = 1,
        timeout_s: float = 60.0,
    ) -> CliqueNetwork:
        """Start ``validators`` signers (or the network already in ``base_dir``) and wait
        until every one answers JSON-RPC, is peered with all others and sees blocks."""
        base_dir = Path(base_dir)
        manifest = base_dir / "clique.json"
        if manifest.exists():
            net = cls._load(base_dir)
            if (net.chain_id, len(net.validators)) != (chain_id, validators):
                raise ValueError(
                    f"{base_dir} holds a network of chain {net.chain_id} with "
                    f"{len(net.validators)} validators, not {chain_id} with {validators}"
                )
        else:
            net = cls._create(base_dir, validators, chain_id, alloc or {}, period_s)
        net.start_all(timeout_s)
        return net

    def start_all(self, timeout_s: float = 60.0) -> None:
        """Start every validator that is not running and let them seal; all stopped again
        when that fails. All are up, peered and synced before any seals: on a chain
        restarted after a pause, the first one up would otherwise seal a private fork."""
        deadline = time.monotonic() + timeout_s

        def left() -> float:
            return max(1.0, deadline - time.monotonic())

        try:
            for i in range(len(self.validators)):
                self._launch(i, left())
            self.wait_peered(left())
            for i in range(len(self.validators)):
                self.wait_synced(i, left())
            self._agree_on_head(left())
            # One seals the next block alone (in turn when it can: its block outweighs
            # an out-of-turn one), then the others join: on a chain restarted
            # after a pause every out-of-turn signer's delay is already past, so two would
            # seal the same height at once, each fork "signed recently" by its own signer,
            # and the third stuck behind them: Clique stalls (seen on a `consortium up`
            # after `down`: heads [137, 137, 136], no block for a minute).
            first, head = self._first_sealer(), max(self.heads())
            self._seal(first)
            self._wait(lambda: self.heads()[first] > head, left(),
                       f"validator {first} did not seal block {head + 1}")  # fmt: skip
            # The others get that block before they may seal (one that had not would seal
            # its own at that height, of the same weight when the first was out of turn,
            # and neither fork could be extended by its own signer). Best effort, bounded:
            # on a new chain whose genesis is still in the future, block 1 is a "future
            # block" the others take only later, and they must seal for block 2 to come.
            self._poll(lambda: min(self.heads()) > head, time.monotonic() + min(10.0, left()))
            for i in range(len(self.validators)):
                if i != first:
                    self._seal(i)
            try:
                self.wait_blocks(1, min(20.0, left()))
            except Unavailable:
                # geth's Clique worker at times keeps waiting on a block it will not seal
                # (seen: heads [1, 1, 1] for 46 s on a new chain): every sealer restarts
                # its work once, which it does on the head it holds now.
                halt_sealing(self.rpc_urls, settle_s=2.0)
                for i in range(len(self.validators)):
                    self._seal(i)
                self.wait_blocks(1, left())
        except BaseException:
            self.stop()
            raise

    @classmethod
    def _create(
        cls, base_dir: Path, count: int, chain_id: int, alloc: dict[str, int], period_s: int
    ) -> CliqueNetwork:
        from eth_account import Account

        if count < 1:
            raise ValueError("a Clique network needs at least one validator")
        if (base_dir / "validator0").exists():
            raise Unavailable(f"{base_dir} holds a half-created network (no clique.json): "
                              "remove it and start again")  # fmt: skip
        base_dir.mkdir(parents=True, exist_ok=True)
        geth = str(tool_path("geth"))
        accounts = [Account.create() for _ in range(count)]
        vals: list[Validator] = []
        for i, acct in enumerate(accounts):
            data_dir = base_dir / f"validator{i}"
            keystore = data_dir / "keystore"
            keystore.mkdir(parents=True, exist_ok=True)
            # scrypt n=2^12: geth unlocks at start-up in milliseconds (loopback keys).
            encrypted = Account.encrypt(acct.key, _KEYSTORE_PASSWORD, kdf="scrypt",
                                        iterations=2**12)  # fmt: skip
            name = f"UTC--validator{i}--{acct.address[2:].lower()}"
            (keystore / name).write_text(json.dumps(encrypted))
            (data_dir / "password.txt").write_text(_KEYSTORE_PASSWORD)
            (data_dir / "nodekey").write_text(os.urandom(32).hex())
            ports = [free_port() for _ in range(3)]
            vals.append(Validator(i, acct.address, data_dir, *ports))
        # A genesis a little in the future: every signer is up before block 1 is due,
        # so none seals a private fork at start-up (measured: 3 s + 0.25 s per signer).
        genesis = clique_genesis(
            chain_id,
            [v.address for v in vals],
            alloc,
            period_s,
            timestamp=int(time.time() + 3 + 0.25 * count),
        )
        (base_dir / "genesis.json").write_text(json.dumps(genesis, indent=1))
        for v in vals:
            done = subprocess.run(
                [geth, "--datadir", str(v.data_dir), "init", str(base_dir / "genesis.json")],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                tail = " | ".join(done.stderr.splitlines()[-3:])
                raise Unavailable(f"geth init failed for validator {v.index}: {tail}")
        net = cls(base_dir, chain_id, vals, period_s)
        net._write_manifest()
        return net

    def _write_manifest(self) -> None:
        doc = {
            "chain_id": self.chain_id,
            "period_s": self.period_s,
            "validators": [
                {"address": v.address, "dir": v.data_dir.name, "p2p_port": v.p2p_port,
                 "http_port": v.http_port, "auth_port": v.auth_port}  # fmt: skip
                for v in self.validators
            ],
        }
        (self.base_dir / "clique.json").write_text(json.dumps(doc, indent=1))

    @classmethod
    def _load(cls, base_dir: Path) -> CliqueNetwork:
        doc = json.loads((base_dir / "clique.json").read_text())
        vals = [
            Validator(i, v["address"], base_dir / v["dir"], v["p2p_port"], v["http_port"],
                      v["auth_port"])  # fmt: skip
            for i, v in enumerate(doc["validators"])
        ]
        return cls(base_dir, int(doc["chain_id"]), vals, int(doc.get("period_s", 1)))

    def _static_nodes_config(self, index: int) -> Path:
        """geth's TOML config naming every other validator as a static peer."""
        peers = []
        for v in self.validators:
            if v.index != index:
                key = bytes.fromhex((v.data_dir / "nodekey").read_text().strip())
                peers.append(_enode(key, v.p2p_port))
        me = self.validators[index]
        path = me.data_dir / "peers.toml"
        listed = ", ".join(json.dumps(p) for p in peers)
        path.write_text(
            "[Node.P2P]\n"
            f'ListenAddr = "127.0.0.1:{me.p2p_port}"\n'  # loopback only (--port binds all)
            f"StaticNodes = [{listed}]\nTrustedNodes = [{listed}]\n"
        )
        return path

    def _launch(self, index: int, timeout_s: float) -> None:
        """Start validator ``index``'s geth, not yet sealing (see :meth:`_seal`).

        ``--maxpeers`` is the other validators' count (all of them trusted, so a
        trusted peer is never refused): geth starts a block sync as soon as that many
        peers are connected instead of waiting for its 10 s forced sync cycle, so a
        restarted validator catches up in about a second.
        """
        v = self.validators[index]
        if v.running():
            return
        max_peers = max(1, len(self.validators) - 1)
        for port in (v.http_port, v.p2p_port, v.auth_port):
            # A port in use would have the readiness check answered by someone else.
            with socket.socket() as probe:
                # As geth binds: a closed connection in TIME_WAIT does not hold the port.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    raise Unavailable(
                        f"port {port} of validator {index} is in use (is the network in "
                        f"{self.base_dir} already running?)"
                    ) from None
        argv = [
            str(tool_path("geth")), "--config", str(self._static_nodes_config(index)),
            "--datadir", str(v.data_dir), "--networkid", str(self.chain_id),
            "--nodekey", str(v.data_dir / "nodekey"),
            "--nat", "none", "--nodiscover", "--maxpeers", str(max_peers),
            "--http", "--http.addr", "127.0.0.1", "--http.port", str(v.http_port),
            "--http.api", _GETH_APIS, "--authrpc.addr", "127.0.0.1",
            "--authrpc.port", str(v.auth_port), "--ipcdisable",
            "--syncmode", "full", "--gcmode", "archive",
            "--unlock", v.address, "--password", str(v.data_dir / "password.txt"),
            "--allow-insecure-unlock", "--miner.etherbase", v.address,
            "--miner.gasprice", "1", "--txpool.pricelimit", "1",
            "--verbosity", "3",
        ]  # fmt: skip
        v.node = spawn(f"geth{index}", argv, v.rpc_url, v.data_dir)
        v.node.extra["address"] = v.address
        v.node.wait_ready(timeout_s)

    def _block_hash(self, index: int, number: int) -> str:
        block = rpc_call(self.validators[index].rpc_url, "eth_getBlockByNumber",
                         [hex(number), False], timeout_s=5.0)  # fmt: skip
        return str((block or {}).get("hash", ""))

    def _agree_on_head(self, timeout_s: float) -> None:
        """Rewind any validator whose chain left the others' before the shared head.

        Validators stopped one after the other can keep two different blocks at one
        height (one sealed while another was already going down): equal heights,
        neither heavier, so neither imports the other's and Clique stalls (seen: heads
        [137, 136, 137] for a minute after `consortium up`). Each validator off the
        most common branch is rewound (geth's ``debug_setHead``) a few blocks below the
        fork and syncs the others' chain before anyone seals."""
        heads = self.heads()
        low = min(heads)
        if low < 1:
            return
        hashes = [self._block_hash(i, low) for i in range(len(self.validators))]
        common = max(set(hashes), key=hashes.count)
        strays = [i for i, h in enumerate(hashes) if h != common]
        for i in strays:
            rpc_call(self.validators[i].rpc_url, "debug_setHead", [hex(max(0, low - 8))],
                     timeout_s=10.0)  # fmt: skip
        if strays:
            self._wait(lambda: all(self.heads()[i] >= low and self._block_hash(i, low) == common
                                   for i in strays),  # fmt: skip
                       timeout_s, f"validators {strays} did not rejoin the others' chain")

    def _stop_sealing(self) -> None:
        halt_sealing([self.validators[i].rpc_url for i in self.running()])

    def _first_sealer(self) -> int:
        """The validator to seal the next block alone: one that did not sign the head
        (Clique lets a signer seal once in ``len(signers) // 2 + 1`` blocks), preferring
        the next block's in-turn signer (its block outweighs any out-of-turn one)."""
        heads = self.heads()
        head = max(heads)
        url = self.validators[heads.index(head)].rpc_url
        try:
            last = str(rpc_call(url, "clique_getSigner", [hex(head)], timeout_s=5.0)).lower()
        except Unavailable:
            last = ""  # the genesis block, or no answer: any in-turn signer will do
        signers = sorted(v.address.lower() for v in self.validators)
        in_turn = signers[(head + 1) % len(signers)]
        order = [in_turn, *(a for a in signers if a != in_turn)]
        chosen = next((a for a in order if a != last), in_turn)
        return next(i for i, v in enumerate(self.validators) if v.address.lower() == chosen)

    def _seal(self, index: int) -> None:
        """Let validator ``index`` seal (geth's ``miner_start``: it authorises the
        unlocked etherbase with Clique and starts sealing in turn)."""
        rpc_call(self.validators[index].rpc_url, "miner_start", [], timeout_s=10.0)

    def stop_validator(self, index: int, *, crash: bool = True) -> None:
        """Stop one validator: SIGKILL (a crash) by default, else SIGTERM."""
        node = self.validators[index].node
        if node is not None:
            node.kill() if crash else node.stop()

    def start_validator(self, index: int, timeout_s: float = 30.0) -> None:
        """Start a stopped validator again on its own data directory, ports and peers;
        it seals again once it has the running validators' head (within ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        try:
            self._launch(index, timeout_s)
            up = [i for i in self.running() if i != index]
            ok = self._poll(lambda: self.peer_counts()[index] >= len(up), deadline)
            if not ok:
                raise Unavailable(f"validator {index} did not peer within {timeout_s:.0f} s")
            self.wait_synced(index, max(1.0, deadline - time.monotonic()))
            self._seal(index)
        except BaseException:
            self.stop_validator(index, crash=False)
            raise

    def stop(self) -> None:
        """Stop every validator (sealing first, then SIGTERM, then SIGKILL); idempotent."""
        self._stop_sealing()
        for v in self.validators:
            if v.node is not None:
                with contextlib.suppress(Exception):
                    v.node.stop()

    def __enter__(self) -> CliqueNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- observing --------------------------------------------------------------------

    @property
    def rpc_urls(self) -> list[str]:
        return [v.rpc_url for v in self.validators]

    @property
    def signers(self) -> list[str]:
        return [v.address for v in self.validators]

    def web3(self, index: int = 0, timeout_s: float = 10.0) -> Any:
        """web3 on validator ``index``, reading Clique's long extra-data (PoA middleware)."""
        return clique_web3(self.validators[index].rpc_url, timeout_s)

    def running(self) -> list[int]:
        """Indexes of the validators whose process is alive."""
        return [v.index for v in self.validators if v.running()]

    def heads(self) -> list[int]:
        """Each validator's head block number; -1 for one that is down or not answering."""
        out = []
        for v in self.validators:
            try:
                out.append(int(rpc_call(v.rpc_url, "eth_blockNumber", timeout_s=2.0), 16)
                           if v.running() else -1)  # fmt: skip
            except Unavailable:
                out.append(-1)
        return out

    def peer_counts(self) -> list[int]:
        out = []
        for v in self.validators:
            try:
                out.append(int(rpc_call(v.rpc_url, "net_peerCount", timeout_s=2.0), 16)
                           if v.running() else -1)  # fmt: skip
            except Unavailable:
                out.append(-1)
        return out

    def wait_peered(self, timeout_s: float = 30.0) -> None:
        """Until every running validator is peered with every other running one."""
        up = self.running()
        self._wait(lambda: all(self.peer_counts()[i] >= len(up) - 1 for i in up),
                   timeout_s, "the validators did not peer")  # fmt: skip

    def wait_blocks(self, count: int = 1, timeout_s: float = 30.0) -> list[int]:
        """Until every running validator's head is ``count`` blocks past the highest head
        seen now; returns the heads."""
        target = max(self.heads()) + count
        self._wait(lambda: all(self.heads()[i] >= target for i in self.running()),
                   timeout_s, f"the chain did not reach block {target}")  # fmt: skip
        return self.heads()

    def wait_synced(self, index: int, timeout_s: float = 30.0) -> float:
        """Until validator ``index`` has the head the others had when called (or later);
        returns the seconds it took."""
        others = [h for i, h in enumerate(self.heads()) if i != index and h >= 0]
        target = max(others) if others else 0
        began = time.monotonic()
        self._wait(lambda: self.heads()[index] >= target, timeout_s,
                   f"validator {index} did not catch up to block {target}")  # fmt: skip
        return time.monotonic() - began

    def _poll(self, done: Any, deadline: float) -> bool:
        """Whether ``done()`` came true before ``deadline``; a validator that died on its
        own (not stopped by us) ends the wait with its log's tail."""
        while time.monotonic() < deadline:
            for v in self.validators:
                if v.node is not None and v.node.process.poll() not in (
                    None, -signal.SIGKILL, -signal.SIGTERM, 0,
                ):  # fmt: skip
                    raise Unavailable(f"validator {v.index} exited: {v.node.log_tail()}")
            if done():
                return True
            time.sleep(0.1)
        return False

    def _wait(self, done: Any, timeout_s: float, what: str) -> None:
        if self._poll(done, time.monotonic() + timeout_s):
            return
        raise Unavailable(f"{what} within {timeout_s:.0f} s (heads {self.heads()}, "
                          f"peers {self.peer_counts()})")  # fmt: skip
