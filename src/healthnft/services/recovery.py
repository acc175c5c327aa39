"""Guardian recovery: a patient who loses the key gets the account, and every record, back.

The one door for recovery (the CLI's ``healthnft recovery …`` and any later web screen
call these functions). The rules live in the GuardianRecovery contract
(:mod:`healthnft.ledger.recovery`, ``docs/recovery.md``); each function here checks
what it can before it sends anything, so a refusal is one clear sentence rather than a
revert, and a retry after a failure or a second run does not do anything twice:

- :func:`set_guardians`: the patient names guardians (registered members) and how many
  must agree; the first set applies at once, a change after ``delay``;
- :func:`new_key`: the patient's new device makes a key (registered nowhere yet);
- :func:`propose` / :func:`approve`: guardians move the old account to the new address
  and its keys; the approval that reaches the threshold starts the delay;
- :func:`cancel`: the old key stops a recovery it did not ask for, inside the delay;
- :func:`execute`: after the delay, anyone sends it; then the records this home holds
  are re-keyed for the new key (:func:`adopt_records`): k custodians each check on
  chain that the account was recovered, log the release (the patient's access log
  shows it) and release their key share to its new registered encryption key, and the
  record is re-sealed for it as a transfer would; its new shares then reach the
  remote custodians as a transfer's do;
- :func:`status` / :func:`recoveries` / :func:`guardians`: what the chain says, with the
  names this home gives to addresses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from healthnft.errors import (
    AccessDenied,
    Conflict,
    InvalidInput,
    NotFound,
    Unavailable,
    UnknownParticipant,
)
from healthnft.services.access import same
from healthnft.services.custodians import deliver_if_remote

if TYPE_CHECKING:
    from healthnft.keys import Identity
    from healthnft.ledger.recovery import GuardianRecovery, RecoveryStatus
    from healthnft.network import Network

#: How many recent recoveries :func:`recoveries` and the duplicate check look through.
SCAN = 1000


@dataclass(frozen=True)
class Party:
    """An address and what this home calls it (empty when it has no name here)."""

    address: str
    name: str = ""

    def __str__(self) -> str:
        return f"{self.name} ({self.address})" if self.name else self.address


@dataclass(frozen=True)
class GuardiansView:
    patient: Party
    guardians: list[Party]
    threshold: int
    queued: list[Party]
    queued_threshold: int
    #: When the queued change may be applied (0: none queued).
    queued_at: int
    #: What this call did: "applied", "queued", "unchanged" (or "" for a read).
    change: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def text(self) -> str:
        names = ", ".join(p.name or p.address for p in self.guardians) or "none"
        line = f"guardians of {self.patient}: {self.threshold} of {len(self.guardians)} ({names})"
        if self.queued_at:
            queued = ", ".join(p.name or p.address for p in self.queued)
            line += (f"; change to {self.queued_threshold} of {len(self.queued)} ({queued}) "
                     f"queued, applies from {_utc(self.queued_at)}")  # fmt: skip
        if self.change == "unchanged":
            line += " (already so: nothing sent)"
        return line


@dataclass(frozen=True)
class NewKey:
    """A key made for a recovery: its address and public keys, registered nowhere."""

    address: str
    name: str
    encryption_key: str
    did_key: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RecoveryView:
    """One recovery as the chain reports it, with names, plus what this call did."""

    recovery_id: int
    old: Party
    new: Party
    state: str
    approvals: int
    threshold: int
    approved_by: list[Party]
    #: Unix time (chain time) from which it may execute; 0: not enough approvals or not open.
    executable_at: int
    unanimous: bool
    stale: bool
    #: The chain's time when this was read.
    chain_time: int
    #: What this call did ("proposed", "approved", "cancelled", "executed", "unchanged"...).
    done: str = ""
    #: Records re-keyed for the new key by this call (execute).
    records_rekeyed: list[int] = field(default_factory=list)
    #: Records of the old account this home holds that still await re-keying.
    records_pending: list[int] = field(default_factory=list)
    #: Remote custodians that have not taken the re-keyed records' new shares yet (sent
    #: again by the next run, mint or ``healthnft custodian deliver``).
    custody_pending: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["executable_at_utc"] = _utc(self.executable_at) if self.executable_at else None
        return out

    @property
    def text(self) -> str:
        line = (f"recovery #{self.recovery_id}: {self.old} -> {self.new}: {self.state}, "
                f"{self.approvals} of {self.threshold} guardian approvals")  # fmt: skip
        if self.approved_by:
            line += " (" + ", ".join(p.name or p.address for p in self.approved_by) + ")"
        if self.state == "open" and self.stale:
            line += "; void: the guardians changed since it was proposed"
        elif self.state == "open" and self.executable_at:
            line += f"; may execute from {_utc(self.executable_at)}"
            wait = self.executable_at - self.chain_time
            if wait > 0:
                line += f" (in {_duration(wait)})"
                if not self.unanimous:
                    line += "; until then the old key may cancel it"
        elif self.state == "open":
            line += "; needs more approvals"
        if self.done == "unchanged":
            line += " (already done: nothing sent)"
        if self.records_rekeyed:
            line += f"; {len(self.records_rekeyed)} record(s) re-keyed for the new key"
        if self.records_pending:
            line += (f"; {len(self.records_pending)} record(s) not re-keyed yet: run this "
                     "again where the new key is")  # fmt: skip
        if self.custody_pending:
            line += (f"; {len(self.custody_pending)} custodian(s) did not take the new key "
                     "shares: `healthnft custodian deliver` sends them again")  # fmt: skip
        return line


def _utc(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _duration(seconds: int) -> str:
    hours, rest = divmod(max(0, seconds), 3600)
    return f"{hours} h {rest // 60} min" if hours else f"{max(1, rest // 60)} min"


# -- finding things -----------------------------------------------------------------


def _contract(net: Network) -> GuardianRecovery:
    from healthnft.ledger.recovery import GuardianRecovery

    rec = GuardianRecovery.of(net.ledger)
    if rec is None:
        raise NotFound("this network has no guardian recovery contract (a network made by "
                       "an older healthnft: its council names one with `governance propose "
                       "set-recovery`)")  # fmt: skip
    return rec


def _account(net: Network, value: str, what: str) -> str:
    """An address, or the name this home gives one participant (exactly one)."""
    from web3 import Web3

    value = value.strip()
    if Web3.is_address(value):
        return str(Web3.to_checksum_address(value))
    named = [p for p in net.catalog.participants() if p.label == value] if value else []
    if len(named) == 1:
        return str(Web3.to_checksum_address(named[0].address))
    if len(named) > 1:
        raise InvalidInput(f"{what}: {len(named)} participants of this home have that name; "
                           "give the address")  # fmt: skip
    raise InvalidInput(f"{what} must be a 0x… address or the name of a participant of this "
                       "home")  # fmt: skip


def _party(net: Network, address: str) -> Party:
    local = net.catalog.participant(address)
    return Party(address, local.label if local else "")


def _chain_time(net: Network) -> int:
    return int(net.ledger.w3.eth.get_block("latest")["timestamp"])


def _id(recovery_id: int) -> int:
    if not 0 < recovery_id < 2**63:
        raise NotFound(f"no recovery #{recovery_id}")
    return recovery_id


def _status(rec: GuardianRecovery, recovery_id: int) -> RecoveryStatus:
    from healthnft.errors import LedgerError

    try:
        return rec.status(_id(recovery_id))
    except LedgerError:
        raise NotFound(f"no recovery #{recovery_id}") from None


def _view(net: Network, rec: GuardianRecovery, st: RecoveryStatus, done: str = "",
          **extra: Any) -> RecoveryView:  # fmt: skip
    guardians = rec.guardians(st.old_account).guardians
    approved = [_party(net, g) for g in guardians if rec.has_approved(st.recovery_id, g)]
    return RecoveryView(st.recovery_id, _party(net, st.old_account), _party(net, st.new_account),
                        st.state, st.approvals, st.threshold, approved, st.executable_at,
                        st.unanimous, st.stale, _chain_time(net), done, **extra)  # fmt: skip


def _guardian(net: Network, rec: GuardianRecovery, patient: str, who: str,
              passphrase: str | None) -> Identity:  # fmt: skip
    """The unlocked key of ``who``, one of ``patient``'s guardians in force."""
    from healthnft.services.access import unlock

    guardian = _account(net, who, "--as")
    if not rec.is_guardian(patient, guardian):
        raise AccessDenied(f"{_party(net, guardian)} is not a guardian of "
                           f"{_party(net, patient)}")  # fmt: skip
    return unlock(net, guardian, passphrase)


