"""Detached child processes of a local consortium, and how to find and stop them later.

A process is started in its own session (a Ctrl-C on the terminal that ran ``up`` does
not reach it) with its output in a log file and no terminal input, so it outlives the
command that started it. It is recorded with its start time as the kernel counts it
(``/proc/PID/stat``): a pid the system has since given to another program is never
signalled. Stopping is SIGTERM, then SIGKILL after a bounded wait.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Proc:
    """A recorded process: pid and start time (clock ticks since boot)."""

    pid: int
    started: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, pid: int) -> Proc:
        return cls(pid, start_time(pid) or 0)

    @classmethod
    def from_dict(cls, doc: dict[str, Any] | None) -> Proc | None:
        if not doc or not doc.get("pid"):
            return None
        return cls(int(doc["pid"]), int(doc.get("started", 0)))

    def alive(self) -> bool:
        """Running and still the process recorded (a zombie, exited but not yet
        collected by its parent, counts as stopped)."""
        return _state(self.pid) not in (None, "Z", "X") and start_time(self.pid) == self.started


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces.
    return text[text.rfind(")") + 2 :].split()


def _state(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def start_time(pid: int) -> int | None:
    """When ``pid`` started (field 22 of ``/proc/PID/stat``), or None when it is gone."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def spawn_detached(argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> Proc:
    """Start ``argv`` detached, appending its output to ``log_path`` (created 0600)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        process = subprocess.Popen(argv, stdout=fd, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True,
                                   env=env, close_fds=True)  # fmt: skip
    finally:
        os.close(fd)
    # Popen keeps the child in its list of ones to reap; this process exits long before
    # it, so nothing is left behind (the child is re-parented and reaped by the system).
    return Proc.of(process.pid)


def stop_all(procs: list[Proc], timeout_s: float = 10.0) -> list[Proc]:
    """SIGTERM every live one, wait up to ``timeout_s``, SIGKILL those left, wait again
    (bounded); answers the processes that are still alive (none, normally)."""
    live = [p for p in procs if p.alive()]
    for p in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(p.alive() for p in live):
        time.sleep(0.1)
    for p in live:
        if p.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(p.alive() for p in live):
        time.sleep(0.05)
    return [p for p in live if p.alive()]

