# pragma version ~=0.4.3
"""
@title Governance
@custom:contract-name Governance
@license Apache-2.0
@notice The founding institutions' council: k of its n members decide who
        joins, who may mint, who is suspended or re-keyed, which custodians
        hold key shares, and the council itself. Once the deploying admin has
        handed the `ParticipantRegistry` and the `ConsentManager` over to this
        contract (`transfer_ownership`), no single key can change them.
@dev A council member proposes an action (its proposal counts as its own
     approval); other members approve it; the approval that reaches the
     threshold executes it in the same transaction. If the action reverts
     (say, the account is already registered), that approval reverts with the
     registry's own message and the proposal stays pending.

     Invariants:
     - 2 <= threshold <= len(council) <= MAX_COUNCIL: one member alone never
       decides anything, and the council can always reach its threshold while
       every member is active;
     - council addresses are distinct, non-zero, and were active registry
       members when they joined the council;
     - only an active council member (on the council and an active registry
       member) proposes or approves; a suspended one does neither, and its
       earlier approvals stop counting;
     - a member approves a proposal at most once; a proposal executes at most
       once, only before its deadline and only under the council it was made
       under: any change of the council, its threshold or its voting period
       starts a new `epoch` and voids every pending proposal;
     - the only state this contract changes elsewhere is through the registry
       and consent manager's owner-only functions, each after k approvals.
"""


interface IParticipantRegistry:
    def register(account: address, kind: uint8, encryption_key: bytes32): nonpayable
    def deactivate(account: address): nonpayable
    def reactivate(account: address): nonpayable
    def set_issuer(account: address, status: bool): nonpayable
    def set_encryption_key(account: address, encryption_key: bytes32): nonpayable
    def bind_did(account: address, did_key: bytes32): nonpayable
    def set_registrar(account: address, status: bool): nonpayable
    def transfer_ownership(new_owner: address): nonpayable
    def is_member(account: address) -> bool: view
    def owner() -> address: view


interface IConsentManager:
    def set_custodian(custodian: address, status: bool): nonpayable
    def transfer_ownership(new_owner: address): nonpayable
    def owner() -> address: view


# @dev The largest council (bounds every loop over it).
MAX_COUNCIL: public(constant(uint256)) = 16
# @dev Bounds of the voting period, in seconds (an hour to ninety days).
MIN_VOTING_PERIOD: public(constant(uint256)) = 3_600
MAX_VOTING_PERIOD: public(constant(uint256)) = 7_776_000

# @dev Actions. `account` is the participant (or council member) acted on;
#      `number` and `key` carry what the action needs, as noted.
ACTION_REGISTER: public(constant(uint8)) = 1  # number: kind code, key: encryption key
ACTION_SET_ISSUER: public(constant(uint8)) = 2  # number: 1 grant, 0 withdraw
ACTION_SUSPEND: public(constant(uint8)) = 3
ACTION_REACTIVATE: public(constant(uint8)) = 4
ACTION_REKEY: public(constant(uint8)) = 5  # key: new encryption key
ACTION_BIND_DID: public(constant(uint8)) = 6  # key: Ed25519 did:key key
ACTION_SET_CUSTODIAN: public(constant(uint8)) = 7  # number: 1 add, 0 remove
ACTION_ADD_COUNCIL: public(constant(uint8)) = 8
ACTION_REMOVE_COUNCIL: public(constant(uint8)) = 9
ACTION_REPLACE_COUNCIL: public(constant(uint8)) = 10  # new_account replaces account
ACTION_SET_THRESHOLD: public(constant(uint8)) = 11  # number: new threshold
ACTION_SET_VOTING_PERIOD: public(constant(uint8)) = 12  # number: seconds
ACTION_HAND_OVER: public(constant(uint8)) = 13  # account: the registry's and consent manager's next owner
ACTION_SET_REGISTRAR: public(constant(uint8)) = 14  # number: 1 name, 0 withdraw (patients' enrolment office)

