"""How a custodian logs a key release on chain before it releases the share.

The guarantee: **no custodian releases a share unless the chain holds, or is about to
hold, a log of that release that the custodian cannot take back.** Two ways keep it:

- :class:`AwaitedLog` (in-process custodians, the embedded chain): send ``log_access``
  and wait for its receipt, then release. Simple, and on the embedded chain a block is
  mined at once; on a network of validators it costs a block period (or two) per open.
- :class:`BroadcastLog` (a custodian service in its own home, ``custodian serve``):

  1. *simulate* ``log_access`` from the custodian's account on the latest block (one
     ``eth_call``: a refused log — no live grant, not a custodian — is refused here,
     and nothing is released);
  2. *sign* it (a nonce of the custodian's own, reserved) and *keep* the signed bytes in
     the custodian's own store (:mod:`healthnft.store.accesslogs`), keyed by the
     release (the one-time challenge the grantee answered), **before** sending;
  3. *send* it: once the node has accepted it (it has a hash and holds the nonce), the
     share is released;
  4. a :class:`Settler` thread awaits each kept transaction's receipt with the ledger's
     confirmations, sends the same bytes again when the node forgot them (a restarted
     node), re-signs with a new nonce only once a mined transaction has taken the old
     nonce (so the old bytes can never be mined too: never two logs of one release),
     and marks a log ``failed`` when it reverted. A custodian that crashed after a
     release sends its kept transactions again when it restarts
     (:meth:`Settler.resume`), before it answers anyone.

Why not wait for the receipt: with 1 s Clique blocks an awaited log costs 1–2 s per
custodian (94 % of an open, measured), far above the 200 ms an open may take. The
custodian's signed, accepted transaction is already evidence it cannot withdraw: its
account signed "I released token T under grant G", and only this custodian can sign
with that account.

Limits (see docs/threat-model.md): between acceptance and mining (about one block)
the share is out and the log is not yet *in* a block; if the grant is revoked, or the
custodian removed, in that window the log reverts on chain: the settler marks it
``failed`` and ``custodian status`` reports it (the signed transaction stays as
evidence). A custodian whose store is destroyed together with its process loses what
was pending; one that keeps running without a reachable node releases nothing (step 3
fails). A crash between steps 2 and 3 logs a release that was never made (over-logging,
never under-logging).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Protocol

from eth_account.signers.local import LocalAccount

from healthnft.errors import HealthNFTError, LedgerError
from healthnft.ledger.client import Ledger, SentTransaction
from healthnft.ledger.consent import Consent
from healthnft.store.accesslogs import FAILED, AccessLogs, LoggedRelease

_log = logging.getLogger(__name__)


class AccessLog(Protocol):
    """Where a custodian's release is logged before the share leaves it."""

    def check(self, custodian: LocalAccount, grant_id: int, token_id: int) -> int:
        """Run the log on the latest block without sending it (its refusal raised);
        the gas limit to send it with. A read: the custodian may make it while it
        reads the rest of the chain for the same release."""
        ...

    def record(self, custodian: LocalAccount, grant_id: int, token_id: int,
               release_id: str, gas: int | None = None) -> None:
        """Log the release; ``gas`` from :meth:`check` of the same log (else checked here)."""
        ...


@dataclass
class GasLimits:
    """``log_access`` gas per token, estimated once: an estimate is a binary search of
    a dozen EVM runs (~170 ms of an open on the embedded chain, measured); the log's
    cost depends on the token (its batch's ownership lookup), not on the release."""

    limits: dict[int, int] = field(default_factory=dict)
    most: int = 4096

    def for_call(self, ledger: Ledger, account: LocalAccount, call: Any, token_id: int) -> int:
        """The gas limit; the call is checked on the latest block either way."""
        gas = self.limits.get(token_id)
        if gas is None:
            gas = ledger.gas_for(account, call)  # an estimate refuses what would revert
            if len(self.limits) >= self.most:
                self.limits.clear()
            self.limits[token_id] = gas
        else:
            ledger.simulate(account, call)
        return gas


_SHARED: weakref.WeakKeyDictionary[Ledger, GasLimits] = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def gas_limits(ledger: Ledger) -> GasLimits:
    """The one gas table of ``ledger`` (in-process custodians are made anew per open)."""
    with _SHARED_LOCK:
        found = _SHARED.get(ledger)
        if found is None:
            found = _SHARED[ledger] = GasLimits()
        return found


