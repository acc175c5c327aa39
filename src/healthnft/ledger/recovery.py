"""Python side of the GuardianRecovery contract: a lost key is recovered by guardians.

A patient names guardians (registered members) and a threshold; when the key is lost,
guardians move the account to a new address with new keys. Install the contract next
to a deployed :class:`~healthnft.ledger.client.Ledger` (its registry's owner names it)::

    rec = GuardianRecovery.install(ledger, admin, delay_s=48 * 3600)
    rec.set_guardians(patient, [relative, doctor, service], threshold=2)
    rid = rec.propose(relative, patient.address, new_address, enc_public, did_key)
    rec.approve(doctor, rid)           # 2 of 3: the delay starts now
    ...                                # 48 h, during which the old key may cancel
    rec.execute(anyone, rid)           # new address: patient, tokens, grants, policies

What the contract guarantees (and why) is stated in the NatSpec of
``contracts/GuardianRecovery.vy`` and in ``docs/recovery.md``. This module adds no
rule of its own: every refusal is the contract's revert, raised as
:class:`~healthnft.errors.LedgerError` with the contract's message.

:meth:`GuardianRecovery.install` names the contract with the admin key (the embedded
default). A network whose registry a governance council owns deploys it with
:meth:`GuardianRecovery.deploy` and names it by a council decision::

    rec = GuardianRecovery.deploy(ledger, anyone)
    pid = gov.propose(a, "set-recovery", rec.address, flag=True)   # + k-1 approvals
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.logs import DISCARD

from healthnft.errors import LedgerError
from healthnft.ledger.client import Ledger
from healthnft.ledger.compiler import DEFAULT_EVM_VERSION, compile_contract

#: The delay the issue suggests: 48 hours for the old key to notice and cancel.
DEFAULT_DELAY_S = 48 * 3600
STATES = {0: "unknown", 1: "open", 2: "executed", 3: "cancelled", 4: "void"}
ZERO = "0x" + "00" * 20


def successor_of(ledger: Ledger, account: str) -> str | None:
    """The account ``account`` was recovered into, followed to the last recovery (None:
    it never was). One registry read for an account never recovered."""
    registry = ledger.registry.functions
    current, moved = Web3.to_checksum_address(account), False
    for _ in range(MAX_HOPS):
        new = registry.recovered_to(current).call()
        if int(new, 16) == 0:
            break
        current, moved = str(new), True
    return current if moved else None


#: The registry's MAX_RECOVERIES: how many recoveries one patient may go through.
MAX_HOPS = 8


@dataclass(frozen=True)
class RecoveryStatus:
    """One recovery as the chain reports it."""

    recovery_id: int
    old_account: str
    new_account: str
    encryption_key: bytes
    did_key: bytes | None
    approvals: int
    threshold: int
    state: str
    #: Unix time from which it may execute (0: not enough approvals, or not open).
    executable_at: int
    #: Every guardian approved it (with more guardians than the threshold): the old key
    #: can no longer cancel it.
    unanimous: bool
    #: Its guardians are no longer the patient's (a guardian change applied since).
    stale: bool

    def describe(self) -> str:
        when = f", executable at {self.executable_at}" if self.executable_at else ""
        return (f"#{self.recovery_id} {self.old_account} -> {self.new_account}: {self.state}, "
                f"{self.approvals}/{self.threshold}{when}")  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["encryption_key"] = "0x" + self.encryption_key.hex()
        out["did_key"] = None if self.did_key is None else "0x" + self.did_key.hex()
        return out


@dataclass(frozen=True)
class Guardians:
    """A patient's guardians in force, and a queued change if any."""

    guardians: list[str]
    threshold: int
    queued: list[str]
    queued_threshold: int
    #: When the queued change may be applied (0: none queued).
    queued_at: int


