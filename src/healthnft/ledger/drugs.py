"""Python side of the DrugBatchRegistry contract: medicine packs against counterfeits.

A manufacturer commissions a batch as one Merkle root (the salts and the tree stay in
its home: :mod:`healthnft.drugs.commitments`); a pharmacy or a hospital decommissions a
pack as it dispenses it; the manufacturer recalls; a regulator quarantines::

    drugs = DrugRegistry.install(ledger, admin)          # healthnft init does this
    batch = build_batch(gtin, lot, "281231", serials)
    drugs.commission(manufacturer, batch.batch_key, batch.root, batch.expiry_time)
    pack = batch.pack(0)                                 # or PackBook.find(gtin, serial)
    drugs.dispense(pharmacy, pack.batch_key, pack.index, pack.commitment, pack.proof).outcome
    # 'dispensed'; the same pack again: 'alert' (logged on chain, nothing changed)
    drugs.pack_status(pack.batch_key, pack.index, pack.commitment, pack.proof).status

The batch tree is hashed here as the contract hashes it (:func:`tree_levels`,
:func:`pack_proof`, :func:`proves`): 128-bit nodes, each in a 32-byte word whose top 16
bytes are zero (``leaf = keccak(0x00 || commitment)[:16]``, ``node = keccak(left ||
right)[:16]``, leaves in index order), a missing sibling is the zero word, and a proof is
read with its leaf index (no sorted pairs: the contract keys a pack's state by that
index, two packs to a storage word). Why, and what it costs: the contract's NatSpec.

What the contract guarantees, and what "never reveals who dispensed" can mean on a
ledger every member reads, is in the NatSpec of ``contracts/DrugBatchRegistry.vy``.
This module adds no rule of its own: a refusal is the contract's revert, raised as
:class:`~healthnft.errors.LedgerError` with the contract's message (``drugs: expired``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.logs import DISCARD

from healthnft.errors import LedgerError
from healthnft.ledger.client import Ledger
from healthnft.ledger.compiler import DEFAULT_EVM_VERSION, compile_contract
from healthnft.ledger.merkle import keccak

#: EU FMD: a dispenser may undo a decommission for 10 days.
UNDO_WINDOW_S = 10 * 86400
#: The most packs :meth:`DrugRegistry.dispense_basket` takes (the contract's MAX_BASKET).
MAX_BASKET = 16
#: The contract's events, each a status change (EPCIS export reads them).
EVENTS = ("Commissioned", "Dispensed", "DispenseAlert", "DispenseUndone", "Recalled",
          "Quarantined", "Released")  # fmt: skip

#: The sibling of the last node of an odd level (an empty subtree).
EMPTY = bytes(32)
_PAD = bytes(16)


# -- the batch tree, as the contract hashes it ---------------------------------------


def pack_leaf(commitment: bytes) -> bytes:
    return _PAD + keccak(b"\x00" + commitment)[:16]


def _node(left: bytes, right: bytes) -> bytes:
    return _PAD + keccak(left + right)[:16]


def tree_levels(leaves: list[bytes]) -> list[list[bytes]]:
    """Every level of the tree over ``leaves`` (in index order), the root alone last.
    An odd level's last node is hashed with :data:`EMPTY`, so a level of ``n`` nodes has
    ``ceil(n / 2)`` parents and every leaf's proof is the tree's depth long."""
    if not leaves:
        raise ValueError("a batch needs at least one leaf")
    level = list(leaves)
    out = [level]
    while len(level) > 1:
        if len(level) % 2:
            level = [*level, EMPTY]
        level = [_node(level[i], level[i + 1]) for i in range(0, len(level), 2)]
        out.append(level)
    return out


def proof_positions(count: int, index: int) -> list[tuple[int, int] | None]:
    """(level, position) of each sibling on leaf ``index``'s path in a tree of ``count``
    leaves, leaf level first; None where the sibling is missing (:data:`EMPTY`)."""
    if not 0 <= index < count:
        raise IndexError(f"leaf {index} of a tree of {count}")
    out: list[tuple[int, int] | None] = []
    level, size = 0, count
    while size > 1:
        sibling = index ^ 1
        out.append((level, sibling) if sibling < size else None)
        index, size, level = index // 2, (size + 1) // 2, level + 1
    return out


def pack_proof(levels: list[list[bytes]], index: int) -> list[bytes]:
    """Leaf ``index``'s proof from the :func:`tree_levels` of its tree."""
    return [EMPTY if at is None else levels[at[0]][at[1]]
            for at in proof_positions(len(levels[0]), index)]  # fmt: skip