# -- the patient ----------------------------------------------------------------------


def guardians(net: Network, patient: str) -> GuardiansView:
    """``patient``'s guardians in force, and a queued change if any."""
    rec = _contract(net)
    address = _account(net, patient, "the patient")
    g = rec.guardians(address)
    return GuardiansView(_party(net, address), [_party(net, a) for a in g.guardians],
                         g.threshold, [_party(net, a) for a in g.queued], g.queued_threshold,
                         g.queued_at)  # fmt: skip


def set_guardians(net: Network, patient: str, members: list[str], threshold: int,
                  passphrase: str | None = None) -> GuardiansView:  # fmt: skip
    """The patient (its key in this home) names its guardians, ``threshold`` of whom must
    agree. The first set applies at once; a later change is queued for the contract's
    delay. Asking for what is already in force (or already queued) sends nothing."""
    from dataclasses import replace

    from healthnft.ledger.recovery import MAX_HOPS
    from healthnft.services.access import unlock

    rec = _contract(net)
    address = _account(net, patient, "the patient")
    if net.participant(address).kind != "patient":
        raise InvalidInput("only a patient names guardians (an institution's key is not "
                           "recovered this way)")  # fmt: skip
    named = [_account(net, m, "--guardian") for m in members]
    if not 1 <= len(named) <= MAX_HOPS:
        raise InvalidInput(f"name 1 to {MAX_HOPS} guardians (--guardian, repeated)")
    if len({a.lower() for a in named}) != len(named):
        raise InvalidInput("a guardian is named twice")
    if any(same(a, address) for a in named):
        raise InvalidInput("a patient cannot be its own guardian")
    if not 1 <= threshold <= len(named):
        raise InvalidInput(f"--threshold must be from 1 to {len(named)} (the guardians named)")
    for a in named:
        net.participant(a)  # UnknownParticipant: a guardian must be a registered member
    current = rec.guardians(address)
    wanted = [a.lower() for a in named]
    in_force = [a.lower() for a in current.guardians] == wanted and current.threshold == threshold
    queued = [a.lower() for a in current.queued] == wanted and current.queued_threshold == threshold
    if (in_force and not current.queued_at) or (queued and current.queued_at):
        return replace(guardians(net, address), change="unchanged")
    ident = unlock(net, address, passphrase)
    change = rec.set_guardians(ident.account, named, threshold)
    return replace(guardians(net, address), change=change)


