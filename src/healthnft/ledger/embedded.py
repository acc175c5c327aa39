"""The embedded ledger: a single-node EVM chain in-process, persisted on disk.

py-evm 0.12 ships only an in-memory database, so this module supplies the one
piece nobody else does (written by hand, and small on purpose): a key-value
store over SQLite that py-evm writes its tries and headers into, and an
eth-tester backend that opens an existing chain at its head instead of
re-creating genesis. Restart cost is one head lookup, whatever the history.

Each mined block is written in a single SQLite transaction, so a crash leaves
the chain at the previous block or at the new one, never in between. The file is
opened under the home's one connection policy and schema ladder
(:mod:`healthnft.store`; ``chain.sqlite`` is at ``user_version`` 1).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eth.abc import AtomicWriteBatchAPI
from eth.chains.base import MiningChain
from eth.db.backends.base import BaseAtomicDB, BaseDB
from eth.db.chain import ChainDB
from eth.exceptions import CanonicalHeadNotFound
from eth.vm.forks import PragueVM
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.backends.pyevm.main import get_default_genesis_params
from eth_utils import ValidationError, to_canonical_address
from toolz import assoc

from healthnft.errors import ChainMissing
from healthnft.store import CHAIN, open_database

# web3's eth-tester provider reports this chain id as a constant; the chain must agree.
CHAIN_ID = 131_277_322_940_537
GAS_LIMIT = 60_000_000
# eth-tester insists on a funded sender even for read-only calls; this address
# (no known key) is funded at genesis and used for nothing else.
CALL_SENDER = "0x00000000000000000000000000000000CA11CA11"
_RESTORE = ("restore it from a backup (a new, empty chain in its place would orphan "
            "every record of this home)")  # fmt: skip


class SqliteKV(BaseAtomicDB):
    """A py-evm database over one SQLite table ``kv(k, v)``.

    Writes outside an explicit :meth:`transaction` commit on their own; inside
    one, they commit together. SQLite's WAL makes a killed process lose at most
    the open transaction.
    """

    def __init__(self, path: Path) -> None:
        self._db = open_database(path, CHAIN)
        self._conn = self._db.connection
        self._lock = self._db.lock

    # Single statements: atomic on their own, or part of the open transaction (held
    # under the database's lock like every other use of the shared connection).

    def __getitem__(self, key: bytes) -> bytes:
        with self._lock:
            row = self._conn.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return row[0]

    def __setitem__(self, key: bytes, value: bytes) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value))

    def __delitem__(self, key: bytes) -> None:
        with self._lock:
            cur = self._conn.execute("DELETE FROM kv WHERE k = ?", (key,))
        if cur.rowcount == 0:
            raise KeyError(key)

    def _exists(self, key: bytes) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1 FROM kv WHERE k = ?", (key,)).fetchone() is not None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group every write inside into one SQLite transaction (nested: a savepoint)."""
        with self._db.write():
            yield

    @contextmanager
    def atomic_batch(self) -> Iterator[AtomicWriteBatchAPI]:
        """py-evm's atomic batch, applied inside one SQLite transaction (or not at all)."""
        with self.transaction():
            batch = _WriteBatch(self)
            try:
                yield batch
            finally:
                batch.closed = True
            batch.apply()

    def close(self) -> None:
        self._db.close()


class _WriteBatch(BaseDB, AtomicWriteBatchAPI):
    """Writes held in memory until the batch ends, then applied to the store at once.

    Written here (rather than py-evm's ``AtomicDBWriteBatch``) because committing that
    class from outside means calling its private methods; this one is a dict of
    pending changes (``None`` marks a deletion) over the target's reads.
    """

    def __init__(self, target: BaseDB) -> None:
        self.target = target
        self.changes: dict[bytes, bytes | None] = {}
        self.closed = False

    def _live(self) -> None:
        if self.closed:
            raise ValidationError("the write batch was used outside its context")

    def __getitem__(self, key: bytes) -> bytes:
        self._live()
        if key in self.changes:
            value = self.changes[key]
            if value is None:
                raise KeyError(key)
            return value
        return self.target[key]

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._live()
        self.changes[key] = value

    def __delitem__(self, key: bytes) -> None:
        if not self._exists(key):
            raise KeyError(key)
        self.changes[key] = None

    def _exists(self, key: bytes) -> bool:
        self._live()
        if key in self.changes:
            return self.changes[key] is not None
        return self.target.exists(key)

    def apply(self) -> None:
        for key, value in self.changes.items():
            if value is None:
                self.target.delete(key)
            else:
                self.target[key] = value