def proves(commitment: bytes, index: int, proof: list[bytes], root: bytes) -> bool:
    """Whether ``proof`` leads from ``commitment``, the leaf at ``index``, to ``root``
    (what the contract checks; it compares the root's top 192 bits, this the whole)."""
    if index < 0 or index >> len(proof):
        return False
    node = pack_leaf(commitment)
    for sibling in proof:
        node = _node(node, sibling) if index % 2 == 0 else _node(sibling, node)
        index //= 2
    return node == root


@dataclass(frozen=True)
class PackStatus:
    """A pack as the chain sees it (never who dispensed it)."""

    #: The batch was commissioned (and, when a proof was given, the pack is in it).
    known: bool
    expiry: int
    recalled: bool
    quarantined: bool
    #: Unix time of the decommission (0: not dispensed).
    dispensed_at: int
    #: The chain's time the status was read at.
    now: int

    @property
    def expired(self) -> bool:
        return self.known and self.now >= self.expiry

    @property
    def status(self) -> str:
        """One word: unknown, recalled, quarantined, dispensed, expired or active (a
        recall or quarantine outranks the rest: it is what a pharmacist must act on)."""
        if not self.known:
            return "unknown"
        if self.recalled:
            return "recalled"
        if self.quarantined:
            return "quarantined"
        if self.dispensed_at:
            return "dispensed"
        if self.expired:
            return "expired"
        return "active"


@dataclass(frozen=True)
class Dispense:
    """What one dispense did: ``dispensed``, or ``alert`` (the pack was already
    decommissioned; the alert is on chain, nothing else changed)."""

    outcome: str
    receipt: dict
    #: For an alert: when the pack was first decommissioned.
    first_dispensed_at: int = 0


