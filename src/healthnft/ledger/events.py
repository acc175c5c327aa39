"""The event index: the contracts' logs synced by block range into the home's index.

Why: grants, requests, releases and batches are answered from events; asking the node
for every log since block 0 on each query grows with the chain's whole history (and a
public-size node caps ``eth_getLogs`` ranges). :class:`EventIndex` reads only the blocks
it has not seen, :data:`CHUNK_BLOCKS` at a time, keeps the raw logs
(:class:`~healthnft.store.events.ChainEvents`) and answers filters on indexed arguments
from there.

Reorganisations: the hash of the last block synced is kept; when the chain no longer has
it, the index walks back to the newest block whose kept hash still matches, drops every
log above it and reads again from there. The depth is reported (:class:`SyncReport`); one
deeper than the network's confirmations is logged as a warning, since a transaction
counted as done may have left the chain with it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from eth_abi import encode as abi_encode
from hexbytes import HexBytes
from web3 import Web3
from web3.datastructures import AttributeDict

from healthnft.errors import LedgerError
from healthnft.store.connection import MEMORY
from healthnft.store.events import ChainEvents, RawLog
from healthnft.store.migrations import open_database
from healthnft.store.schema import INDEX

#: Blocks per ``eth_getLogs`` request (well under the common 10,000-block node cap).
CHUNK_BLOCKS = 2000

log = logging.getLogger("healthnft.ledger.events")


@dataclass(frozen=True)
class SyncReport:
    """What one sync did: the blocks read, the logs kept, how deep a reorg went (0: none)."""

    from_block: int
    to_block: int
    logs: int
    reorg_depth: int = 0
    #: A reorganisation deeper than the confirmations a transaction waits for.
    deep_reorg: bool = False


class EventIndex:
    """Keeps ``store`` level with the chain for the given contracts' logs."""

    def __init__(self, w3: Web3, contracts: list[Any], store: ChainEvents | None = None,
                 *, confirmations: int = 1) -> None:  # fmt: skip
        self.w3 = w3
        self.contracts = [c for c in contracts if c is not None]
        self.store = store or ChainEvents(open_database(MEMORY, INDEX))
        self.confirmations = confirmations
        self.last_report: SyncReport | None = None
        self._lock = threading.Lock()

    def _hash_at(self, number: int) -> bytes | None:
        try:
            block = self.w3.eth.get_block(number)
        except Exception:  # BlockNotFound, each backend its own type
            return None
        return bytes(block["hash"])

    def _common_ancestor(self, cursor: int, head: int) -> int:
        """The newest kept block whose hash the chain still has (-1: none kept matches)."""
        number = min(cursor, head)
        oldest = self.store.oldest_kept()
        while oldest is not None and number >= oldest:
            kept = self.store.block_hash(number)
            if kept is not None and self._hash_at(number) == kept:
                return number
            number -= 1
        return -1

    def sync(self) -> SyncReport:
        """Read the blocks since the last sync (after undoing a reorganisation, if any)."""
        with self._lock:
            head = int(self.w3.eth.block_number)
            cursor = self.store.cursor()
            depth = 0
            start = 0
            if cursor is not None:
                number, kept_hash = cursor
                if number <= head and self._hash_at(number) == kept_hash:
                    start = number + 1
                else:
                    ancestor = self._common_ancestor(number, head)
                    depth = number - ancestor
                    self.store.rewind(ancestor)
                    start = ancestor + 1
                    deep = depth >= self.confirmations
                    (log.warning if deep else log.info)(
                        "chain reorganised: %d block(s) above %d replaced; events re-read",
                        depth, ancestor)  # fmt: skip
            kept = 0
            addresses = [c.address for c in self.contracts]
            for lo in range(start, head + 1, CHUNK_BLOCKS):
                hi = min(lo + CHUNK_BLOCKS - 1, head)
                raw = self.w3.eth.get_logs({"fromBlock": lo, "toBlock": hi,
                                            "address": addresses})  # fmt: skip
                logs = [_raw(entry) for entry in raw if not entry.get("removed")]
                hi_hash = self._hash_at(hi)
                if hi_hash is None:
                    raise LedgerError(f"block {hi} vanished while the events were read; retry")
                self.store.add(logs, hi, hi_hash)
                kept += len(logs)
            report = SyncReport(start, head, kept, depth,
                                deep_reorg=depth > 0 and depth >= self.confirmations)
            self.last_report = report
            return report

    def find(self, contract: Any, event: str, **filters: Any) -> list[AttributeDict]:
        """The ``event`` logs of ``contract`` whose indexed arguments equal ``filters``,
        decoded as web3 decodes them (``ev["args"]``, ``ev["blockNumber"]``…)."""
        abi = next((e for e in contract.abi
                    if e.get("type") == "event" and e["name"] == event), None)  # fmt: skip
        if abi is None:
            raise LedgerError(f"{event} is not an event of this contract")
        indexed = [i for i in abi["inputs"] if i.get("indexed")]
        topics: dict[int, bytes] = {}
        for name, value in filters.items():
            position = next((n for n, i in enumerate(indexed, start=1) if i["name"] == name), 0)
            if not position:
                raise LedgerError(f"{event}.{name} is not an indexed argument")
            topics[position] = _topic(indexed[position - 1]["type"], value)
        topic0 = bytes(Web3.keccak(text=_signature(abi)))
        handler = getattr(contract.events, event)()
        return [handler.process_log(_as_web3_log(lg))
                for lg in self.store.find(contract.address, topic0, topics)]  # fmt: skip


def _signature(abi: dict) -> str:
    from eth_utils.abi import collapse_if_tuple

    types = ",".join(collapse_if_tuple(dict(i)) for i in abi["inputs"])
    return f"{abi['name']}({types})"


def _topic(abi_type: str, value: Any) -> bytes:
    if abi_type == "address":
        value = Web3.to_checksum_address(value)
    return abi_encode([abi_type], [value])


def _raw(entry: Any) -> RawLog:
    return RawLog(int(entry["blockNumber"]), int(entry["logIndex"]), bytes(entry["blockHash"]),
                  bytes(entry["transactionHash"]), str(entry["address"]),
                  tuple(bytes(t) for t in entry["topics"]), bytes(entry["data"]))  # fmt: skip


def _as_web3_log(lg: RawLog) -> AttributeDict:
    return AttributeDict({
        "address": Web3.to_checksum_address(lg.address), "topics": [HexBytes(t) for t in lg.topics],
        "data": HexBytes(lg.data), "blockNumber": lg.block_number, "logIndex": lg.log_index,
        "transactionIndex": 0, "transactionHash": HexBytes(lg.tx_hash),
        "blockHash": HexBytes(lg.block_hash), "removed": False,
    })  # fmt: skip
