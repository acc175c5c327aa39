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
