# pragma version ~=0.4.3
"""
@title GuardianRecovery
@custom:contract-name GuardianRecovery
@license Apache-2.0
@notice Recovery of a patient's account by guardians, not by a custodian of
        the key. A patient names guardians (registered members: a relative, a
        doctor, a recovery service...) and how many of them must agree. When the
        patient loses the key, guardians propose and approve moving the account
        to a new address with a new encryption key (and DID key). Once enough
        of them approved, a delay (`delay`, e.g. 48 hours) runs, during which the
        old key can cancel; after it, anyone executes: the registry makes the
        new address a patient in place of the old one (deactivated for good),
        every token of the old address belongs to the new one, and the grants,
        pending requests and standing policies follow it in the consent manager.
@dev Invariants:
     - guardians are set only by the patient's own transaction; the first set
       takes effect at once, every later change only `delay` after it was
       queued, and never while a recovery approved by every guardian is open
       (a thief holding the key cannot swap the guardians away from under a
       recovery they all agreed on);
     - a recovery counts approvals only from the guardians in force when it was
       proposed (`epoch`): applying a guardian change voids the open ones;
     - a guardian approves a recovery at most once; a recovery executes at most
       once, only with `threshold` approvals, and only `delay` seconds or more
       after the approval that reached the threshold;
     - the old key cancels an open recovery, unless every guardian approved it
       and there are more guardians than the threshold: a quorum of colluding
       guardians is stopped by the owner, a unanimous one cannot be stopped by
       a thief who holds the key (and cannot be faked by fewer than all);
     - only an active patient is recovered (never an institution), and only to
       an address no one has registered; the registry checks both again when
       the recovery executes, and a recovery whose new address was registered
       meanwhile can be voided by anyone (it could never execute, and a
       unanimous one would otherwise block guardian changes for good);
     - nothing here identifies a person or holds health data: addresses, public
       keys, counts and times.
     This contract has no owner: the registry's owner names it (`set_recovery`),
     and the registry, the token and the consent manager let it do exactly one
     thing each, for an executed recovery.
"""


interface IParticipantRegistry:
    def participant(account: address) -> (uint8, bool, bytes32): view
    def is_member(account: address) -> bool: view
    def recover_patient(old_account: address, new_account: address, encryption_key: bytes32, did_key: bytes32): nonpayable


interface IRecoverable:
    def recover_owner(old_owner: address, new_owner: address): nonpayable


KIND_PATIENT: constant(uint8) = 1

# @dev The most guardians a patient may name.
MAX_GUARDIANS: public(constant(uint256)) = 8

STATE_OPEN: constant(uint8) = 1
STATE_EXECUTED: constant(uint8) = 2
STATE_CANCELLED: constant(uint8) = 3
STATE_VOID: constant(uint8) = 4


struct Recovery:
    old_account: address
    new_account: address
    encryption_key: bytes32
    did_key: bytes32
    epoch: uint256
    approvals: uint256
    ready_at: uint256
    state: uint8


registry: public(immutable(IParticipantRegistry))
token: public(immutable(IRecoverable))
consent: public(immutable(IRecoverable))

# @dev Seconds between enough approvals and execution (and before a guardian change applies).
delay: public(immutable(uint256))

_guardians: HashMap[address, DynArray[address, MAX_GUARDIANS]]
threshold: public(HashMap[address, uint256])

# @dev Bumped each time a patient's guardians change (voids open recoveries).
epoch: public(HashMap[address, uint256])

_queued_guardians: HashMap[address, DynArray[address, MAX_GUARDIANS]]
queued_threshold: public(HashMap[address, uint256])
# @dev When the queued guardian change may be applied (0: none queued).
queued_at: public(HashMap[address, uint256])

# @dev Recovery ids start at 1 (0 means none).
recovery_count: public(uint256)
recoveries: public(HashMap[uint256, Recovery])
approved: public(HashMap[uint256, HashMap[address, bool]])

# @dev Patient -> an open recovery every guardian approved (0: none).
unanimous: public(HashMap[address, uint256])


event GuardiansQueued:
    patient: indexed(address)
    threshold: uint256
    guardians: uint256
    applies_at: uint256