class DrugRegistry:
    """The DrugBatchRegistry contract of a network."""

    def __init__(self, ledger: Ledger, address: str | None = None) -> None:
        self.ledger = ledger
        if address is None:
            if ledger.drugs is None:
                raise LedgerError("this network has no drug registry")
            address = str(ledger.drugs.address)
        self.contract = ledger.w3.eth.contract(address=Web3.to_checksum_address(address),
                                               abi=compile_contract("DrugBatchRegistry").abi)
        #: Receipt of the last transaction sent through this object (gas, events).
        self.last_receipt: dict | None = None
        self._roots: dict[bytes, bytes] = {}  # a batch's root never changes

    @property
    def address(self) -> str:
        return str(self.contract.address)

    # -- finding and installing ------------------------------------------------

    @classmethod
    def of(cls, ledger: Ledger) -> DrugRegistry | None:
        """The drug registry ``ledger`` knows, or None."""
        return None if ledger.drugs is None else cls(ledger)

    @classmethod
    def deploy(cls, ledger: Ledger, sender: LocalAccount,
               evm_version: str = DEFAULT_EVM_VERSION) -> DrugRegistry:  # fmt: skip
        """Deploy the contract over ``ledger``'s registry and attach it to ``ledger`` (its
        events join the index). It needs no owner: every right is a participant kind."""
        compiled = compile_contract("DrugBatchRegistry", evm_version)
        address = ledger.deploy_contract(sender, compiled.abi, compiled.bytecode,
                                         [ledger.registry.address])  # fmt: skip
        ledger.attach_drugs(address)
        return cls(ledger, address)

    # -- the manufacturer ------------------------------------------------------

    def commission_call(self, batch_key: bytes, root: bytes, expiry: int) -> Any:
        return self.contract.functions.commission(batch_key, root, int(expiry))

    def commission(self, manufacturer: LocalAccount, batch_key: bytes, root: bytes,
                   expiry: int) -> dict:  # fmt: skip
        """Commission a batch (``expiry``: the unix time from which it is expired)."""
        return self._send(manufacturer, self.commission_call(batch_key, root, expiry))

    def recall(self, manufacturer: LocalAccount, batch_key: bytes) -> dict:
        return self._send(manufacturer, self.contract.functions.recall(batch_key))

    # -- the regulator ---------------------------------------------------------

    def quarantine(self, regulator: LocalAccount, batch_key: bytes) -> dict:
        return self._send(regulator, self.contract.functions.quarantine(batch_key))

    def release(self, regulator: LocalAccount, batch_key: bytes) -> dict:
        return self._send(regulator, self.contract.functions.release(batch_key))

    # -- the dispenser ---------------------------------------------------------

    def dispense_call(self, batch_key: bytes, index: int, commitment: bytes,
                      proof: list[bytes]) -> Any:  # fmt: skip
        return self.contract.functions.dispense(batch_key, index, commitment, list(proof))

    def dispense(self, dispenser: LocalAccount, batch_key: bytes, index: int, commitment: bytes,
                 proof: list[bytes]) -> Dispense:  # fmt: skip
        """Decommission the pack at leaf ``index`` of its batch. Refused
        (:class:`LedgerError`, nothing changed) for an unknown, recalled, quarantined or
        expired pack; a pack already decommissioned answers ``alert``, which the chain
        keeps for its manufacturer and regulators."""
        receipt = self._send(dispenser, self.dispense_call(batch_key, index, commitment, proof))
        for ev in self.contract.events.DispenseAlert().process_receipt(receipt, errors=DISCARD):
            return Dispense("alert", receipt, int(ev["args"]["dispensed_at"]))
        return Dispense("dispensed", receipt)

    def dispense_basket(
        self, dispenser: LocalAccount, packs: list[tuple[bytes, int, bytes, list[bytes]]]
    ) -> list[Dispense]:
        """Decommission a basket's packs, each ``(batch_key, index, commitment, proof)``, in one
        transaction (up to :data:`MAX_BASKET`): all or none are refused; the answer has
        one :class:`Dispense` per pack, in order (``alert`` for one already dispensed)."""
        if not 1 <= len(packs) <= MAX_BASKET:
            raise LedgerError(f"a basket holds 1 to {MAX_BASKET} packs")
        keys, indexes, commitments, proofs = (list(x) for x in zip(*packs, strict=True))
        call = self.contract.functions.dispense_basket(keys, indexes, commitments,
                                                       [list(p) for p in proofs])  # fmt: skip
        receipt = self._send(dispenser, call)
        # Each pack logs one event, in basket order: Dispensed, or DispenseAlert (a pack
        # may come twice: dispensed, then an alert).
        kinds = (self.contract.events.Dispensed, self.contract.events.DispenseAlert)
        events = [ev for kind in kinds for ev in kind().process_receipt(receipt, errors=DISCARD)]
        events.sort(key=lambda ev: int(ev["logIndex"]))
        return [Dispense("alert", receipt, int(ev["args"]["dispensed_at"]))
                if ev["event"] == "DispenseAlert" else Dispense("dispensed", receipt)
                for ev in events]  # fmt: skip

    def undo(self, dispenser: LocalAccount, batch_key: bytes, index: int, commitment: bytes,
             proof: list[bytes]) -> dict:  # fmt: skip
        """Undo one's own decommission within :data:`UNDO_WINDOW_S` (with the pack's
        proof, so the chain's undo event names the right commitment)."""
        call = self.contract.functions.undo(batch_key, index, commitment, list(proof))
        return self._send(dispenser, call)

    # -- reading ---------------------------------------------------------------

    def root_of(self, batch_key: bytes) -> bytes | None:
        """The batch's Merkle root (None: not commissioned)."""
        if batch_key in self._roots:
            return self._roots[batch_key]
        root = bytes(self.contract.functions.root_of(batch_key).call())
        if root == bytes(32):
            return None
        self._roots[batch_key] = root
        return root

    def manufacturer_of(self, batch_key: bytes) -> str | None:
        who = self.contract.functions.manufacturer_of(batch_key).call()
        return None if int(who, 16) == 0 else str(who)

    def pack_status(self, batch_key: bytes, index: int, commitment: bytes,
                    proof: list[bytes] | None = None,
                    now: int | None = None) -> PackStatus:  # fmt: skip
        """The status of the pack at leaf ``index``. With ``proof`` the pack must also be
        that leaf of its batch (checked here, against the root on chain) or it is
        ``unknown``; without one, only the batch is checked. ``now`` defaults to the
        chain's latest block time."""
        commissioned, expiry, recalled, quarantined, at = (
            self.contract.functions.status_of(batch_key, index).call())  # fmt: skip
        known = bool(commissioned)
        if known and proof is not None:
            root = self.root_of(batch_key)
            known = root is not None and proves(commitment, index, list(proof), root)
        if now is None:
            now = int(self.ledger.w3.eth.get_block("latest")["timestamp"])
        return PackStatus(known, int(expiry), bool(recalled), bool(quarantined), int(at),
                          int(now))  # fmt: skip

    def events(self, batch_key: bytes) -> list[dict[str, Any]]:
        """Every status change of a batch, oldest first: ``event`` (a name of
        :data:`EVENTS`), ``commitment`` (pack events), ``block``, ``time``, ``tx``, and
        the event's other fields (never a dispenser: the contract logs none)."""
        if self.ledger.drugs is None or self.ledger.drugs.address != self.contract.address:
            self.ledger.attach_drugs(self.address)
        out: list[tuple[int, int, dict[str, Any]]] = []
        times: dict[int, int] = {}
        for name in EVENTS:
            for ev in self.ledger.logs(name, batch_key=batch_key):
                block = int(ev["blockNumber"])
                if block not in times:
                    times[block] = int(self.ledger.w3.eth.get_block(block)["timestamp"])
                row: dict[str, Any] = {"event": name, "block": block, "time": times[block],
                                       "tx": "0x" + bytes(ev["transactionHash"]).hex()}
                for key, value in ev["args"].items():
                    row[key] = "0x" + bytes(value).hex() if isinstance(value, bytes) else value
                out.append((block, int(ev["logIndex"]), row))
        return [row for _b, _i, row in sorted(out, key=lambda x: (x[0], x[1]))]

    def _send(self, account: LocalAccount, call: Any) -> dict:
        self.last_receipt = self.ledger.transact(account, call)
        return self.last_receipt