def _checked(ledger: Ledger, gas: GasLimits, custodian: LocalAccount, grant_id: int,
             token_id: int) -> int:  # fmt: skip
    """``log_access`` run on the latest block (refused: LedgerError); its gas limit. The
    fees are read meanwhile when the cached ones are old, so signing right after needs
    no block fetch."""
    ledger.fees()
    call = Consent(ledger).log_access_call(grant_id, token_id)
    return gas.for_call(ledger, custodian, call, token_id)


def _signed(ledger: Ledger, gas: GasLimits, custodian: LocalAccount, grant_id: int,
            token_id: int, limit: int | None = None) -> SentTransaction:  # fmt: skip
    """``log_access`` checked against the chain (unless ``limit`` says it just was),
    then signed with a reserved nonce."""
    if limit is None:
        limit = _checked(ledger, gas, custodian, grant_id, token_id)
    return ledger.sign(custodian, Consent(ledger).log_access_call(grant_id, token_id),
                       gas=limit)  # fmt: skip


@dataclass
class AwaitedLog:
    """Log and wait for the receipt (confirmations included), then release."""

    ledger: Ledger
    gas: GasLimits | None = None

    def __post_init__(self) -> None:
        if self.gas is None:
            self.gas = gas_limits(self.ledger)

    def check(self, custodian: LocalAccount, grant_id: int, token_id: int) -> int:
        assert self.gas is not None
        return _checked(self.ledger, self.gas, custodian, grant_id, token_id)

    def record(self, custodian: LocalAccount, grant_id: int, token_id: int,
               release_id: str, gas: int | None = None) -> None:  # fmt: skip
        assert self.gas is not None
        sent = _signed(self.ledger, self.gas, custodian, grant_id, token_id, gas)
        self.ledger.broadcast(sent, what="access log")


@dataclass
class BroadcastLog:
    """Log: checked, signed, kept, accepted by the node; the :class:`Settler` mines it."""

    ledger: Ledger
    logs: AccessLogs
    gas: GasLimits = field(default_factory=GasLimits)
    #: Set after each accepted log, so a waiting settler looks at once.
    wake: threading.Event = field(default_factory=threading.Event)

    def check(self, custodian: LocalAccount, grant_id: int, token_id: int) -> int:
        return _checked(self.ledger, self.gas, custodian, grant_id, token_id)

    def record(self, custodian: LocalAccount, grant_id: int, token_id: int,
               release_id: str, gas: int | None = None) -> None:  # fmt: skip
        kept = self.logs.get(release_id)
        fresh = kept is None
        if kept is None:
            sent = _signed(self.ledger, self.gas, custodian, grant_id, token_id, gas)
            kept = self.logs.keep(release_id, grant_id, token_id, sent.raw, sent.tx_hash,
                                  sent.nonce)  # fmt: skip
        if kept.state == FAILED:
            raise LedgerError(f"the access log of this release failed: {kept.error}")
        try:
            self.ledger.submit(_sent(kept, custodian.address), what="access log")
        except HealthNFTError:
            if fresh:  # never accepted, nothing released: no log is owed
                self.logs.forget(release_id)
            raise
        self.wake.set()


def _sent(kept: LoggedRelease, sender: str) -> SentTransaction:
    return SentTransaction(kept.raw, kept.tx_hash, kept.nonce, sender)


