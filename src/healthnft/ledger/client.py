"""The one client every backend shares: contracts over web3.py.

Transactions are signed locally with an explicit gas limit and sent raw
(measured ~33 tx/s on eth-tester against ~14 with ``.transact()``, which
estimates gas on every call). Gas is estimated once per call through
``eth_estimateGas``, which also surfaces the contract's revert reason before
anything is sent; revert reasons become :class:`~healthnft.errors.LedgerError`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.abi import collapse_if_tuple, function_abi_to_4byte_selector
from web3 import Web3
from web3.contract.base_contract import BaseContractFunctions
from web3.contract.contract import Contract, ContractFunction, ContractFunctions
from web3.exceptions import BadFunctionCallOutput, Web3RPCError
from web3.logs import DISCARD

from healthnft.errors import LedgerError, Unavailable
from healthnft.ledger.compiler import DEFAULT_EVM_VERSION, compile_contract
from healthnft.ledger.events import EventIndex
from healthnft.ledger.nonces import nonce_manager
from healthnft.ledger.readcache import ReadCache, view
from healthnft.ledger.rpc import read_ahead_of
from healthnft.store.events import ChainEvents

KIND_CODES = {
    "patient": 1,
    "hospital": 2,
    "pharma": 3,
    "research": 4,
    "insurer": 5,
    "government": 6,
    "custodian": 7,
    "manufacturer": 8,
    "pharmacy": 9,
}
KIND_NAMES = {v: k for k, v in KIND_CODES.items()}
#: Kinds a patient's standing policy may name (ConsentManager accepts codes 2..6 only:
#: custodians, manufacturers and pharmacies never request records under a policy).
POLICY_KINDS = ("hospital", "pharma", "research", "insurer", "government")
#: Kinds that may dispense (decommission) a medicine pack: a hospital dispenses through
#: its own pharmacy.
DISPENSER_KINDS = ("pharmacy", "hospital")
#: Kinds the registry lets hold the issuer role (mint records): hospitals, and pharmacies
#: (the MedicationDispense of a pack they dispense). Issuers by default when admitted.
ISSUER_KINDS = ("hospital", "pharmacy")


@dataclass(frozen=True)
class SentTransaction:
    """A signed transaction, kept so a crashed run can re-send the very same bytes."""

    raw: bytes
    tx_hash: bytes
    nonce: int
    #: Who signed it: a nonce that never reached the node is given back to its sender.
    sender: str = ""


@dataclass(frozen=True)
class BatchInfo:
    batch_id: int
    owner: str
    start: int
    end: int
    root: bytes


def _message(exc: Exception) -> str:
    """The node's own words: web3 wraps JSON-RPC errors as a dict in ``args[0]``."""
    first = exc.args[0] if exc.args else None
    if isinstance(first, dict) and isinstance(first.get("message"), str):
        return first["message"]
    return getattr(exc, "message", None) or str(exc)


def _failure_reason(exc: Exception) -> str:
    text = _message(exc)
    if "revert" in text:
        return revert_reason(exc)
    if "afford" in text or "insufficient funds" in text:
        return "the sending account has no funds for gas"
    return f"transaction is invalid ({type(exc).__name__})"


def revert_reason(exc: Exception) -> str:
    """The contract's own message from a revert, without web3's wrapping."""
    msg = _message(exc)
    msg = msg.removeprefix("execution reverted: ").strip()
    return msg or "transaction reverted"


def call_data(call: Any) -> bytes:
    """The calldata of a bound contract function: its 4-byte selector and ABI-encoded args.

    Written here because web3.py keeps its encoder private; the ABI is the contract's own.
    """
    types = [collapse_if_tuple(dict(arg)) for arg in call.abi["inputs"]]
    return function_abi_to_4byte_selector(call.abi) + abi_encode(types, list(call.args))


_READERS: ThreadPoolExecutor | None = None
_READERS_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """Threads for independent views, kept for the process (a thread started per read
    waits a GIL switch interval or more to run on a busy machine). Its tasks are single
    views: they never wait on another task of this pool."""
    global _READERS  # noqa: PLW0603 - one pool per process, made on first use
    with _READERS_LOCK:
        if _READERS is None:
            _READERS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="views")
        return _READERS


def _plain(kind: str, value: Any) -> Any:
    """A decoded return value as web3 gives it: checksummed addresses, lists for arrays."""
    if kind.endswith("]"):
        inner = kind[: kind.rindex("[")]
        return [_plain(inner, v) for v in value]
    if kind == "address":
        return Web3.to_checksum_address(value)
    return value


