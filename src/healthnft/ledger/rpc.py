"""The JSON-RPC backend: web3 over HTTP to any EVM node (anvil, geth Clique, Besu).

What it adds to a bare ``Web3(HTTPProvider(url))``: a bounded timeout and no silent
retries (an unreachable node is one clear :class:`~healthnft.errors.Unavailable`, at
connect and on every later call, never a stack of ``requests`` errors); the
proof-of-authority extra-data middleware (Clique and QBFT headers carry the signers in
``extraData``, longer than mainnet's 32 bytes); and a check that the node serves the
network's chain id (:class:`~healthnft.errors.Conflict` otherwise): a home pointed at
the wrong chain must refuse to start, not write to it.
"""

from __future__ import annotations

import itertools
import json
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from web3 import Web3
from web3.middleware import ExtraDataToPOAMiddleware, Web3Middleware
from web3.types import RPCEndpoint

from healthnft.errors import Conflict, Unavailable

#: Requests whose answer a node never changes while it runs: cached per client.
_ALWAYS_THE_SAME = {RPCEndpoint("eth_chainId"), RPCEndpoint("net_version")}


class _NodeUnreachable(Web3Middleware):
    """Turns transport failures (refused, reset, timed out) into :class:`Unavailable`,
    naming the node but nothing the request carried."""

    url = ""

    def wrap_make_request(self, make_request: Any) -> Any:
        url = self.url

        def middleware(method: Any, params: Any) -> Any:
            try:
                return make_request(method, params)
            except (requests.exceptions.RequestException, OSError) as exc:
                raise Unavailable(
                    f"the ledger node at {url} does not answer ({type(exc).__name__}); "
                    "check that it runs, then retry (a retry re-sends the same transaction)"
                ) from None

        return middleware


def _key(method: str, params: Any) -> str:
    """A request's identity for :class:`ReadAhead` (hex case and key order ignored)."""
    return json.dumps([method, params], sort_keys=True, default=str).lower()


class ReadAhead:
    """Reads sent together in one JSON-RPC batch request, answered later from memory.

    Why: a custodian deciding a release reads five views and its nonce; sent as one
    request each (in threads), they cost five HTTP exchanges and five trips through
    web3's layers on a machine whose cores are shared: most of a release's time
    (measured). :meth:`ahead` sends them at once; the code that decides then makes its
    usual calls, in its usual order, and each call that matches a prefetched request
    exactly is answered with the node's answer from that batch, once, in the thread that
    asked for it. Anything else (another thread, another request, an answer that was an
    error, a batch that failed) goes to the node as before: never a different answer
    than the node's, only an earlier one of the same request."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._session = requests.Session()
        self._ids = itertools.count(1)

    def _answers(self) -> dict[str, Any]:
        found = getattr(self._local, "answers", None)
        if found is None:
            found = self._local.answers = {}
        return found

    @contextmanager
    def ahead(self, calls: list[tuple[str, list[Any]]]) -> Iterator[int]:
        """Send ``calls`` (method, params) in one batch; inside, this thread's matching
        requests are answered from it. Yields how many answers were kept."""
        answers = self._answers()
        kept = self._fetch(calls, answers)
        try:
            yield kept
        finally:
            answers.clear()

    def _fetch(self, calls: list[tuple[str, list[Any]]], answers: dict[str, Any]) -> int:
        if not calls:
            return 0
        ids = [next(self._ids) for _ in calls]
        body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                for i, (m, p) in zip(ids, calls, strict=True)]  # fmt: skip
        try:
            resp = self._session.post(self.url, json=body, timeout=self.timeout_s)
            got = resp.json()
        except (requests.RequestException, ValueError):
            return 0  # each call then asks the node itself (and reports it unreachable)
        if not isinstance(got, list):
            return 0
        by_id = {r.get("id"): r for r in got if isinstance(r, dict)}
        kept = 0
        for i, (method, params) in zip(ids, calls, strict=True):
            answer = by_id.get(i)
            if answer is not None and "result" in answer and "error" not in answer:
                answers[_key(method, params)] = answer
                kept += 1
        return kept

    def take(self, method: str, params: Any) -> Any | None:
        """This thread's prefetched answer to exactly this request, if any (used once)."""
        answers = getattr(self._local, "answers", None)
        if not answers:
            return None
        return answers.pop(_key(method, params), None)

    def middleware(self) -> type[Web3Middleware]:
        """The innermost web3 layer: a request this thread prefetched is answered here."""
        ahead = self

        class Prefetched(Web3Middleware):
            def wrap_make_request(self, make_request: Any) -> Any:
                def middleware(method: Any, params: Any) -> Any:
                    found = ahead.take(method, params)
                    if found is not None:
                        return {**found, "id": 0}
                    return make_request(method, params)

                return middleware

        return Prefetched


_READ_AHEAD: weakref.WeakKeyDictionary[Web3, ReadAhead] = weakref.WeakKeyDictionary()


def read_ahead_of(w3: Web3) -> ReadAhead | None:
    """The :class:`ReadAhead` of a client made by :func:`rpc_web3` (None for others)."""
    return _READ_AHEAD.get(w3)


def rpc_web3(url: str, *, chain_id: int | None = None, timeout_s: float = 10.0) -> Web3:
    """A connected Web3 for the node at ``url``; :class:`Unavailable` when it does not
    answer, :class:`Conflict` when it serves another chain than ``chain_id``."""
    # web3's validation asks eth_chainId before every eth_call and estimate: two of
    # every three requests of a grantee's open (measured). The chain id of a node
    # cannot change under a running client, and it is checked below once.
    provider = Web3.HTTPProvider(url, request_kwargs={"timeout": timeout_s},
                                 exception_retry_configuration=None,
                                 cache_allowed_requests=True,
                                 cacheable_requests=_ALWAYS_THE_SAME)  # fmt: skip
    w3 = Web3(provider)
    guard = type("NodeUnreachable", (_NodeUnreachable,), {"url": url})
    w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    w3.middleware_onion.add(guard, name="healthnft-transport")
    ahead = _READ_AHEAD[w3] = ReadAhead(url, timeout_s)
    w3.middleware_onion.add(ahead.middleware(), name="healthnft-read-ahead")
    served = w3.eth.chain_id  # Unavailable here when nobody listens
    if chain_id is not None and served != chain_id:
        raise Conflict(
            f"the ledger node at {url} serves chain id {served}, but this network's is "
            f"{chain_id}: it is another network's node; point the home at the right one"
        )
    return w3


def evm_version_of(w3: Web3) -> str:
    """The newest EVM version the chain's latest header shows, for compiling contracts
    it can run: a Clique network never activates Shanghai (no PUSH0: ``paris``), and a
    node stopped at Shanghai or Cancun must not get Prague's MCOPY."""
    head = w3.eth.get_block("latest")
    if "withdrawalsRoot" not in head:
        return "paris"
    if "blobGasUsed" not in head:
        return "shanghai"
    if "requestsHash" not in head:
        return "cancun"
    return "prague"
