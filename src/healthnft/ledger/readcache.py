"""Memoized contract views for a long-running process that is the chain's only writer.

A web service answers many reads between two transactions (the wallet page of
50 users asks "who owns token 12?" again and again). Each view is a full EVM
call through web3 (several milliseconds on py-evm), yet its answer can change
only when a transaction lands, or, for views that read the block time such as
grant expiry, as time passes. So a :class:`ReadCache` keeps view answers until
the next transaction sent through the same Web3 (a middleware watches for it)
or for ``ttl_s`` seconds, whichever comes first.

Off by default: only :meth:`Ledger.enable_read_cache` turns it on, and only a
process through which every write to the chain passes may use it (the embedded
chain served by ``healthnft serve``). A node written to by others needs none.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from web3.middleware.base import Web3Middleware

F = TypeVar("F", bound=Callable[..., Any])

_WRITES = frozenset({"eth_sendRawTransaction", "eth_sendTransaction", "evm_mine",
                     "evm_increaseTime", "evm_setNextBlockTimestamp", "evm_revert"})  # fmt: skip


class ReadCache:
    """View answers keyed by (view, arguments), dropped on any write or after ``ttl_s``."""

    def __init__(self, ttl_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[tuple, tuple[float, Any]] = {}
        #: Bumped by every write: a caller may key its own caches on it.
        self.version = 0

    def get(self, key: tuple) -> tuple[bool, Any]:
        with self._lock:
            hit = self._entries.get(key)
        if hit is None or hit[0] < self._clock():
            return False, None
        return True, hit[1]

    def put(self, key: tuple, version: int, value: Any) -> None:
        with self._lock:
            if version == self.version:  # no write happened while it was computed
                self._entries[key] = (self._clock() + self.ttl_s, value)

    def invalidate(self) -> None:
        with self._lock:
            self.version += 1
            self._entries.clear()

    def middleware(self) -> type[Web3Middleware]:
        """A web3 middleware class that invalidates this cache around every write."""
        cache = self

        class WriteWatcher(Web3Middleware):
            def wrap_make_request(self, make_request: Any) -> Any:
                def middleware(method: Any, params: Any) -> Any:
                    if method not in _WRITES:
                        return make_request(method, params)
                    cache.invalidate()
                    try:
                        return make_request(method, params)
                    finally:
                        cache.invalidate()

                return middleware

        return WriteWatcher


class _FrozenList(tuple):
    """A cached list, kept immutable so no caller can change another's answer."""


def view(fn: F) -> F:
    """Serve a :class:`~healthnft.ledger.client.Ledger` view from its read cache, if on."""

    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        cache: ReadCache | None = getattr(self, "read_cache", None)
        if cache is None or kwargs:
            return fn(self, *args, **kwargs)
        key = (fn.__name__, *(tuple(a) if isinstance(a, list) else a for a in args))
        found, value = cache.get(key)
        if found:
            return list(value) if isinstance(value, _FrozenList) else value
        version = cache.version
        value = fn(self, *args)
        cache.put(key, version, _FrozenList(value) if isinstance(value, list) else value)
        return value

    return wrapper  # type: ignore[return-value]