class _ViewFunction(ContractFunction):
    """A contract function whose plain ``call()`` encodes and decodes with the ABI entry
    it is bound to: web3 looks that entry up again among the contract's functions twice
    per call (~2.5 ms of Python per view on an idle core, measured; an open makes
    dozens of views across its processes). The node sees the same ``eth_call``; a call
    with options, keyword arguments or tuple outputs takes web3's own path."""

    def call(self, transaction: Any = None, block_identifier: Any = None,
             state_override: Any = None, ccip_read_enabled: bool | None = None) -> Any:  # fmt: skip
        kinds = [collapse_if_tuple(dict(out)) for out in self.abi.get("outputs", [])]
        if (transaction or block_identifier is not None or state_override or ccip_read_enabled
                or self.kwargs or any("(" in k for k in kinds)
                or getattr(self.w3.provider, "_is_batching", False)):  # fmt: skip
            return super().call(transaction, block_identifier, state_override, ccip_read_enabled)
        raw = bytes(self.w3.eth.call({"to": self.address, "data": call_data(self)}))
        if not raw and kinds:
            raise BadFunctionCallOutput(f"could not call {self.fn_name} at {self.address}: "
                                        "no contract code answered")  # fmt: skip
        values = [_plain(k, v) for k, v in zip(kinds, abi_decode(kinds, raw), strict=True)]
        return values[0] if len(values) == 1 else values


class _ViewFunctions(ContractFunctions):
    """``contract.functions`` handing out :class:`_ViewFunction` objects."""

    def __init__(self, abi: Any, w3: Web3, address: Any = None,
                 decode_tuples: bool | None = False) -> None:  # fmt: skip
        BaseContractFunctions.__init__(self, abi, w3, _ViewFunction, address, decode_tuples)


def _contract(w3: Web3, address: str, name: str) -> Contract:
    """The deployed contract ``name`` at ``address``, with fast views."""
    contract = w3.eth.contract(address=Web3.to_checksum_address(address),
                               abi=compile_contract(name).abi)  # fmt: skip
    contract.functions = _ViewFunctions(contract.abi, w3, contract.address)
    return contract