event GuardiansChanged:
    patient: indexed(address)
    threshold: uint256
    guardians: uint256
    epoch: uint256


event GuardianChangeCancelled:
    patient: indexed(address)


event RecoveryProposed:
    recovery_id: indexed(uint256)
    old_account: indexed(address)
    new_account: indexed(address)
    proposer: address


event RecoveryApproved:
    recovery_id: indexed(uint256)
    guardian: indexed(address)
    approvals: uint256
    executable_at: uint256


event RecoveryCancelled:
    recovery_id: indexed(uint256)
    old_account: indexed(address)


event RecoveryVoided:
    recovery_id: indexed(uint256)
    old_account: indexed(address)


event RecoveryExecuted:
    recovery_id: indexed(uint256)
    old_account: indexed(address)
    new_account: indexed(address)


@deploy
def __init__(registry_: IParticipantRegistry, token_: IRecoverable, consent_: IRecoverable, delay_: uint256):
    """
    @param registry_ The ParticipantRegistry (its owner must then name this contract).
    @param token_ The HealthRecordToken whose tokens follow a recovery.
    @param consent_ The ConsentManager whose grants and policies follow it.
    @param delay_ Seconds the old key has to cancel (non-zero; e.g. 172,800 for 48 h).
    """
    assert delay_ > 0, "recovery: zero delay"
    registry = registry_
    token = token_
    consent = consent_
    delay = delay_


# -- guardians ------------------------------------------------------------------


@external
def set_guardians(guardians: DynArray[address, MAX_GUARDIANS], threshold_: uint256):
    """
    @notice The caller (a patient) names its guardians and how many must agree.
            The first set applies at once; a later change is queued and applies
            `delay` seconds later (`apply_guardians`), replacing any change
            already queued.
    @dev Each guardian must be a registered, active member other than the
         caller, named once; 1 <= threshold <= number of guardians.
    @param guardians 1..8 guardian addresses.
    @param threshold_ Approvals a recovery needs.
    """
    self._check_patient(msg.sender)
    assert threshold_ > 0 and threshold_ <= len(guardians), "recovery: threshold out of range"
    for i: uint256 in range(MAX_GUARDIANS):
        if i >= len(guardians):
            break
        g: address = guardians[i]
        assert g != msg.sender, "recovery: a patient cannot guard itself"
        assert staticcall registry.is_member(g), "recovery: guardian is not a registered member"
        for j: uint256 in range(MAX_GUARDIANS):
            if j >= i:
                break
            assert guardians[j] != g, "recovery: guardian named twice"
    if len(self._guardians[msg.sender]) == 0:
        self._apply(msg.sender, guardians, threshold_)
        return
    applies_at: uint256 = block.timestamp + delay
    self._queued_guardians[msg.sender] = guardians
    self.queued_threshold[msg.sender] = threshold_
    self.queued_at[msg.sender] = applies_at
    log GuardiansQueued(patient=msg.sender, threshold=threshold_, guardians=len(guardians), applies_at=applies_at)


@external
def apply_guardians(patient: address):
    """
    @notice Applies `patient`'s queued guardian change once its delay is over.
    @dev Anyone may call. Refused while a recovery every guardian approved is
         open. Voids the patient's other open recoveries (new epoch).
    @param patient A patient with a queued change.
    """
    at: uint256 = self.queued_at[patient]
    assert at != 0, "recovery: no guardian change queued"
    assert block.timestamp >= at, "recovery: guardian change still in its delay"
    assert self.recoveries[self.unanimous[patient]].state != STATE_OPEN, "recovery: every guardian approved an open recovery"
    self._check_patient(patient)
    guardians: DynArray[address, MAX_GUARDIANS] = self._queued_guardians[patient]
    threshold_: uint256 = self.queued_threshold[patient]
    self._drop_queue(patient)
    self._apply(patient, guardians, threshold_)


@external
def cancel_guardian_change():
    """
    @notice The caller drops its queued guardian change.
    """
    assert self.queued_at[msg.sender] != 0, "recovery: no guardian change queued"
    self._drop_queue(msg.sender)
    log GuardianChangeCancelled(patient=msg.sender)


