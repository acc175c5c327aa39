"""One writer per home at a time, and a lock that says who it is.

While ``serve`` ran, a CLI ``share`` or ``mint`` on the same home succeeded, after
which the service showed stale data (it memoizes the chain between its own
transactions), answered 500 to a grant it had committed, and duplicated it on retry;
two CLI mints at once collided in the index. Every process that changes a home
now holds ``<home>/writer.lock`` for as long as it may write: ``serve`` for its whole
life, a CLI command for its run. The lock is an OS advisory lock (``flock``), so a
killed holder releases it at once and a stale lock cannot outlive its process; the
file's content (process id, command, since when) is only there to name the holder
in the refusal. Readers take no lock (SQLite's WAL lets them read beside a writer).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from healthnft.errors import Unavailable

LOCK_NAME = "writer.lock"


class WriterLock:
    """Hold ``<home>/writer.lock`` (exclusive), waiting up to ``wait_s`` for it."""

    def __init__(self, home: Path, holder: str, wait_s: float = 5.0) -> None:
        self.path = Path(home) / LOCK_NAME
        self.holder = holder
        self.wait_s = wait_s
        self._fd: int | None = None

    def acquire(self) -> WriterLock:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    who = _describe(fd)
                    os.close(fd)
                    raise Unavailable(f"this home is being changed by {who}; try again when it "
                                   "is done (only one program may change a home at a time)") \
                        from None
                time.sleep(0.05)
        note = {"pid": os.getpid(), "command": self.holder,
                "since": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(note).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.release()


def _describe(fd: int) -> str:
    """Who holds the lock, from its note (written by the holder just after locking)."""
    try:
        note = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"`{note['command']}` (process {note['pid']}, since {note['since']})"
    except (ValueError, KeyError, TypeError, OSError):
        return "another program"