def new_key(net: Network, name: str, passphrase: str | None = None) -> NewKey:
    """A new key for a patient whose key is lost (the new device): written to this home's
    keystore, named ``name`` here, registered nowhere until a recovery executes. Its
    public keys are what the guardians' proposal carries."""
    from healthnft import keys
    from healthnft.vault.catalog import Participant

    if not name.strip():
        raise InvalidInput("--name must not be empty (it stays in this home)")
    if any(p.label == name for p in net.catalog.participants()):
        raise Conflict("a participant of this home already has this name: choose another")
    ident = keys.write_keystore(net.files.keystore_dir, keys.new_secret(),
                                net.passphrase(passphrase), light=net.is_demo)  # fmt: skip
    net.catalog.add_participant(Participant(ident.address, "patient", name, ident.enc_public))
    return NewKey(ident.address, name, "0x" + ident.enc_public.hex(),
                  "0x" + ident.did_public.hex())  # fmt: skip


def _key32(value: str, what: str) -> bytes:
    try:
        key = bytes.fromhex(value.strip().removeprefix("0x"))
    except ValueError:
        key = b""
    if len(key) != 32:
        raise InvalidInput(f"{what} must be a 32-byte public key in hex (64 digits)")
    return key


def _new_keys(net: Network, new: str, enc_hex: str | None, did_hex: str | None,
              passphrase: str | None) -> tuple[bytes, bytes]:  # fmt: skip
    """The new address's public keys: given, or read from its keystore in this home."""
    if enc_hex is not None or did_hex is not None:
        if enc_hex is None or did_hex is None:
            raise InvalidInput("give --enc-key and --did-key together (the custodians know "
                               "the new key by its DID when they release its records)")  # fmt: skip
        return _key32(enc_hex, "--enc-key"), _key32(did_hex, "--did-key")
    if not net.has_key(new):
        raise InvalidInput("the new address's public keys are not known in this home: give "
                           "--enc-key and --did-key (what `healthnft recovery new-key` "
                           "printed on the new device)")  # fmt: skip
    ident = net.identity(new, passphrase)
    return ident.enc_public, ident.did_public