# @dev Proposal states as `proposal` reports them.
STATE_UNKNOWN: constant(uint8) = 0
STATE_PENDING: constant(uint8) = 1
STATE_EXECUTED: constant(uint8) = 2
STATE_EXPIRED: constant(uint8) = 3
STATE_VOID: constant(uint8) = 4


struct Proposal:
    action: uint8
    account: address
    number: uint256
    key: bytes32
    new_account: address
    proposer: address
    deadline: uint256
    epoch: uint256
    executed: bool


# @dev The contracts this council owns.
registry: public(immutable(IParticipantRegistry))
consent: public(immutable(IConsentManager))

# @dev The council, in joining order (a removed member's place takes the last one).
council: public(DynArray[address, MAX_COUNCIL])
is_council: public(HashMap[address, bool])

# @dev How many live approvals execute a proposal.
threshold: public(uint256)

# @dev Seconds a proposal stays open.
voting_period: public(uint256)

# @dev Bumped by every council change: proposals of an earlier epoch are void.
epoch: public(uint256)

# @dev Proposals are numbered from 1.
proposal_count: public(uint256)
proposals: HashMap[uint256, Proposal]

# @dev proposal id -> council member -> approved.
approved: public(HashMap[uint256, HashMap[address, bool]])


event Proposed:
    proposal_id: indexed(uint256)
    proposer: indexed(address)
    account: indexed(address)
    action: uint8
    deadline: uint256


event Approved:
    proposal_id: indexed(uint256)
    member: indexed(address)
    approvals: uint256


event Executed:
    proposal_id: indexed(uint256)
    account: indexed(address)
    action: uint8


event CouncilChanged:
    member: indexed(address)
    added: bool


event ThresholdChanged:
    threshold: uint256


event VotingPeriodChanged:
    voting_period: uint256


@deploy
def __init__(registry_: IParticipantRegistry, consent_: IConsentManager, council_: DynArray[address, MAX_COUNCIL], threshold_: uint256, voting_period_: uint256):
    """
    @notice Sets up the founding council. The registry and the consent manager
            still belong to their deployer until it calls `transfer_ownership`
            with this contract's address on each (see `installed`).
    @param registry_ The network's ParticipantRegistry.
    @param consent_ The network's ConsentManager.
    @param council_ The founding institutions: distinct, active registry members.
    @param threshold_ How many of them must approve an action (2 to n).
    @param voting_period_ Seconds a proposal stays open (an hour to ninety days).
    """
    registry = registry_
    consent = consent_
    for member: address in council_:
        self._add_member(member)
    self._set_threshold(threshold_)
    self._set_voting_period(voting_period_)


@external
def propose(action: uint8, account: address, number: uint256, key: bytes32, new_account: address) -> uint256:
    """
    @notice Proposes an action; the proposal counts as the proposer's approval.
    @dev Only an active council member. The action's own conditions (a fresh
         address, a known kind) are checked by the registry when it executes;
         the council's are checked here and again then.
    @param action One of the ACTION_* codes.
    @param account The account acted on (a participant, a council member, or
           the next owner for ACTION_HAND_OVER).
    @param number The kind, flag (0/1), threshold or period, as the action needs.
    @param key The encryption or DID key, as the action needs.
    @param new_account The incoming council member of ACTION_REPLACE_COUNCIL.
    @return The proposal's id.
    """
    self._check_voter(msg.sender)
    assert action >= ACTION_REGISTER and action <= ACTION_SET_REGISTRAR, "governance: unknown action"
    assert account != empty(address), "governance: zero address"
    if action == ACTION_SET_ISSUER or action == ACTION_SET_CUSTODIAN or action == ACTION_SET_REGISTRAR:
        assert number <= 1, "governance: flag must be 0 or 1"
    self._check_council_action(action, account, number, new_account)
    proposal_id: uint256 = self.proposal_count + 1
    self.proposal_count = proposal_id
    deadline: uint256 = block.timestamp + self.voting_period
    self.proposals[proposal_id] = Proposal(
        action=action, account=account, number=number, key=key, new_account=new_account,
        proposer=msg.sender, deadline=deadline, epoch=self.epoch, executed=False,
    )
    log Proposed(proposal_id=proposal_id, proposer=msg.sender, account=account, action=action, deadline=deadline)
    self._approve(proposal_id)
    return proposal_id