@dataclass
class Settler:
    """Gets every kept access log mined and confirmed; reports the ones that cannot be.

    Runs as a daemon thread of the custodian service (:meth:`start`); :meth:`settle_once`
    is one pass, for tests and for a status check."""

    log: BroadcastLog
    custodian: LocalAccount
    interval_s: float = 0.25
    #: A pending log not mined after this long is sent again (a node may have lost it).
    resend_after_s: float = 10.0
    #: A pending log older than this is reported as overdue.
    overdue_after_s: float = 120.0
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    #: The head block of the last pass that looked at receipts.
    _head: int | None = field(default=None, repr=False)

    @property
    def ledger(self) -> Ledger:
        return self.log.ledger

    @property
    def logs(self) -> AccessLogs:
        return self.log.logs

    def resume(self) -> int:
        """After a restart, before serving: hand the node every kept, unsettled log again
        (the very same bytes), so none is lost and the node's nonce count includes them.
        How many were pending."""
        pending = self.logs.pending()
        for kept in pending:
            self._resend(kept)
        return len(pending)

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="access-log-settler",
                                            daemon=True)  # fmt: skip
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self.log.wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                pending = self.settle_once()
            except Exception as exc:  # noqa: BLE001 - the settler must outlive a bad pass
                _log.warning("access-log settler: %s", exc)
                pending = 1
            self.log.wake.wait(self.interval_s if pending else 5.0)
            self.log.wake.clear()

    def settle_once(self) -> int:
        """One pass over the pending logs; how many are still pending after it.

        A pass while the chain's head has not moved only sends again what is due: no
        receipt can appear and no nonce be taken without a new block, and the custodian
        answering releases meanwhile shares its cores with this thread (two reads per
        pending log every quarter second were most of a custodian's requests, measured)."""
        pending = self.logs.pending()
        if not pending:
            return 0
        head = self._new_head()
        left = 0
        for kept in pending:
            if head is None and time.time() - kept.sent < self.resend_after_s:
                left += 1
                continue
            try:
                if not self._settle(kept):
                    left += 1
            except HealthNFTError as exc:
                self.logs.note(kept.release_id, str(exc))
                left += 1
            except Exception as exc:  # noqa: BLE001 - a node that went away mid-call
                self.logs.note(kept.release_id, f"{type(exc).__name__}: {exc}")
                left += 1
        return left

    def wait_settled(self, timeout_s: float) -> bool:
        """Whether every kept log settled (confirmed or failed) within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.settle_once():
                return True
            time.sleep(self.interval_s)
        return False

    def _new_head(self) -> int | None:
        """The chain's head when it moved since the last pass (or cannot be read: then
        every log is looked at, as the errors are reported per log), else None."""
        try:
            head = int(self.ledger.w3.eth.block_number)
        except Exception:  # noqa: BLE001 - a node that went away: each log notes it
            return -1
        if head == self._head:
            return None
        self._head = head
        return head

    def _settle(self, kept: LoggedRelease) -> bool:
        """Whether ``kept`` is settled now (confirmed or failed)."""
        receipt = self.ledger.receipt_of(kept.tx_hash)
        if receipt is not None:
            return self._mined(kept, receipt)
        sent = _sent(kept, self.custodian.address)
        if self.ledger.superseded(sent):
            return self._resign(kept)
        if time.time() - kept.sent >= self.resend_after_s:
            self._resend(kept)
        return False

    def _mined(self, kept: LoggedRelease, receipt: dict) -> bool:
        block = int(receipt["blockNumber"])
        if int(self.ledger.w3.eth.block_number) - block + 1 < self.ledger.confirmations:
            return False
        if receipt["status"] != 1:
            self._failed(kept, "the log_access transaction reverted on chain (the grant "
                               "was revoked or the custodian removed after the check)")
            return True
        self.logs.confirmed(kept.release_id, block)
        return True

    def _resign(self, kept: LoggedRelease) -> bool:
        """Its nonce went to a mined transaction: the old bytes can never be mined, so a
        new transaction (checked again) is the release's only log."""
        try:
            sent = _signed(self.ledger, self.log.gas, self.custodian, kept.grant_id,
                           kept.token_id)  # fmt: skip
        except LedgerError as exc:
            self._failed(kept, f"could not be sent again: {exc}")
            return True
        self.logs.resigned(kept.release_id, sent.raw, sent.tx_hash, sent.nonce)
        self.ledger.submit(sent, what="access log")
        return False

    def _resend(self, kept: LoggedRelease) -> None:
        try:
            self.ledger.submit(_sent(kept, self.custodian.address), what="access log")
            self.logs.touched(kept.release_id)
        except HealthNFTError as exc:
            self.logs.note(kept.release_id, str(exc))
        except Exception as exc:  # noqa: BLE001 - an unreachable node: tried again later
            self.logs.note(kept.release_id, f"{type(exc).__name__}: {exc}")

    def _failed(self, kept: LoggedRelease, why: str) -> None:
        _log.error("token %s, grant %s: the release's access log failed: %s",
                   kept.token_id, kept.grant_id, why)  # fmt: skip
        self.logs.fail(kept.release_id, why)

    def status(self) -> dict[str, Any]:
        """Counts by state, the overdue pending logs and the failed ones (for operators)."""
        return overdue_report(self.logs, self.overdue_after_s)


def overdue_report(logs: AccessLogs, overdue_after_s: float = 120.0) -> dict[str, Any]:
    """Counts by state, how many pending logs are overdue, and each overdue or failed one."""
    now = time.time()
    overdue = [k for k in logs.pending() if now - k.created > overdue_after_s]
    return {
        **logs.counts(),
        "overdue": len(overdue),
        "problems": [_problem(k) for k in [*overdue, *logs.failed()]],
    }


def _problem(kept: LoggedRelease) -> dict[str, Any]:
    return {"token_id": kept.token_id, "grant_id": kept.grant_id, "state": kept.state,
            "tx_hash": "0x" + kept.tx_hash.hex(), "nonce": kept.nonce,
            "since": kept.created, "error": kept.error}  # fmt: skip