class Ledger:
    """The network's contracts at known addresses, reached through one Web3.

    ``confirmations`` is how many blocks (the receipt's own included) a transaction
    waits for before it counts as done: 1 on the embedded chain and anvil, more on a
    network of validators where a short fork can drop the newest block.
    """

    def __init__(
        self,
        w3: Web3,
        registry: str,
        token: str,
        consent: str | None = None,
        *,
        confirmations: int = 1,
        receipt_timeout_s: float = 120.0,
        drugs: str | None = None,
    ) -> None:
        self.w3 = w3
        self.nonces = nonce_manager(w3)
        self.confirmations = max(1, int(confirmations))
        self.receipt_timeout_s = receipt_timeout_s
        self.consent = _contract(w3, consent, "ConsentManager") if consent else None
        self.registry = _contract(w3, registry, "ParticipantRegistry")
        self.token = _contract(w3, token, "HealthRecordToken")
        #: The DrugBatchRegistry (see :mod:`healthnft.ledger.drugs`), when deployed.
        self.drugs: Any = None
        self.chain_id = w3.eth.chain_id
        self.read_cache: ReadCache | None = None
        self._events: EventIndex | None = None
        self._fee_cache: tuple[float, dict[str, int]] | None = None
        if drugs:
            self.attach_drugs(drugs)

    def attach_drugs(self, address: str) -> None:
        """Know the DrugBatchRegistry at ``address``: its events are indexed with the
        others' from now on (a contract deployed after the index's last sync)."""
        self.drugs = self.w3.eth.contract(address=Web3.to_checksum_address(address),
                                          abi=compile_contract("DrugBatchRegistry").abi)
        known = [c.address for c in self._events.contracts] if self._events else []
        if self._events is not None and self.drugs.address not in known:
            self._events.contracts.append(self.drugs)

    def _indexed_contracts(self) -> list[Any]:
        return [self.registry, self.token, self.consent, self.drugs]

    # -- events ---------------------------------------------------------------

    def attach_event_store(self, store: ChainEvents) -> None:
        """Keep the event index in ``store`` (a home's index) rather than in memory."""
        self._events = EventIndex(self.w3, self._indexed_contracts(), store,
                                  confirmations=self.confirmations)  # fmt: skip

    @property
    def events(self) -> EventIndex:
        if self._events is None:  # a client without a home: an in-memory index
            self._events = EventIndex(self.w3, self._indexed_contracts(),
                                      confirmations=self.confirmations)  # fmt: skip
        return self._events

    def logs(self, event: str, **filters: Any) -> list[Any]:
        """The ``event`` logs (of whichever contract declares it) whose indexed arguments
        equal ``filters``, oldest first: the event index is synced first, so this reads
        only the blocks since the last call, never the chain from block 0."""
        for contract in (self.consent, self.token, self.registry, self.drugs):
            if contract is not None and any(e.get("type") == "event" and e["name"] == event
                                            for e in contract.abi):  # fmt: skip
                self._sync_events()
                return self.events.find(contract, event, **filters)
        raise LedgerError(f"no contract of this network emits {event}")

    @contextmanager
    def read_ahead(self, views: list[Any], *, simulations: list[tuple[str, Any]] = (),
                   nonces: list[str] = (), blocks: list[int] = (),
                   head: bool = False) -> Iterator[bool]:  # fmt: skip
        """Send these reads to the node in one batch request; inside, this thread's
        identical reads are answered from it (:class:`~healthnft.ledger.rpc.ReadAhead`):
        ``views`` (bound contract functions), ``simulations`` ((sender, bound function):
        :meth:`simulate`), ``nonces`` (the pending count :meth:`sign` reserves from),
        ``blocks`` (headers by number) and ``head`` (the latest block number). Yields
        False when the client cannot batch (the embedded chain) or the batch failed:
        every read then goes to the node as usual."""
        ahead = read_ahead_of(self.w3)
        if ahead is None:
            yield False
            return
        calls: list[tuple[str, list[Any]]] = [
            ("eth_call", [{"to": v.address, "data": "0x" + call_data(v).hex()}, "latest"])
            for v in views
        ]
        calls += [("eth_call", [{"from": Web3.to_checksum_address(sender), "to": c.address,
                                 "data": "0x" + call_data(c).hex()}, "latest"])
                  for sender, c in simulations]  # fmt: skip
        calls += [("eth_getTransactionCount", [Web3.to_checksum_address(a), "pending"])
                  for a in nonces]  # fmt: skip
        calls += [("eth_getBlockByNumber", [hex(n), False]) for n in blocks]
        calls += [("eth_blockNumber", [])] if head else []
        with ahead.ahead(calls) as kept:
            yield kept > 0

    def _sync_events(self) -> None:
        """Sync the event index, its two first reads (the head, and the last synced
        block's hash that tells a reorganisation) sent to the node as one batch."""
        cursor = self.events.store.cursor()
        with self.read_ahead([], head=True, blocks=[cursor[0]] if cursor else []):
            self.events.sync()

    def enable_read_cache(self, ttl_s: float = 5.0) -> ReadCache:
        """Memoize views until the next write (see :mod:`healthnft.ledger.readcache`)."""
        if self.read_cache is None:
            self.read_cache = ReadCache(ttl_s)
            self.w3.middleware_onion.add(self.read_cache.middleware(), name="healthnft-reads")
        return self.read_cache

    # -- deployment -----------------------------------------------------------

    def missing_contracts(self) -> list[str]:
        """The contracts with no code at their address on this chain (none: all there).

        A home's config names addresses; a chain that is not the one they were
        deployed on (replaced, or started afresh) answers every view with empty bytes.
        """
        named = [("ParticipantRegistry", self.registry), ("HealthRecordToken", self.token),
                 ("ConsentManager", self.consent), ("DrugBatchRegistry", self.drugs)]
        return [name for name, c in named
                if c is not None and not self.w3.eth.get_code(c.address)]  # fmt: skip

    @classmethod
    def deploy(
        cls,
        w3: Web3,
        admin: LocalAccount,
        evm_version: str = DEFAULT_EVM_VERSION,
        *,
        confirmations: int = 1,
        receipt_timeout_s: float = 120.0,
    ) -> Ledger:
        """Deploy registry, token and consent manager; the admin owns registry and consent.
        Every deployment's receipt status and code are checked (a node on an older EVM
        has "deployed" nothing without an error)."""
        reg = compile_contract("ParticipantRegistry", evm_version)
        tok = compile_contract("HealthRecordToken", evm_version)
        con = compile_contract("ConsentManager", evm_version)
        nowhere = "0x" + "00" * 20
        deployer = cls(w3, nowhere, nowhere, None, confirmations=confirmations,
                       receipt_timeout_s=receipt_timeout_s)  # fmt: skip
        registry = deployer.deploy_contract(admin, reg.abi, reg.bytecode, [])
        token = deployer.deploy_contract(admin, tok.abi, tok.bytecode, [registry])
        consent = deployer.deploy_contract(admin, con.abi, con.bytecode, [registry, token])
        return cls(w3, registry, token, consent, confirmations=confirmations,
                   receipt_timeout_s=receipt_timeout_s)  # fmt: skip

    def deploy_contract(self, admin: LocalAccount, abi: list, bytecode: bytes,
                        args: list) -> str:  # fmt: skip
        """Deploy one contract from ``admin``; its address, once confirmed with code."""
        data = self.w3.eth.contract(abi=abi, bytecode=bytecode).constructor(*args)
        tx = {"data": data.data_in_transaction, "value": 0, "gas": 6_000_000}
        receipt = self.broadcast(self._sign_tx(admin, tx), what="contract deployment")
        address = receipt.get("contractAddress")
        if not address or not self.w3.eth.get_code(address):
            raise LedgerError("contract deployment failed (check the node's EVM version)")
        return str(address)

    # -- transactions ---------------------------------------------------------

    def sign(
        self,
        account: LocalAccount,
        call: Any,
        nonce: int | None = None,
        gas: int | None = None,
        value: int = 0,
    ) -> SentTransaction:
        """Sign ``call`` (a bound contract function) without sending it."""
        tx: dict[str, Any] = {
            "from": account.address,
            "to": call.address,
            "data": call_data(call),
            "value": value,
        }
        if gas is None:
            gas = self._estimate(tx)
        del tx["from"]
        return self._sign_tx(account, tx, gas=gas, nonce=nonce)

    def gas_for(self, account: LocalAccount, call: Any, value: int = 0) -> int:
        """The gas limit :meth:`sign` would give ``call`` from ``account`` (an estimate with
        a margin; the contract's refusal is :class:`LedgerError`)."""
        return self._estimate({"from": account.address, "to": call.address,
                               "data": call_data(call), "value": value})  # fmt: skip

    def _estimate(self, tx: dict[str, Any]) -> int:
        try:
            return int(self.w3.eth.estimate_gas(tx) * 1.25) + 10_000  # type: ignore[arg-type]
        except Exception as exc:  # web3, eth-tester and nodes each raise their own
            raise LedgerError(_failure_reason(exc)) from None

    def unsigned(self, sender: str, call: Any, value: int = 0) -> dict[str, Any]:
        """The transaction :meth:`sign` would make of ``call`` from ``sender``, unsigned,
        for a key this process does not hold (a patient's device signs it): the same gas
        estimate and margin, fees, chain id and type, and the nonce the shared manager
        would give ``sender`` next (not reserved: the device may never sign it). The
        contract's refusal is :class:`LedgerError`, before anything is signed."""
        sender = Web3.to_checksum_address(sender)
        tx: dict[str, Any] = {"from": sender, "to": call.address, "data": call_data(call),
                              "value": value}  # fmt: skip
        tx["gas"] = self._estimate(tx)
        del tx["from"]
        tx.update(self._fees(), nonce=self.nonces.peek(sender), chainId=self.chain_id, type=2)
        return tx

    def relay(self, raw: bytes, sender: str, nonce: int, tx_hash: bytes,
              what: str = "transaction") -> dict:  # fmt: skip
        """Send a transaction signed elsewhere by ``sender`` (checked by the caller) and
        return its successful receipt, as :meth:`broadcast` does. The shared nonce manager
        learns its nonce, so this process never signs another one with it. Idempotent: the
        same bytes again answer the same receipt. A nonce a mined transaction already used
        is refused before sending (it could never be mined), and so is one ahead of the
        account's next nonce (it would wait in the pool for ever)."""
        sent = SentTransaction(raw, tx_hash, nonce)  # no sender: no nonce of ours to give back
        if self.receipt_of(tx_hash) is None:
            mined = int(self.w3.eth.get_transaction_count(Web3.to_checksum_address(sender),
                                                          "latest"))  # fmt: skip
            if nonce < mined:
                raise LedgerError(f"{what} rejected: its nonce {nonce} was already used by "
                                  "another transaction of this account; prepare it again")
            if nonce > self.nonces.peek(sender):
                raise LedgerError(f"{what} rejected: its nonce {nonce} is ahead of this "
                                  "account's transactions (it would wait for ever); prepare "
                                  "it again")  # fmt: skip
            self.submit(sent, what)
        self.nonces.observe(sender, nonce)
        return self.confirm(sent, what)

    def _sign_tx(self, account: LocalAccount, tx: dict[str, Any], *, gas: int | None = None,
                 nonce: int | None = None) -> SentTransaction:  # fmt: skip
        """Fees, chain id and a nonce (from the shared manager unless given), signed."""
        if gas is not None:
            tx["gas"] = gas
        fees = self._fees()
        if nonce is None:
            nonce = self.nonces.reserve(account.address)
        tx.update(fees, nonce=nonce, chainId=self.chain_id, type=2)
        signed = account.sign_transaction(tx)
        return SentTransaction(bytes(signed.raw_transaction), bytes(signed.hash), nonce,
                               account.address)  # fmt: skip

    def fees(self) -> dict[str, int]:
        """The fees the next transaction signed here will offer (see :meth:`_fees`)."""
        return self._fees()

    def _fees(self) -> dict[str, int]:
        """Twice the latest base fee (plus a tip of 1 wei), read at most once a second: a
        base fee rises by at most 12.5 % a block, so a second-old reading still covers
        the next block, and a custodian signing a log per release saves a block fetch."""
        now = time.monotonic()
        cached = self._fee_cache
        if cached is not None and now - cached[0] < 1.0:
            return dict(cached[1])
        base = self.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0
        tip = 1
        fees = {"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip}
        self._fee_cache = (now, fees)
        return dict(fees)

    def broadcast(self, sent: SentTransaction, what: str = "transaction") -> dict:
        """Send a signed transaction (idempotent) and return its successful receipt, once
        it has ``confirmations`` blocks: :meth:`submit` then :meth:`confirm`."""
        self.submit(sent, what)
        return self.confirm(sent, what)

    def submit(self, sent: SentTransaction, what: str = "transaction") -> None:
        """Hand a signed transaction to the node without waiting for its block, so a
        caller can do other work meanwhile (the minter prepares its next batch).

        Idempotent: re-sending a transaction the node knows, or one already mined, is
        fine: once this returns, the node holds it (or has mined it, or mined another one
        with its nonce: ``nonce too low``, which only the receipt or :meth:`superseded`
        can tell apart). Anything else is :class:`LedgerError`, and the nonce goes back
        to the sender's manager (the transaction never reached the node)."""
        try:
            self.w3.eth.send_raw_transaction(sent.raw)
        except (Web3RPCError, ValueError) as exc:
            text = _message(exc).lower()
            if "known" not in text and "already" not in text and "nonce too low" not in text:
                if sent.sender:
                    self.nonces.release(sent.sender, sent.nonce)
                raise LedgerError(f"{what} rejected: {revert_reason(exc)}") from None

    def simulate(self, account: LocalAccount, call: Any) -> None:
        """Run ``call`` as ``account`` would send it, on the latest block, without sending
        it (one ``eth_call``: the check an estimate makes, without its binary search);
        the contract's refusal is :class:`LedgerError`."""
        tx = {"from": account.address, "to": call.address, "data": call_data(call)}
        try:
            self.w3.eth.call(tx)
        except Exception as exc:  # web3, eth-tester and nodes each raise their own
            raise LedgerError(_failure_reason(exc)) from None

    def superseded(self, sent: SentTransaction) -> bool:
        """Whether an unmined ``sent`` can never be mined: a *mined* transaction of its
        sender already used its nonce (unlike :meth:`dropped`, a transaction still
        waiting in the node's pool is not counted as gone)."""
        mined = self.w3.eth.get_transaction_count(Web3.to_checksum_address(sent.sender),
                                                  "latest")  # fmt: skip
        return sent.nonce < int(mined) and self.receipt_of(sent.tx_hash) is None

    @property
    def concurrent(self) -> bool:
        """Whether threads may use this client at once: a JSON-RPC node serves each
        request on its own; the embedded chain (eth-tester over py-evm, in this process)
        is not made for it and gains nothing from it under the GIL."""
        from web3.providers.eth_tester import EthereumTesterProvider

        return not isinstance(self.w3.provider, EthereumTesterProvider)

    def confirm(self, sent: SentTransaction, what: str = "transaction") -> dict:
        """The successful receipt of a submitted transaction, once it has
        ``confirmations`` blocks; a revert is :class:`LedgerError` with the contract's
        reason, no block within the timeout :class:`Unavailable`."""
        receipt = self._await_receipt(sent.tx_hash, what)
        if receipt["status"] != 1:
            raise LedgerError(f"{what} reverted on chain: {self._replay_reason(sent)}")
        return receipt

    def _await_receipt(self, tx_hash: bytes, what: str = "transaction") -> dict:
        """The receipt once ``confirmations`` blocks hold it. A receipt whose block left
        the chain meanwhile (a short reorganisation) is awaited again; none within the
        timeout is :class:`Unavailable` (a retry re-sends the same transaction)."""
        from web3.exceptions import TimeExhausted

        late = Unavailable(
            f"the {what} was not mined within {self.receipt_timeout_s:g} s; the ledger node "
            "may be behind or its validators stopped; retry (the same transaction is sent "
            "again, never a second one)"
        )
        deadline = time.monotonic() + self.receipt_timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise late
            try:
                receipt = dict(self.w3.eth.wait_for_transaction_receipt(
                    tx_hash, timeout=left, poll_latency=0.1))  # fmt: skip
            except TimeExhausted:
                raise late from None
            if self.confirmations <= 1:
                return receipt
            while time.monotonic() < deadline:
                head = int(self.w3.eth.block_number)
                if head - int(receipt["blockNumber"]) + 1 >= self.confirmations:
                    again = self.receipt_of(tx_hash)
                    if again is not None and again["blockHash"] == receipt["blockHash"]:
                        return again
                    break  # its block left the chain (a short reorganisation): await anew
                time.sleep(0.2)

    def receipt_of(self, tx_hash: bytes) -> dict | None:
        """The receipt of a mined transaction, or None (pending, dropped or unknown)."""
        from web3.exceptions import TransactionNotFound

        try:
            return dict(self.w3.eth.get_transaction_receipt(tx_hash))
        except TransactionNotFound:
            return None

    def dropped(self, address: str, sent: SentTransaction) -> bool:
        """Whether an unmined ``sent`` can never be mined: its nonce went to another one."""
        return sent.nonce < self.w3.eth.get_transaction_count(address, "pending")

    def _replay_reason(self, sent: SentTransaction) -> str:
        """Why a mined transaction reverted, by re-running it as a call (best effort)."""
        tx = self.w3.eth.get_transaction(sent.tx_hash)
        try:
            self.w3.eth.call({"from": tx["from"], "to": tx["to"], "data": tx["input"]})
        except Exception as exc:  # each backend raises its own type
            return _failure_reason(exc)
        return "reason unknown"

    def minted_batch(self, receipt: dict) -> tuple[int, bytes] | None:
        """(batch id, root) from a mint receipt's BatchMinted event, if it has one."""
        for event in self.token.events.BatchMinted().process_receipt(receipt, errors=DISCARD):
            return int(event["args"]["batch_id"]), bytes(event["args"]["root"])
        return None

    def transact(self, account: LocalAccount, call: Any, value: int = 0) -> dict:
        """Sign, send and wait: the path for everything but minting."""
        return self.broadcast(self.sign(account, call, value=value))

    def fund(self, sender: LocalAccount, to: str, wei: int) -> dict:
        tx = {"to": Web3.to_checksum_address(to), "value": wei, "gas": 21_000}
        return self.broadcast(self._sign_tx(sender, tx), what="payment")

    # -- registry -------------------------------------------------------------

    def register(self, admin: LocalAccount, address: str, kind: str, enc_key: bytes) -> None:
        if kind not in KIND_CODES:
            raise LedgerError(f"unknown participant kind {kind!r}")
        call = self.registry.functions.register(
            Web3.to_checksum_address(address), KIND_CODES[kind], enc_key
        )
        self.admin_transact(admin, call)

    def set_issuer(self, admin: LocalAccount, address: str, status: bool = True) -> None:
        call = self.registry.functions.set_issuer(Web3.to_checksum_address(address), status)
        self.admin_transact(admin, call)

    def bind_did(self, admin: LocalAccount, address: str, did_key: bytes) -> None:
        call = self.registry.functions.bind_did(Web3.to_checksum_address(address), did_key)
        self.admin_transact(admin, call)

    def set_registrar(self, admin: LocalAccount, address: str, status: bool = True) -> None:
        """Name (or withdraw) an enrolment office that registers patients only (so the
        office's key, unlike the owner's, can never add an institution or an issuer)."""
        call = self.registry.functions.set_registrar(Web3.to_checksum_address(address), status)
        self.admin_transact(admin, call)

    @view
    def is_registrar(self, address: str) -> bool:
        return bool(self.registry.functions.is_registrar(Web3.to_checksum_address(address)).call())

    def admin_transact(self, admin: LocalAccount, call: Any) -> dict:
        """An owner-only call; once a governance council owns the contracts (see
        :mod:`healthnft.ledger.governance`), the refusal says to propose it instead."""
        try:
            return self.transact(admin, call)
        except LedgerError as exc:
            owner = self.registry.functions.owner().call()
            if "caller is not the owner" not in str(exc) or not self.w3.eth.get_code(owner):
                raise
            hint = (
                "this network is governed by its founding institutions' council; propose "
                "the change (healthnft governance propose) for k of them to approve"
            )
            raise LedgerError(f"{exc}: {hint}") from None

    @view
    def did_key(self, address: str) -> bytes | None:
        """The Ed25519 key of the participant's did:key bound on chain, if any."""
        key = bytes(self.registry.functions.did_key(Web3.to_checksum_address(address)).call())
        return None if key == bytes(32) else key

    @view
    def did_owner(self, did_key: bytes) -> str | None:
        """The participant whose did:key is ``did_key``, if one is bound."""
        owner = self.registry.functions.did_owner(did_key).call()
        return None if int(owner, 16) == 0 else owner

    def revoke_credential(self, issuer: LocalAccount, credential_hash: bytes) -> None:
        self.transact(issuer, self.registry.functions.revoke_credential(credential_hash))

    @view
    def is_revoked(self, issuer: str, credential_hash: bytes) -> bool:
        return bool(
            self.registry.functions.is_revoked(
                Web3.to_checksum_address(issuer), credential_hash
            ).call()
        )

    @view
    def revoked_among(self, issuer: str, credential_hashes: list[bytes]) -> list[bool]:
        """Revocation status of many of ``issuer``'s credentials, 1,024 per call."""
        out: list[bool] = []
        who = Web3.to_checksum_address(issuer)
        for i in range(0, len(credential_hashes), 1024):
            chunk = credential_hashes[i : i + 1024]
            out.extend(bool(x) for x in self.registry.functions.revoked_among(who, chunk).call())
        return out

    @view
    def participant(self, address: str) -> tuple[str | None, bool, bytes]:
        """(kind name or None, active, encryption key) as the chain records them."""
        kind, active, key = self.registry.functions.participant(
            Web3.to_checksum_address(address)
        ).call()
        return KIND_NAMES.get(kind), bool(active), bytes(key)

    def participants(self, addresses: list[str]) -> list[tuple[str | None, bool, bytes]]:
        """:meth:`participant` of each address, read in one batch request when the node
        takes them (a network's custodians, on every grantee's open), else at once."""
        views = [self.registry.functions.participant(Web3.to_checksum_address(a))
                 for a in addresses]  # fmt: skip
        with self.read_ahead(views) as batched:
            if batched or len(addresses) < 2 or not self.concurrent:
                return [self.participant(a) for a in addresses]
        return list(_pool().map(self.participant, addresses))

    @view
    def is_member(self, address: str) -> bool:
        return bool(
            self.registry.functions.is_member(Web3.to_checksum_address(address)).call()
        )

    @view
    def is_issuer(self, address: str) -> bool:
        return bool(
            self.registry.functions.is_issuer(Web3.to_checksum_address(address)).call()
        )

    # -- tokens ---------------------------------------------------------------

    def mint_call(self, owner: str, count: int, start: int, root: bytes) -> Any:
        return self.token.functions.mint_batch(
            Web3.to_checksum_address(owner), count, start, root
        )

    @view
    def next_token_id(self) -> int:
        return int(self.token.functions.next_token_id().call())

    @view
    def batch_count(self) -> int:
        return int(self.token.functions.batch_count().call())

    @view
    def batch(self, batch_id: int) -> BatchInfo:
        owner, start, end, root = self.token.functions.batch(batch_id).call()
        return BatchInfo(batch_id, owner, int(start), int(end), bytes(root))

    @view
    def batch_of(self, token_id: int) -> BatchInfo | None:
        """The batch that minted ``token_id``, or None when no such token exists."""
        if not 0 < token_id < self.next_token_id():
            return None
        return self.batch(int(self.token.functions.batch_of(token_id).call()))

    @view
    def owner_of(self, token_id: int) -> str | None:
        """The token's owner, or None when no such token exists (or it was burned).

        One call: ``owners_of`` answers the empty address for an unknown or burned id,
        where ``ownerOf`` reverts (this read was three calls, twice in every open)."""
        if not 0 < token_id < 2**256:  # no uint256 names it: no token
            return None
        owner = self.token.functions.owners_of([token_id]).call()[0]
        return None if int(owner, 16) == 0 else owner

    @view
    def owners_of(self, token_ids: list[int]) -> list[str | None]:
        """On-chain owners of many tokens (None for unknown ones), 1,024 per call."""
        out: list[str | None] = []
        for i in range(0, len(token_ids), 1024):
            chunk = self.token.functions.owners_of(token_ids[i : i + 1024]).call()
            out.extend(None if int(a, 16) == 0 else a for a in chunk)
        return out

    @view
    def is_burned(self, token_id: int) -> bool:
        return bool(self.token.functions.is_burned(token_id).call())

    def burn(self, owner: LocalAccount, token_id: int) -> dict:
        return self.transact(owner, self.token.functions.burn(token_id))

    def transfer_call(self, owner: str, to: str, token_id: int) -> Any:
        """ERC-721 ``transferFrom(owner, to, token_id)``, sent by the owner or an approved
        member; ``to`` must be a member."""
        return self.token.functions.transferFrom(
            Web3.to_checksum_address(owner), Web3.to_checksum_address(to), token_id
        )

    def approve(self, owner: LocalAccount, to: str, token_id: int) -> dict:
        """ERC-721 ``approve``: ``to`` (an institution, or the zero address to clear) may
        move ``token_id`` once, within the token's ``APPROVAL_LIFETIME``."""
        call = self.token.functions.approve(Web3.to_checksum_address(to), token_id)
        return self.transact(owner, call)

    def set_approval_for_all(self, owner: LocalAccount, operator: str, approved: bool) -> dict:
        """ERC-721 ``setApprovalForAll``: ``operator`` (an institution) may move all of
        ``owner``'s tokens, until withdrawn or ``APPROVAL_LIFETIME`` has passed."""
        call = self.token.functions.setApprovalForAll(Web3.to_checksum_address(operator),
                                                      approved)  # fmt: skip
        return self.transact(owner, call)

    @view
    def get_approved(self, token_id: int) -> str | None:
        """The address approved for ``token_id`` (ERC-721 ``getApproved``), or None."""
        approved = self.token.functions.getApproved(token_id).call()
        return None if int(approved, 16) == 0 else approved

    @view
    def is_approved_for_all(self, owner: str, operator: str) -> bool:
        return bool(
            self.token.functions.isApprovedForAll(
                Web3.to_checksum_address(owner), Web3.to_checksum_address(operator)
            ).call()
        )

    def approve_amendment(self, owner: LocalAccount, token_id: int, issuer: str) -> dict:
        call = self.token.functions.approve_amendment(token_id, Web3.to_checksum_address(issuer))
        return self.transact(owner, call)

    def amend_call(self, old_token: int, start: int, root: bytes) -> Any:
        """The one transaction that mints ``old_token``'s correction (a batch of one at
        ``start`` under ``root``, to the same owner) and supersedes ``old_token``."""
        return self.token.functions.amend(old_token, start, root)

    @view
    def amendment_approved(self, token_id: int) -> str | None:
        """The issuer the owner allows to correct ``token_id``, or None."""
        issuer = self.token.functions.amendment_approved(token_id).call()
        return None if int(issuer, 16) == 0 else issuer

    def superseded_in(self, receipt: dict) -> list[tuple[int, int]]:
        """(old token, new token) for every Superseded event of a receipt."""
        return [
            (int(ev["args"]["old_token"]), int(ev["args"]["new_token"]))
            for ev in self.token.events.Superseded().process_receipt(receipt, errors=DISCARD)
        ]

    @view
    def superseded_by(self, token_id: int) -> int | None:
        new = int(self.token.functions.superseded_by(token_id).call())
        return new or None

    @view
    def balance_of(self, owner: str) -> int:
        return int(self.token.functions.balanceOf(Web3.to_checksum_address(owner)).call())

    def nonce(self, address: str) -> int:
        return int(self.w3.eth.get_transaction_count(Web3.to_checksum_address(address)))