@external
def approve(proposal_id: uint256):
    """
    @notice Approves a pending proposal; the approval that reaches the
            threshold executes it.
    @dev Only an active council member, once per proposal, before its deadline
         and within the epoch it was made in.
    @param proposal_id A pending proposal.
    """
    self._check_voter(msg.sender)
    self._approve(proposal_id)


@external
@view
def proposal(proposal_id: uint256) -> (uint8, address, uint256, bytes32, address, address, uint256, uint8, uint256):
    """
    @notice A proposal as it stands.
    @param proposal_id Any id.
    @return action, account, number, key, new_account, proposer, deadline,
            state (0 unknown, 1 pending, 2 executed, 3 expired, 4 void: made
            under an earlier council), live approvals.
    """
    p: Proposal = self.proposals[proposal_id]
    state: uint8 = STATE_UNKNOWN
    if p.proposer == empty(address):
        state = STATE_UNKNOWN
    elif p.executed:
        state = STATE_EXECUTED
    elif p.epoch != self.epoch:
        state = STATE_VOID
    elif block.timestamp >= p.deadline:
        state = STATE_EXPIRED
    else:
        state = STATE_PENDING
    return (p.action, p.account, p.number, p.key, p.new_account, p.proposer, p.deadline, state, self._approvals(proposal_id))


@external
@view
def members() -> DynArray[address, MAX_COUNCIL]:
    """
    @notice The council's addresses.
    @return Every member, suspended ones included.
    """
    return self.council


@external
@view
def installed() -> bool:
    """
    @notice Whether this council owns both the registry and the consent manager
            (the admin has handed them over).
    @return True once both hand-overs are done.
    """
    return staticcall registry.owner() == self and staticcall consent.owner() == self


@internal
@view
def _check_voter(member: address):
    assert self.is_council[member], "governance: caller is not on the council"
    assert staticcall registry.is_member(member), "governance: council member is suspended"


@internal
@view
def _approvals(proposal_id: uint256) -> uint256:
    """Approvals that count: by members still on the council and active."""
    count: uint256 = 0
    for member: address in self.council:
        if self.approved[proposal_id][member] and staticcall registry.is_member(member):
            count += 1
    return count


@internal
def _approve(proposal_id: uint256):
    # Field by field: the whole proposal is read only when it executes.
    assert self.proposals[proposal_id].proposer != empty(address), "governance: unknown proposal"
    assert not self.proposals[proposal_id].executed, "governance: proposal already executed"
    assert self.proposals[proposal_id].epoch == self.epoch, "governance: proposal void (the council changed since)"
    assert block.timestamp < self.proposals[proposal_id].deadline, "governance: proposal expired"
    assert not self.approved[proposal_id][msg.sender], "governance: already approved"
    self.approved[proposal_id][msg.sender] = True
    approvals: uint256 = self._approvals(proposal_id)
    log Approved(proposal_id=proposal_id, member=msg.sender, approvals=approvals)
    if approvals >= self.threshold:
        self.proposals[proposal_id].executed = True
        p: Proposal = self.proposals[proposal_id]
        self._execute(p)
        log Executed(proposal_id=proposal_id, account=p.account, action=p.action)