def _open_recovery(rec: GuardianRecovery, old: str, new: str) -> RecoveryStatus | None:
    """An open, current recovery of ``old`` to ``new`` (the newest), if one exists."""
    count = rec.recovery_count()
    for rid in range(count, max(0, count - SCAN), -1):
        st = rec.status(rid)
        if st.state == "open" and not st.stale and same(st.old_account, old) \
                and same(st.new_account, new):  # fmt: skip
            return st
    return None


def propose(net: Network, guardian: str, old: str, new: str, *, enc_key: str | None = None,
            did_key: str | None = None, passphrase: str | None = None) -> RecoveryView:  # fmt: skip
    """Guardian ``guardian`` (its key in this home) proposes moving ``old`` (a patient) to
    ``new`` (a fresh address) and its public keys; the proposal is the guardian's
    approval. When the same recovery is already open, the guardian approves it instead
    (or nothing is sent if it already did): a retry never opens a second one."""
    rec = _contract(net)
    old_address = _account(net, old, "OLD")
    new_address = _account(net, new, "NEW")
    if same(old_address, new_address):
        raise InvalidInput("NEW must be another address than OLD")
    kind, active, _ = net.ledger.participant(old_address)
    if kind != "patient" or not active:
        raise UnknownParticipant(f"{_party(net, old_address)} is not an active patient: only "
                                 "a patient's account is recovered")  # fmt: skip
    ident = _guardian(net, rec, old_address, guardian, passphrase)
    existing = _open_recovery(rec, old_address, new_address)
    if existing is not None:
        return approve(net, ident.address, existing.recovery_id, passphrase)
    if net.ledger.participant(new_address)[0] is not None:
        raise Conflict(f"{_party(net, new_address)} is already registered: a recovery moves "
                       "the account to a fresh address (`healthnft recovery new-key`)")  # fmt: skip
    enc, did = _new_keys(net, new_address, enc_key, did_key, passphrase)
    if net.ledger.did_owner(did) is not None:
        raise Conflict("the new DID key is already bound to another participant")
    rid = rec.propose(ident.account, old_address, new_address, enc, did)
    return _view(net, rec, rec.status(rid), "proposed")


def approve(net: Network, guardian: str, recovery_id: int,
            passphrase: str | None = None) -> RecoveryView:  # fmt: skip
    """Guardian ``guardian`` approves recovery ``recovery_id`` (once: a second call sends
    nothing). The approval that reaches the threshold starts the delay."""
    rec = _contract(net)
    st = _status(rec, recovery_id)
    _check_open(st)
    ident = _guardian(net, rec, st.old_account, guardian, passphrase)
    if rec.has_approved(st.recovery_id, ident.address):
        return _view(net, rec, st, "unchanged")
    rec.approve(ident.account, st.recovery_id)
    return _view(net, rec, rec.status(st.recovery_id), "approved")


def _check_open(st: RecoveryStatus) -> None:
    if st.state != "open":
        raise Conflict(f"recovery #{st.recovery_id} is {st.state}: nothing more can be done "
                       "with it")  # fmt: skip
    if st.stale:
        raise Conflict(f"recovery #{st.recovery_id} is void: the patient's guardians changed "
                       "since it was proposed (propose it again)")  # fmt: skip


def cancel(net: Network, recovery_id: int, passphrase: str | None = None) -> RecoveryView:
    """The old key (in this home) stops a recovery of its own account before it executes.
    Cancelling one already cancelled sends nothing."""
    rec = _contract(net)
    st = _status(rec, recovery_id)
    if st.state == "cancelled":
        return _view(net, rec, st, "unchanged")
    if st.state != "open":
        raise Conflict(f"recovery #{st.recovery_id} is {st.state}: it can no longer be cancelled")
    if not net.has_key(st.old_account):
        raise AccessDenied(f"only the old key cancels a recovery, and this home does not hold "
                           f"the key of {_party(net, st.old_account)}")  # fmt: skip
    if st.unanimous:
        raise Conflict(f"recovery #{st.recovery_id}: every guardian approved it, so the old "
                       "key can no longer cancel it (a stolen key must not block it)")  # fmt: skip
    old = net.identity(st.old_account, passphrase)
    rec.cancel(old.account, st.recovery_id)
    return _view(net, rec, rec.status(st.recovery_id), "cancelled")


