"""A fixed-window request counter per client, in memory.

Used where a request costs the server memory before anyone is authenticated
(sign-in challenges): a client gets ``limit`` per ``window_s``, then a 429 with
``Retry-After``. Written here because the only Starlette rate-limit libraries
(slowapi and its ``limits`` dependency) would add two packages and storage
back ends for what is a dictionary of counters; the map is bounded too, so
many clients cannot grow it without end.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from healthnft.errors import RateLimited


class WindowLimiter:
    """At most ``limit`` hits per client per ``window_s`` seconds (thread-safe)."""

    def __init__(self, limit: int, window_s: float = 60.0, *, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.limit = limit
        self.window_s = window_s
        self._max_clients = max_clients
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}  # client -> (window start, hits)

    def hit(self, client: str, what: str) -> None:
        """Count one ``what`` for ``client``; raise :class:`RateLimited` over the limit."""
        now = self._clock()
        with self._lock:
            start, hits = self._windows.get(client, (now, 0))
            if now - start >= self.window_s:
                start, hits = now, 0
            if hits >= self.limit:
                wait = max(1, math.ceil(start + self.window_s - now))
                raise RateLimited(f"too many {what} from this client; try again in {wait} s",
                                  retry_after_s=wait)  # fmt: skip
            if client not in self._windows and len(self._windows) >= self._max_clients:
                self._forget_old(now)
            self._windows[client] = (start, hits + 1)

    def _forget_old(self, now: float) -> None:
        stale = [k for k, (start, _) in self._windows.items() if now - start >= self.window_s]
        for key in stale:
            del self._windows[key]
        if len(self._windows) >= self._max_clients:  # all current: drop the oldest half
            oldest = sorted(self._windows, key=lambda k: self._windows[k][0])
            for key in oldest[: len(oldest) // 2]:
                del self._windows[key]