@external
@view
def guardians(patient: address) -> DynArray[address, MAX_GUARDIANS]:
    """
    @notice The guardians in force for `patient`.
    @param patient Any address.
    @return Their addresses (empty: none named).
    """
    return self._guardians[patient]


@external
@view
def queued_guardians(patient: address) -> DynArray[address, MAX_GUARDIANS]:
    """
    @notice The guardians of `patient`'s queued change (empty: none queued).
    @param patient Any address.
    @return Their addresses.
    """
    return self._queued_guardians[patient]


@external
@view
def is_guardian(patient: address, account: address) -> bool:
    """
    @notice Whether `account` is one of `patient`'s guardians in force.
    @param patient Any address.
    @param account Any address.
    @return True when it is.
    """
    return self._is_guardian(patient, account)


# -- recoveries -----------------------------------------------------------------


@external
def propose(old_account: address, new_account: address, encryption_key: bytes32, did_key: bytes32) -> uint256:
    """
    @notice A guardian of `old_account` proposes moving it to `new_account`
            with the new keys; the proposal counts as the proposer's approval.
    @dev The caller must be a guardian in force and still a member; the old
         account an active patient; the new one unregistered, non-zero.
    @param old_account The patient whose key is lost.
    @param new_account The patient's new address (not registered yet).
    @param encryption_key The new X25519 public key.
    @param did_key The new Ed25519 did:key key, or empty.
    @return The recovery id.
    """
    self._check_patient(old_account)
    assert new_account != empty(address) and new_account != old_account, "recovery: invalid new account"
    kind: uint8 = 0
    active: bool = False
    key: bytes32 = empty(bytes32)
    kind, active, key = staticcall registry.participant(new_account)
    assert kind == 0, "recovery: new account already registered"
    assert encryption_key != empty(bytes32), "recovery: empty encryption key"
    recovery_id: uint256 = self.recovery_count + 1
    self.recovery_count = recovery_id
    self.recoveries[recovery_id] = Recovery(
        old_account=old_account, new_account=new_account, encryption_key=encryption_key,
        did_key=did_key, epoch=self.epoch[old_account], approvals=0, ready_at=0, state=STATE_OPEN,
    )
    log RecoveryProposed(recovery_id=recovery_id, old_account=old_account, new_account=new_account, proposer=msg.sender)
    self._approve(recovery_id)
    return recovery_id


@external
def approve(recovery_id: uint256):
    """
    @notice A guardian of the recovered account approves `recovery_id`.
    @dev Once per guardian; only an open recovery of the current epoch.
    @param recovery_id An open recovery.
    """
    self._approve(recovery_id)


@external
def cancel(recovery_id: uint256):
    """
    @notice The old key stops a recovery of its own account (inside the delay or
            later, as long as it has not executed).
    @dev Only the old account; refused when every guardian approved and there
         are more guardians than the threshold (see the invariants).
    @param recovery_id An open recovery of the caller's account.
    """
    r: Recovery = self.recoveries[recovery_id]
    assert r.state == STATE_OPEN, "recovery: not an open recovery"
    assert r.old_account == msg.sender, "recovery: only the old key cancels"
    assert self.unanimous[msg.sender] != recovery_id, "recovery: every guardian approved"
    self.recoveries[recovery_id].state = STATE_CANCELLED
    log RecoveryCancelled(recovery_id=recovery_id, old_account=msg.sender)


@external
def void(recovery_id: uint256):
    """
    @notice Closes an open recovery that can never execute because its new
            address has been registered since it was proposed.
    @dev Anyone may call.
    @param recovery_id An open recovery.
    """
    r: Recovery = self.recoveries[recovery_id]
    assert r.state == STATE_OPEN, "recovery: not an open recovery"
    kind: uint8 = 0
    active: bool = False
    key: bytes32 = empty(bytes32)
    kind, active, key = staticcall registry.participant(r.new_account)
    assert kind != 0, "recovery: the new account is still free"
    self.recoveries[recovery_id].state = STATE_VOID
    log RecoveryVoided(recovery_id=recovery_id, old_account=r.old_account)