class GuardianRecovery:
    """The GuardianRecovery contract named in a :class:`Ledger`'s registry."""

    def __init__(self, ledger: Ledger, address: str) -> None:
        self.ledger = ledger
        self.contract = ledger.w3.eth.contract(
            address=Web3.to_checksum_address(address),
            abi=compile_contract("GuardianRecovery").abi,
        )
        #: Receipt of the last transaction sent through this object (gas, events).
        self.last_receipt: dict | None = None

    @property
    def address(self) -> str:
        return str(self.contract.address)

    # -- finding and installing ------------------------------------------------

    @classmethod
    def of(cls, ledger: Ledger) -> GuardianRecovery | None:
        """The recovery contract ``ledger``'s registry names, or None."""
        address = ledger.registry.functions.recovery().call()
        if int(address, 16) == 0:
            return None
        return cls(ledger, address)

    @classmethod
    def deploy(
        cls,
        ledger: Ledger,
        sender: LocalAccount,
        delay_s: int = DEFAULT_DELAY_S,
        evm_version: str = DEFAULT_EVM_VERSION,
    ) -> GuardianRecovery:
        """Deploy the contract over ``ledger``'s registry, token and consent manager
        without naming it: it can do nothing until the registry's owner names it (on a
        governed network, the council's ``set-recovery`` proposal)."""
        if ledger.consent is None:
            raise LedgerError("this network has no consent manager for recovery to follow")
        if delay_s <= 0:
            raise LedgerError("a recovery delay must be positive")
        compiled = compile_contract("GuardianRecovery", evm_version)
        args = [ledger.registry.address, ledger.token.address, ledger.consent.address,
                int(delay_s)]  # fmt: skip
        return cls(ledger, ledger.deploy_contract(sender, compiled.abi, compiled.bytecode, args))

    @classmethod
    def install(
        cls,
        ledger: Ledger,
        admin: LocalAccount,
        delay_s: int = DEFAULT_DELAY_S,
        evm_version: str = DEFAULT_EVM_VERSION,
    ) -> GuardianRecovery:
        """:meth:`deploy`, then name the contract in the registry with ``admin``, the
        registry's owner (refused, with a hint, once a council owns it)."""
        rec = cls.deploy(ledger, admin, delay_s, evm_version)
        ledger.admin_transact(admin, ledger.registry.functions.set_recovery(rec.address))
        return rec

    # -- reading ---------------------------------------------------------------

    def delay(self) -> int:
        return int(self.contract.functions.delay().call())

    def guardians(self, patient: str) -> Guardians:
        p = Web3.to_checksum_address(patient)
        f = self.contract.functions
        return Guardians(
            list(f.guardians(p).call()), int(f.threshold(p).call()),
            list(f.queued_guardians(p).call()), int(f.queued_threshold(p).call()),
            int(f.queued_at(p).call()),
        )  # fmt: skip

    def is_guardian(self, patient: str, account: str) -> bool:
        call = self.contract.functions.is_guardian(
            Web3.to_checksum_address(patient), Web3.to_checksum_address(account)
        )
        return bool(call.call())

    def recovery_count(self) -> int:
        return int(self.contract.functions.recovery_count().call())

    def status(self, recovery_id: int) -> RecoveryStatus:
        f = self.contract.functions
        old, new, enc, did, epoch, approvals, _ready, state = f.recoveries(recovery_id).call()
        if state == 0:
            raise LedgerError(f"no recovery #{recovery_id}")
        return RecoveryStatus(
            recovery_id, old, new, bytes(enc), bytes(did) if any(did) else None,
            int(approvals), int(f.threshold(old).call()), STATES[state],
            int(f.executable_at(recovery_id).call()),
            int(f.unanimous(old).call()) == recovery_id,
            int(epoch) != int(f.epoch(old).call()),
        )  # fmt: skip

    def has_approved(self, recovery_id: int, guardian: str) -> bool:
        return bool(self.contract.functions.approved(
            recovery_id, Web3.to_checksum_address(guardian)).call())  # fmt: skip

    def recovered_to(self, account: str) -> str | None:
        """The address ``account`` was recovered to (None: never recovered)."""
        new = self.ledger.registry.functions.recovered_to(Web3.to_checksum_address(account)).call()
        return None if int(new, 16) == 0 else str(new)

    # -- the patient -----------------------------------------------------------

    def set_guardians(self, patient: LocalAccount, guardians: list[str], threshold: int) -> str:
        """Name ``patient``'s guardians: "applied" (the first set) or "queued" (a change,
        applied by :meth:`apply_guardians` once the delay is over)."""
        members = [Web3.to_checksum_address(g) for g in guardians]
        self._send(patient, self.contract.functions.set_guardians(members, int(threshold)))
        changed = self.contract.events.GuardiansChanged()
        applied = changed.process_receipt(self.last_receipt, errors=DISCARD)
        return "applied" if applied else "queued"

    def apply_guardians(self, sender: LocalAccount, patient: str) -> dict:
        return self._send(sender, self.contract.functions.apply_guardians(
            Web3.to_checksum_address(patient)))  # fmt: skip

    def cancel_guardian_change(self, patient: LocalAccount) -> dict:
        return self._send(patient, self.contract.functions.cancel_guardian_change())

    def cancel(self, old_key: LocalAccount, recovery_id: int) -> dict:
        """The old key stops a recovery of its own account."""
        return self._send(old_key, self.contract.functions.cancel(recovery_id))

    # -- guardians -------------------------------------------------------------

    def propose(self, guardian: LocalAccount, old_account: str, new_account: str,
                encryption_key: bytes, did_key: bytes | None = None) -> int:  # fmt: skip
        """Propose moving ``old_account`` to ``new_account`` (counts as ``guardian``'s
        approval); the recovery's id."""
        if len(encryption_key) != 32 or (did_key is not None and len(did_key) != 32):
            raise LedgerError("recovery keys are 32-byte public keys")
        call = self.contract.functions.propose(
            Web3.to_checksum_address(old_account), Web3.to_checksum_address(new_account),
            encryption_key, did_key or bytes(32),
        )  # fmt: skip
        self._send(guardian, call)
        for event in self.contract.events.RecoveryProposed().process_receipt(
                self.last_receipt, errors=DISCARD):  # fmt: skip
            return int(event["args"]["recovery_id"])
        raise LedgerError("the proposal transaction logged no recovery")

    def approve(self, guardian: LocalAccount, recovery_id: int) -> int:
        """Approve as ``guardian``; the time from which it may execute (0: not yet)."""
        self._send(guardian, self.contract.functions.approve(recovery_id))
        for event in self.contract.events.RecoveryApproved().process_receipt(
                self.last_receipt, errors=DISCARD):  # fmt: skip
            return int(event["args"]["executable_at"])
        return 0

    def void(self, sender: LocalAccount, recovery_id: int) -> dict:
        """Close a recovery whose new address was registered since (it cannot execute)."""
        return self._send(sender, self.contract.functions.void(recovery_id))

    def execute(self, sender: LocalAccount, recovery_id: int) -> dict:
        """Carry out an approved recovery whose delay is over (anyone may send it)."""
        return self._send(sender, self.contract.functions.execute(recovery_id))

    def _send(self, account: LocalAccount, call: Any) -> dict:
        self.last_receipt = self.ledger.transact(account, call)
        return self.last_receipt