def _sender(net: Network, rec: GuardianRecovery, st: RecoveryStatus, who: str | None,
            passphrase: str | None) -> Identity:  # fmt: skip
    """Who sends an execution (anyone may): ``who``, else a guardian, the admin or the
    new account whose key this home holds."""
    if who is not None:
        address = _account(net, who, "--as")
        if not net.has_key(address):
            raise AccessDenied(f"this home holds no key of {_party(net, address)}")
        return net.identity(address, passphrase)
    candidates = [*rec.guardians(st.old_account).guardians, net.config.get("admin") or ""]
    for address in candidates:
        if address and net.has_key(address) and net.ledger.is_member(address):
            return net.identity(address, passphrase)
    if net.has_key(st.new_account) and net.ledger.w3.eth.get_balance(st.new_account):
        return net.identity(st.new_account, passphrase)
    raise AccessDenied("this home holds no funded key to send the execution with (a "
                       "guardian's, the admin's or the new account's): give one with --as")


def execute(net: Network, recovery_id: int, sender: str | None = None,
            passphrase: str | None = None) -> RecoveryView:  # fmt: skip
    """Carry out an approved recovery once its delay is over, then re-key the old
    account's records this home holds for the new key (:func:`adopt_records`).
    Running it again after it executed only finishes the re-keying."""
    rec = _contract(net)
    st = _status(rec, recovery_id)
    done = "unchanged"
    if st.state != "executed":
        _check_open(st)
        if st.approvals < st.threshold or not st.executable_at:
            raise Conflict(f"recovery #{st.recovery_id} has {st.approvals} of the "
                           f"{st.threshold} guardian approvals it needs: it cannot "
                           "execute")  # fmt: skip
        now = _chain_time(net) + 1  # the execution lands in a later block than the latest
        if now < st.executable_at:
            raise Conflict(f"recovery #{st.recovery_id} is still in its delay: it may execute "
                           f"from {_utc(st.executable_at)} (in {_duration(st.executable_at - now)}"
                           "); until then the old key may cancel it")  # fmt: skip
        if net.ledger.participant(st.new_account)[0] is not None:
            raise Conflict(f"recovery #{st.recovery_id} cannot execute: its new address was "
                           "registered since it was proposed")  # fmt: skip
        rec.execute(_sender(net, rec, st, sender, passphrase).account, st.recovery_id)
        done = "executed"
        st = rec.status(st.recovery_id)
    _fund(net, st.new_account, passphrase)  # again on a retry: a crash may have come first
    rekeyed, pending = adopt_records(net, st.old_account, st.new_account, passphrase)
    if done == "unchanged" and rekeyed:
        done = "re-keyed"
    custody = deliver_if_remote(net, passphrase)  # a retry also sends what was pending
    return _view(net, rec, st, done, records_rekeyed=rekeyed, records_pending=pending,
                 custody_pending=custody)  # fmt: skip


def _fund(net: Network, address: str, passphrase: str | None) -> None:
    """Gas money for the recovered account, when this home holds the admin key (the
    registry made it a member; the admin funds members)."""
    import contextlib

    from healthnft.errors import CredentialRejected

    admin = net.config.get("admin")
    # Another passphrase for the admin's key: the admin funds it later, as any member.
    if admin and net.has_key(admin):
        with contextlib.suppress(CredentialRejected):
            net.fund_member(net.admin(passphrase), address)