@external
def execute(recovery_id: uint256):
    """
    @notice Carries out an approved recovery once its delay is over: the new
            address becomes the patient (registry), owns every token of the old
            one (token), and holds its grants and policies (consent manager).
    @dev Anyone may call (the new wallet, a guardian). Requires an open
         recovery of the current epoch, `threshold` approvals and
         `block.timestamp >= ready_at + delay`. Effects before interactions.
    @param recovery_id The recovery.
    """
    r: Recovery = self.recoveries[recovery_id]
    assert r.state == STATE_OPEN, "recovery: not an open recovery"
    assert r.epoch == self.epoch[r.old_account], "recovery: guardians changed since the proposal"
    assert r.ready_at != 0 and r.approvals >= self.threshold[r.old_account], "recovery: not enough guardian approvals"
    assert block.timestamp >= r.ready_at + delay, "recovery: still in its delay"
    self.recoveries[recovery_id].state = STATE_EXECUTED
    if self.queued_at[r.old_account] != 0:
        self._drop_queue(r.old_account)
    log RecoveryExecuted(recovery_id=recovery_id, old_account=r.old_account, new_account=r.new_account)
    extcall registry.recover_patient(r.old_account, r.new_account, r.encryption_key, r.did_key)
    extcall token.recover_owner(r.old_account, r.new_account)
    extcall consent.recover_owner(r.old_account, r.new_account)


@external
@view
def executable_at(recovery_id: uint256) -> uint256:
    """
    @notice When `recovery_id` may execute (0: not enough approvals yet, or not open).
    @param recovery_id A recovery id.
    @return Unix time.
    """
    r: Recovery = self.recoveries[recovery_id]
    if r.state != STATE_OPEN or r.ready_at == 0 or r.epoch != self.epoch[r.old_account]:
        return 0
    return r.ready_at + delay


# -- internals ------------------------------------------------------------------


@internal
@view
def _check_patient(account: address):
    kind: uint8 = 0
    active: bool = False
    key: bytes32 = empty(bytes32)
    kind, active, key = staticcall registry.participant(account)
    assert kind == KIND_PATIENT, "recovery: only a patient's account is recovered"
    assert active, "recovery: not an active patient"


@internal
@view
def _is_guardian(patient: address, account: address) -> bool:
    for g: address in self._guardians[patient]:
        if g == account:
            return True
    return False


@internal
def _approve(recovery_id: uint256):
    r: Recovery = self.recoveries[recovery_id]
    assert r.state == STATE_OPEN, "recovery: not an open recovery"
    assert r.epoch == self.epoch[r.old_account], "recovery: guardians changed since the proposal"
    assert self._is_guardian(r.old_account, msg.sender), "recovery: caller is not a guardian"
    assert staticcall registry.is_member(msg.sender), "recovery: guardian is not a registered member"
    assert not self.approved[recovery_id][msg.sender], "recovery: guardian already approved"
    self.approved[recovery_id][msg.sender] = True
    approvals: uint256 = r.approvals + 1
    self.recoveries[recovery_id].approvals = approvals
    threshold_: uint256 = self.threshold[r.old_account]
    ready_at: uint256 = r.ready_at
    if approvals == threshold_:
        ready_at = block.timestamp
        self.recoveries[recovery_id].ready_at = ready_at
    n: uint256 = len(self._guardians[r.old_account])
    if approvals == n and n > threshold_:
        self.unanimous[r.old_account] = recovery_id
    executable: uint256 = 0
    if ready_at != 0:
        executable = ready_at + delay
    log RecoveryApproved(recovery_id=recovery_id, guardian=msg.sender, approvals=approvals, executable_at=executable)


@internal
def _apply(patient: address, guardians: DynArray[address, MAX_GUARDIANS], threshold_: uint256):
    epoch_: uint256 = self.epoch[patient] + 1
    self._guardians[patient] = guardians
    self.threshold[patient] = threshold_
    self.epoch[patient] = epoch_
    log GuardiansChanged(patient=patient, threshold=threshold_, guardians=len(guardians), epoch=epoch_)


@internal
def _drop_queue(patient: address):
    self._queued_guardians[patient] = []
    self.queued_threshold[patient] = 0
    self.queued_at[patient] = 0
