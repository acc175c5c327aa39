"""Nonces per sender, shared by every thread of a process that signs for it.

Why: asking the node for the ``pending`` count before each transaction gives two
threads of one service the same nonce (one transaction is then replaced or refused),
and a slow node's count can lag the transactions just sent. The manager hands out
each nonce once — the larger of the node's pending count and the next one it handed
out — and takes back a nonce whose transaction never reached the node, so no gap is
left. A restarted process starts from the node's count, which includes everything
the node accepted: it never reuses a nonce the node has seen.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from web3 import Web3


class NonceManager:
    """Hands out each sender's nonces once, in order, across threads."""

    def __init__(self, w3: Web3) -> None:
        self._w3 = w3
        self._next: dict[str, int] = {}
        self._lock = threading.Lock()

    def reserve(self, address: str) -> int:
        """The next nonce of ``address``; nobody else in this process gets it."""
        key = Web3.to_checksum_address(address)
        with self._lock:
            on_node = int(self._w3.eth.get_transaction_count(key, "pending"))
            nonce = max(on_node, self._next.get(key, 0))
            self._next[key] = nonce + 1
            return nonce

    def release(self, address: str, nonce: int) -> None:
        """Give back ``nonce``: its transaction never reached the node. Only the last one
        handed out can be taken back; an earlier one is filled by the node's count on the
        next :meth:`reserve` once the later ones are gone."""
        key = Web3.to_checksum_address(address)
        with self._lock:
            if self._next.get(key) == nonce + 1:
                self._next[key] = nonce
            else:  # a later nonce is out: forget the local count, trust the node's
                self._next.pop(key, None)
    def peek(self, address: str) -> int:
        """The nonce :meth:`reserve` would hand out now, without handing it out: what a
        transaction signed elsewhere (a patient's device) should carry."""
        key = Web3.to_checksum_address(address)
        with self._lock:
            on_node = int(self._w3.eth.get_transaction_count(key, "pending"))
            return max(on_node, self._next.get(key, 0))

    def observe(self, address: str, nonce: int) -> None:
        """Learn that ``nonce`` of ``address`` was taken by a transaction signed elsewhere
        and relayed through this process, so :meth:`reserve` never hands it out again."""
        key = Web3.to_checksum_address(address)
        with self._lock:
            self._next[key] = max(self._next.get(key, 0), nonce + 1)

    def resync(self, address: str) -> None:
        """Trust the node's count again for ``address`` (its transactions were dropped:
        a node restarted without them, or a reorganisation took them away)."""
        with self._lock:
            self._next.pop(Web3.to_checksum_address(address), None)


_MANAGERS: weakref.WeakKeyDictionary[Any, NonceManager] = weakref.WeakKeyDictionary()
_MANAGERS_LOCK = threading.Lock()


def nonce_manager(w3: Web3) -> NonceManager:
    """The one manager of ``w3`` (every :class:`~healthnft.ledger.client.Ledger` over the
    same connection shares it)."""
    with _MANAGERS_LOCK:
        manager = _MANAGERS.get(w3)
        if manager is None:
            manager = _MANAGERS[w3] = NonceManager(w3)
        return manager