def adopt_records(net: Network, old: str, new: str,
                  passphrase: str | None = None) -> tuple[list[int], list[int]]:  # fmt: skip
    """Re-key for ``new`` the records of ``old`` this home holds, once the chain says
    ``old`` was recovered into ``new`` (idempotent: a record already re-keyed is skipped).
    Answers the tokens re-keyed now and those still pending (the new key is not in this
    home, or the custodians did not answer: run it again).

    Each record's key comes back through k custodians, asked under
    :data:`~healthnft.consent.custodian.RECOVERED_OWNER`: each checks on chain that the
    asker came by an executed recovery and owns the token, and seals its share to the
    encryption key the recovery registered. A network without custodians re-keys with
    the issuing hospital's key if this home holds it (the hospital holds the record's
    key anyway). The record is then re-sealed under a fresh key for ``new`` (and its
    issuer), re-split for the custodians, as a transfer re-seals it; remote custodians
    get the new shares from :func:`~healthnft.services.custodians.deliver_pending`
    (:func:`execute` runs it), each checking on chain that ``new`` owns the token."""
    from healthnft.ledger.recovery import successor_of
    from healthnft.wallet.actions import OwnerActions

    if not same(successor_of(net.ledger, old), new):
        raise Conflict(f"{_party(net, old)} was not recovered into {_party(net, new)} on chain")
    rows = [r for r in net.catalog.catalogue.records_of(old) if r.status != "burned"]
    if not rows:
        return [], []
    tokens = [r.token_id for r in rows]
    owners = net.ledger.owners_of(tokens)
    rows = [r for r, o in zip(rows, owners, strict=True) if same(o, new)]
    if not rows:
        return [], []
    if not net.has_key(new):
        return [], [r.token_id for r in rows]
    ident = net.identity(new, passphrase)
    custody = net.custodians()
    release = _Release(net, ident, custody, net.custodian_services() if custody else [],
                       passphrase)  # fmt: skip
    actions = OwnerActions(net.ledger, net.catalog, net.blobs, custody)
    issuer_keys: dict[str, bytes] = {}
    done: list[int] = []
    pending: list[int] = []
    try:
        for row in rows:
            ciphertext = net.blobs.get(row.blob_digest)
            if ciphertext is None:  # held by the node that minted it: re-keyed there
                pending.append(row.token_id)
                continue
            try:
                plain = release(row, ciphertext)
            except Unavailable:  # custodians down: the next run finishes
                pending.append(row.token_id)
                continue
            if row.issuer not in issuer_keys:
                issuer_keys[row.issuer] = net.ledger.participant(row.issuer)[2]
            if actions.adopt(row.token_id, new, ident.enc_public, issuer_keys[row.issuer], plain,
                             checkpoint=False):  # fmt: skip
                done.append(row.token_id)
    finally:
        if done:  # once for the lot, not once per record
            net.catalog.checkpoint()
            net.blobs.checkpoint()
    return done, pending


@dataclass
class _Release:
    """A record's plaintext for the recovered account: from k custodians (asked once
    set up for the whole run), else (no custodians on this network) with the issuer's
    key if this home holds it."""

    net: Network
    ident: Identity
    custody: Any
    services: list[Any]
    passphrase: str | None

    def __call__(self, row: Any, ciphertext: bytes) -> Any:
        from healthnft.consent.custodian import RECOVERED_OWNER, gather_and_open

        if self.custody is not None:
            members = tuple(a for a, _ in self.custody.members)
            return gather_and_open(self.ident, row.token_id, RECOVERED_OWNER, row.commitment,
                                   ciphertext, self.services, self.custody.threshold,
                                   members)  # fmt: skip
        if self.net.has_key(row.issuer):
            issuer = self.net.identity(row.issuer, self.passphrase)
            return self.net.wallet().decrypt_row(row, issuer)
        raise Unavailable(f"token {row.token_id}: this network has no key custodians and its "
                          "issuer's key is not in this home")  # fmt: skip


# -- reading ------------------------------------------------------------------------


def status(net: Network, recovery_id: int) -> RecoveryView:
    """One recovery, as the chain reports it (and which of its records wait here)."""
    rec = _contract(net)
    st = _status(rec, recovery_id)
    pending: list[int] = []
    if st.state == "executed":
        rows = net.catalog.catalogue.records_of(st.old_account)
        pending = [r.token_id for r in rows if r.status != "burned"]
    return _view(net, rec, st, records_pending=pending)


def recoveries(net: Network, patient: str | None = None) -> list[RecoveryView]:
    """Recoveries, newest first (the last :data:`SCAN`); of ``patient`` only if given."""
    rec = _contract(net)
    address = _account(net, patient, "--patient") if patient else None
    count = rec.recovery_count()
    out = []
    for rid in range(count, max(0, count - SCAN), -1):
        st = rec.status(rid)
        if address is None or same(st.old_account, address) or same(st.new_account, address):
            out.append(_view(net, rec, st))
    return out