class HealthnftChain(MiningChain):
    """Post-merge chain on the Prague fork with a constant gas limit."""

    chain_id = CHAIN_ID
    vm_configuration = ((0, PragueVM),)

    def create_header_from_parent(self, parent_header: Any, **header_params: Any) -> Any:
        return super().create_header_from_parent(
            parent_header, **assoc(header_params, "gas_limit", parent_header.gas_limit)
        )

    def get_transaction_builder(self) -> Any:
        return super().get_vm().get_transaction_builder()


class PersistentPyEVMBackend(PyEVMBackend):
    """eth-tester's py-evm backend, reopened from disk at its canonical head.

    ``create=False`` opens an existing chain only: a missing file, or one without a
    chain in it, is :class:`~healthnft.errors.ChainMissing` (nothing is written for a
    missing file), never a new genesis in its place.
    """

    def __init__(self, db_path: Path, genesis_alloc: dict[str, int] | None = None,
                 *, create: bool = True) -> None:  # fmt: skip
        if not create and not db_path.is_file():
            raise ChainMissing(f"{db_path} is missing: {_RESTORE}")
        self.db = SqliteKV(db_path)
        self.account_keys = ()
        try:
            ChainDB(self.db).get_canonical_head()
            self.chain = HealthnftChain(self.db)
        except CanonicalHeadNotFound:
            if not create:
                self.db.close()
                raise ChainMissing(f"{db_path} holds no chain: {_RESTORE}") from None
            state = {
                to_canonical_address(addr): {
                    "balance": balance,
                    "nonce": 0,
                    "code": b"",
                    "storage": {},
                }
                for addr, balance in {CALL_SENDER: 10**30, **(genesis_alloc or {})}.items()
            }
            params = get_default_genesis_params({"gas_limit": GAS_LIMIT})
            with self.db.transaction():
                self.chain = HealthnftChain.from_genesis(self.db, params, state)

    def reset_to_genesis(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover
        raise NotImplementedError("a persistent chain is never reset; delete its home instead")

    def send_raw_transaction(self, raw_transaction: bytes) -> bytes:
        with self.db.transaction():
            return super().send_raw_transaction(raw_transaction)

    def mine_blocks(self, num_blocks: int = 1, coinbase: Any = None) -> tuple:
        kwargs = {} if coinbase is None else {"coinbase": coinbase}
        with self.db.transaction():
            return super().mine_blocks(num_blocks, **kwargs)


def open_embedded(db_path: Path, genesis_alloc: dict[str, int] | None = None,
                  *, create: bool = True) -> EthereumTester:  # fmt: skip
    """Open the chain at ``db_path`` with auto-mining on; create it (from
    ``genesis_alloc``) only when ``create`` (else a missing chain is
    :class:`~healthnft.errors.ChainMissing`)."""
    if create:
        os.makedirs(db_path.parent, exist_ok=True)
    backend = PersistentPyEVMBackend(db_path, genesis_alloc, create=create)
    return EthereumTester(backend=backend, auto_mine_transactions=True)


def embedded_web3(db_path: Path, genesis_alloc: dict[str, int] | None = None,
                  *, create: bool = True) -> Any:  # fmt: skip
    """A Web3 over the embedded chain at ``db_path`` (see :func:`open_embedded`)."""
    from web3 import EthereumTesterProvider, Web3

    w3 = Web3(EthereumTesterProvider(open_embedded(db_path, genesis_alloc, create=create)))
    w3.eth.default_account = w3.to_checksum_address(CALL_SENDER)
    return w3
