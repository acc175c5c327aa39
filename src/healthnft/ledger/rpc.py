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