class IndexedStatus:
    """Pack statuses read from the home's event index (SQLite) instead of ``eth_call``.

    Every status change of the contract is an event (:data:`EVENTS`), so the state the
    ``status_of`` view reads is also the fold of the batch's and the pack's events:
    commissioned (root, expiry, manufacturer) by ``Commissioned``; recalled by any
    ``Recalled``; quarantined while ``Quarantined`` outnumber ``Released``; dispensed
    while the pack's ``Dispensed`` outnumber its ``DispenseUndone`` (an alert changes
    nothing, as on chain). On py-evm one ``eth_call`` costs ~12 ms; these reads cost
    tens of microseconds, which is what lets a node answer thousands of verifications a
    second. The index is synced to the chain's head before answering (:meth:`refresh`);
    a caller that knows no write happened since (a served home's read-cache version)
    skips the sync. ``tests/drugs/test_drug_service.py`` checks it agrees with the view.
    """

    def __init__(self, registry: DrugRegistry) -> None:
        from healthnft.ledger.events import _signature

        self.registry = registry
        self.ledger = registry.ledger
        self.address = registry.address.lower()
        self._topic0 = {
            e["name"]: bytes(Web3.keccak(text=_signature(e)))
            for e in registry.contract.abi if e.get("type") == "event"
        }  # fmt: skip
        self._batches: dict[bytes, tuple[str, bytes, int] | None] = {}
        #: batch -> (recalled, quarantined), as of the last sync (cleared by each sync).
        self._flags: dict[bytes, tuple[bool, bool]] = {}
        self._version: int | None = None
        self._now = 0
        #: The block the last sync read (chain state is fixed at a block: a cache key).
        self.head = 0

    def refresh(self, version: int | None = None) -> None:
        """Sync the index and read the head's time, unless ``version`` (a counter of
        writes, e.g. :attr:`ReadCache.version`) says nothing changed since the last time."""
        if version is not None and version == self._version:
            return
        if self.ledger.drugs is None or self.ledger.drugs.address != self.registry.address:
            self.ledger.attach_drugs(self.registry.address)
        self.ledger.events.sync()
        self._flags.clear()
        head = self.ledger.w3.eth.get_block("latest")
        self._now, self.head = int(head["timestamp"]), int(head["number"])
        self._version = version

    def _logs(self, event: str, *topics: bytes) -> list[Any]:
        return self.ledger.events.store.find(self.address, self._topic0[event],
                                             dict(enumerate(topics, start=1)))  # fmt: skip

    def batch(self, batch_key: bytes) -> tuple[str, bytes, int] | None:
        """(manufacturer, root, expiry) of a commissioned batch, or None (a batch's
        commission never changes once made: kept)."""
        if self._batches.get(batch_key) is None:
            found = self._logs("Commissioned", batch_key)
            if not found:
                return None
            log = found[0]
            maker = Web3.to_checksum_address(log.topics[2][-20:])
            self._batches[batch_key] = (maker, log.data[:32],
                                        int.from_bytes(log.data[32:64], "big"))  # fmt: skip
        return self._batches[batch_key]

    def manufacturer_of(self, batch_key: bytes) -> str | None:
        batch = self.batch(batch_key)
        return None if batch is None else batch[0]

    def pack_status(self, batch_key: bytes, index: int, commitment: bytes,
                    proof: list[bytes] | None = None) -> PackStatus:  # fmt: skip
        """As :meth:`DrugRegistry.pack_status`, at the head of the last :meth:`refresh`."""
        batch = self.batch(batch_key)
        if batch is None:
            return PackStatus(False, 0, False, False, 0, self._now)
        _maker, root, expiry = batch
        known = proof is None or proves(commitment, index, list(proof), root)
        flags = self._flags.get(batch_key)
        if flags is None:
            quarantines = len(self._logs("Quarantined", batch_key))
            flags = self._flags[batch_key] = (bool(self._logs("Recalled", batch_key)),
                                              quarantines > len(self._logs("Released",
                                                                           batch_key)))  # fmt: skip
        recalled, quarantined = flags
        dispensed = self._logs("Dispensed", batch_key, commitment)
        at = 0
        if len(dispensed) > len(self._logs("DispenseUndone", batch_key, commitment)):
            block = self.ledger.w3.eth.get_block(dispensed[-1].block_number)
            at = int(block["timestamp"])
        return PackStatus(known, expiry, recalled, quarantined, at, self._now)