@internal
def _execute(p: Proposal):
    if p.action == ACTION_REGISTER:
        assert p.number <= 255, "governance: unknown kind"
        extcall registry.register(p.account, convert(p.number, uint8), p.key)
    elif p.action == ACTION_SET_ISSUER:
        extcall registry.set_issuer(p.account, p.number == 1)
    elif p.action == ACTION_SUSPEND:
        extcall registry.deactivate(p.account)
    elif p.action == ACTION_REACTIVATE:
        extcall registry.reactivate(p.account)
    elif p.action == ACTION_REKEY:
        extcall registry.set_encryption_key(p.account, p.key)
    elif p.action == ACTION_BIND_DID:
        extcall registry.bind_did(p.account, p.key)
    elif p.action == ACTION_SET_CUSTODIAN:
        extcall consent.set_custodian(p.account, p.number == 1)
    elif p.action == ACTION_SET_REGISTRAR:
        extcall registry.set_registrar(p.account, p.number == 1)
    elif p.action == ACTION_HAND_OVER:
        extcall registry.transfer_ownership(p.account)
        extcall consent.transfer_ownership(p.account)
    else:
        self._check_council_action(p.action, p.account, p.number, p.new_account)
        self.epoch += 1
        if p.action == ACTION_ADD_COUNCIL:
            self._add_member(p.account)
        elif p.action == ACTION_REMOVE_COUNCIL:
            self._remove_member(p.account)
        elif p.action == ACTION_REPLACE_COUNCIL:
            self._remove_member(p.account)
            self._add_member(p.new_account)
        elif p.action == ACTION_SET_THRESHOLD:
            self._set_threshold(p.number)
        elif p.action == ACTION_SET_VOTING_PERIOD:
            self._set_voting_period(p.number)


@internal
@view
def _check_council_action(action: uint8, account: address, number: uint256, new_account: address):
    """The council's own conditions, checked at proposal and again at execution."""
    n: uint256 = len(self.council)
    if action == ACTION_ADD_COUNCIL:
        assert not self.is_council[account], "governance: already on the council"
        assert n < MAX_COUNCIL, "governance: council is full"
        assert staticcall registry.is_member(account), "governance: council member must be an active participant"
    elif action == ACTION_REMOVE_COUNCIL:
        assert self.is_council[account], "governance: not on the council"
        assert n - 1 >= self.threshold, "governance: threshold above council size"
    elif action == ACTION_REPLACE_COUNCIL:
        assert self.is_council[account], "governance: not on the council"
        assert new_account != empty(address), "governance: zero address"
        assert not self.is_council[new_account], "governance: already on the council"
        assert staticcall registry.is_member(new_account), "governance: council member must be an active participant"
    elif action == ACTION_SET_THRESHOLD:
        assert number >= 2, "governance: threshold below 2"
        assert number <= n, "governance: threshold above council size"
    elif action == ACTION_SET_VOTING_PERIOD:
        assert number >= MIN_VOTING_PERIOD and number <= MAX_VOTING_PERIOD, "governance: voting period out of range"


@internal
def _add_member(member: address):
    assert member != empty(address), "governance: zero address"
    assert not self.is_council[member], "governance: already on the council"
    assert staticcall registry.is_member(member), "governance: council member must be an active participant"
    self.council.append(member)
    self.is_council[member] = True
    log CouncilChanged(member=member, added=True)


@internal
def _remove_member(member: address):
    last: uint256 = len(self.council) - 1
    for i: uint256 in range(MAX_COUNCIL):
        if i > last:
            break
        if self.council[i] == member:
            self.council[i] = self.council[last]
            self.council.pop()
            break
    self.is_council[member] = False
    log CouncilChanged(member=member, added=False)


@internal
def _set_threshold(threshold_: uint256):
    assert threshold_ >= 2, "governance: threshold below 2"
    assert threshold_ <= len(self.council), "governance: threshold above council size"
    self.threshold = threshold_
    log ThresholdChanged(threshold=threshold_)


@internal
def _set_voting_period(voting_period_: uint256):
    assert voting_period_ >= MIN_VOTING_PERIOD and voting_period_ <= MAX_VOTING_PERIOD, "governance: voting period out of range"
    self.voting_period = voting_period_
    log VotingPeriodChanged(voting_period=voting_period_)
