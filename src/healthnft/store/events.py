"""The contracts' event logs, kept in the home's index so a query never rescans the chain.

Table ``chain_events`` of ``index.sqlite`` (schema version 4) holds each log as the node
gave it (address, topics, data), keyed by (block, log index); ``event_blocks`` holds the
hash of each block synced, so the syncer (:mod:`healthnft.ledger.events`) can tell when
the chain it read has been replaced from some height on (a reorganisation) and drop
what it kept from there. Filters are on topics: every argument the services filter on
is ``indexed`` in the contracts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from healthnft.store.connection import Database

#: Block hashes older than this many blocks behind the cursor are pruned (a deeper
#: reorganisation is then reported as "deeper than kept", never silently missed).
KEEP_BLOCK_HASHES = 256


class RawLog(NamedTuple):
    block_number: int
    log_index: int
    block_hash: bytes
    tx_hash: bytes
    address: str
    topics: tuple[bytes, ...]
    data: bytes


class ChainEvents:
    """The synced logs and the block hashes they were read at."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def cursor(self) -> tuple[int, bytes] | None:
        """(block, hash) of the last block synced, or None before the first sync."""
        row = self._db.one("SELECT block_number, block_hash FROM event_blocks "
                           "ORDER BY block_number DESC LIMIT 1")  # fmt: skip
        return None if row is None else (int(row[0]), bytes(row[1]))

    def block_hash(self, number: int) -> bytes | None:
        row = self._db.one("SELECT block_hash FROM event_blocks WHERE block_number = ?",
                           (number,))  # fmt: skip
        return None if row is None else bytes(row[0])

    def oldest_kept(self) -> int | None:
        return self._db.scalar("SELECT min(block_number) FROM event_blocks")

    def add(self, logs: Sequence[RawLog], upto: int, upto_hash: bytes) -> None:
        """Keep ``logs`` and move the cursor to block ``upto`` (one transaction: a crash
        leaves the cursor where the logs are)."""
        with self._db.write() as c:
            c.executemany(
                "INSERT OR REPLACE INTO chain_events (block_number, log_index, block_hash, "
                "tx_hash, address, topic0, topic1, topic2, topic3, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(lg.block_number, lg.log_index, lg.block_hash, lg.tx_hash, lg.address.lower(),
                  *(list(lg.topics) + [None] * 4)[:4], lg.data) for lg in logs],
            )  # fmt: skip
            hashes = {lg.block_number: lg.block_hash for lg in logs}
            hashes[upto] = upto_hash
            c.executemany("INSERT OR REPLACE INTO event_blocks (block_number, block_hash) "
                          "VALUES (?, ?)", sorted(hashes.items()))  # fmt: skip
            c.execute("DELETE FROM event_blocks WHERE block_number < ?",
                      (upto - KEEP_BLOCK_HASHES,))  # fmt: skip

    def rewind(self, to_block: int) -> int:
        """Forget every log and block hash above ``to_block``; how many logs were dropped."""
        with self._db.write() as c:
            dropped = c.execute("DELETE FROM chain_events WHERE block_number > ?",
                                (to_block,)).rowcount  # fmt: skip
            c.execute("DELETE FROM event_blocks WHERE block_number > ?", (to_block,))
        return int(dropped)

    def find(self, address: str, topic0: bytes,
             topics: dict[int, bytes] | None = None) -> list[RawLog]:  # fmt: skip
        """The logs of one event of one contract, with the given topics, in chain order."""
        sql = ("SELECT block_number, log_index, block_hash, tx_hash, address, topic0, topic1, "
               "topic2, topic3, data FROM chain_events WHERE address = ? AND topic0 = ?")
        args: list[object] = [address.lower(), topic0]
        for position, value in sorted((topics or {}).items()):
            sql += f" AND topic{int(position)} = ?"
            args.append(value)
        rows = self._db.query(sql + " ORDER BY block_number, log_index", args)
        return [RawLog(int(r[0]), int(r[1]), bytes(r[2]), bytes(r[3]), r[4],
                       tuple(bytes(t) for t in r[5:9] if t is not None), bytes(r[9]))
                for r in rows]  # fmt: skip

    def count(self) -> int:
        return int(self._db.scalar("SELECT count(*) FROM chain_events"))
