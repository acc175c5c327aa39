# pragma version ~=0.4.3
"""
@title ConsentManager
@custom:contract-name ConsentManager
@license Apache-2.0
@notice Patients' consent, as code: grants (a set of tokens, or a whole category,
        for a purpose, until an expiry), requests from other participants (with an
        optional reward held in escrow), policies that approve matching requests
        with no human in the loop, and the log of every key release by custodians.
@dev Invariants:
     - a grant is created only by the patient (directly, by approving a request,
       or through the patient's own policy) and only the patient can revoke it;
     - a revoked grant never becomes valid again; an expired one never is;
     - a grant is only ever valid while its creator (or the account the creator
       was recovered to) still owns the token;
     - guardian recovery: only the recovery contract the registry names calls
       `recover_owner(old, new)`, once per `old`. From then on the grants `old`
       made hold for `new` (they are read through `holder`, so they are neither
       lost nor re-issued), `new` revokes them and answers `old`'s pending
       requests, `old`'s standing policies are `new`'s (one policy list per
       person, kept under the first address), and `old` can no longer share,
       revoke, approve, decline or change a policy;
     - every key release a custodian makes is logged here: under a live grant,
       or (grant 0) to a token's owner whose account guardians recovered;
     - an escrowed reward leaves the contract exactly once: to the patient when
       the request is approved, or back to the requester when it is declined or
       lapses;
     - nothing here is free text: purposes and categories are small codes, and
       the chain never learns which category a given token is in.
"""

from snekmate.auth import ownable

initializes: ownable
exports: (ownable.owner, ownable.transfer_ownership)


interface IParticipantRegistry:
    def is_member(account: address) -> bool: view
    def participant(account: address) -> (uint8, bool, bytes32): view
    def recovery() -> address: view


interface IHealthRecordToken:
    def ownerOf(token_id: uint256) -> address: view
    def is_burned(token_id: uint256) -> bool: view
    def next_token_id() -> uint256: view


# @dev Purposes (coarse codes).
PURPOSE_TREATMENT: public(constant(uint8)) = 1
PURPOSE_RESEARCH: public(constant(uint8)) = 2
PURPOSE_INSURANCE: public(constant(uint8)) = 3
PURPOSE_PUBLIC_HEALTH: public(constant(uint8)) = 4

MAX_CATEGORY: constant(uint8) = 64
MAX_GRANT_TOKENS: constant(uint256) = 256
MAX_POLICIES: constant(uint256) = 16
# @dev As the registry's MAX_RECOVERIES: the longest successor chain followed.
MAX_RECOVERIES: constant(uint256) = 8
# @dev How long a request waits for the patient before its escrow can be reclaimed.
REQUEST_WINDOW: public(constant(uint256)) = 30 * 86400

REQUEST_PENDING: constant(uint8) = 1
REQUEST_APPROVED: constant(uint8) = 2
REQUEST_DECLINED: constant(uint8) = 3
REQUEST_RECLAIMED: constant(uint8) = 4


struct Grant:
    owner: address
    grantee: address
    category: uint8
    purpose: uint8
    deidentified_only: bool
    expires: uint256
    revoked: bool


struct Request:
    requester: address
    owner: address
    token_id: uint256
    category: uint8
    purpose: uint8
    duration: uint256
    escrow: uint256
    deadline: uint256
    state: uint8
    grant_id: uint256


struct Policy:
    grantee_kind: uint8
    category: uint8
    purpose: uint8
    duration: uint256
    deidentified_only: bool
    valid_until: uint256
    active: bool


registry: public(immutable(IParticipantRegistry))
token: public(immutable(IHealthRecordToken))

# @dev Grant ids start at 1 (0 means none).
grant_count: public(uint256)
grants: public(HashMap[uint256, Grant])
_grant_tokens: HashMap[uint256, HashMap[uint256, bool]]

request_count: public(uint256)
requests: public(HashMap[uint256, Request])

# @dev Policies are kept under a person's first address (see `_policy_home`).
_policy_count: HashMap[address, uint256]
_policies: HashMap[address, HashMap[uint256, Policy]]

# @dev A recovered account -> the account it was recovered to (empty: none).
successor: public(HashMap[address, address])

# @dev A recovered-to account -> the first address of its person (policies' key).
_policy_home: HashMap[address, address]

is_custodian: public(HashMap[address, bool])


event GrantCreated:
    grant_id: indexed(uint256)
    owner: indexed(address)
    grantee: indexed(address)
    category: uint8
    purpose: uint8
    expires: uint256


event GrantRevoked:
    grant_id: indexed(uint256)
    owner: indexed(address)


event AccessRequested:
    request_id: indexed(uint256)
    owner: indexed(address)
    requester: indexed(address)
    purpose: uint8
    escrow: uint256


event RequestSettled:
    request_id: indexed(uint256)
    state: uint8
    grant_id: uint256


event PolicyChanged:
    owner: indexed(address)
    index: uint256
    active: bool


event CustodianChanged:
    custodian: indexed(address)
    status: bool


event OwnerRecovered:
    old_owner: indexed(address)
    new_owner: indexed(address)


event AccessLogged:
    owner: indexed(address)
    grantee: indexed(address)
    token_id: indexed(uint256)
    grant_id: uint256
    purpose: uint8
    custodian: address


@deploy
def __init__(registry_: IParticipantRegistry, token_: IHealthRecordToken):
    """
    @param registry_ Who is a member, and of which kind.
    @param token_ The health record tokens grants refer to.
    """
    ownable.__init__()
    registry = registry_
    token = token_


# -- grants ---------------------------------------------------------------------


@external
def share_tokens(grantee: address, token_ids: DynArray[uint256, MAX_GRANT_TOKENS], purpose: uint8, expires: uint256, deidentified_only: bool) -> uint256:
    """
    @notice Grants `grantee` read access to the caller's tokens `token_ids`.
    @dev The caller must own every token; the grantee must be a member.
    @param grantee A registered participant.
    @param token_ids 1..256 tokens of the caller.
    @param purpose A purpose code.
    @param expires Unix time after which the grant is void.
    @param deidentified_only Only de-identified derivatives may be released.
    @return The grant id.
    """
    assert len(token_ids) > 0, "consent: no tokens"
    for token_id: uint256 in token_ids:
        assert staticcall token.ownerOf(token_id) == msg.sender, "consent: caller does not own the token"
    grant_id: uint256 = self._new_grant(msg.sender, grantee, 0, purpose, expires, deidentified_only)
    for token_id: uint256 in token_ids:
        self._grant_tokens[grant_id][token_id] = True
    return grant_id


@external
def share_category(grantee: address, category: uint8, purpose: uint8, expires: uint256, deidentified_only: bool) -> uint256:
    """
    @notice Grants `grantee` read access to all the caller's records of
            `category`, including ones minted later, until `expires`.
    @dev Which token is in which category is known off chain only: custodians
         check it against the record metadata they hold.
    @param grantee A registered participant.
    @param category A category code, 1..64.
    @param purpose A purpose code.
    @param expires Unix time after which the grant is void.
    @param deidentified_only Only de-identified derivatives may be released.
    @return The grant id.
    """
    assert category > 0 and category <= MAX_CATEGORY, "consent: unknown category"
    assert self.successor[msg.sender] == empty(address), "consent: account was recovered"
    return self._new_grant(msg.sender, grantee, category, purpose, expires, deidentified_only)


@external
def revoke(grant_id: uint256):
    """
    @notice Ends a grant now: no key is released under it afterwards.
    @dev Only the grant's owner (the account it was recovered to, if it was); final.
    @param grant_id A grant of the caller.
    """
    g: Grant = self.grants[grant_id]
    assert g.owner != empty(address) and self._holder(g.owner) == msg.sender, "consent: caller does not own the grant"
    assert not g.revoked, "consent: grant already revoked"
    self.grants[grant_id].revoked = True
    log GrantRevoked(grant_id=grant_id, owner=msg.sender)


@external
@view
def can_access(grant_id: uint256, grantee: address, token_id: uint256) -> bool:
    """
    @notice Whether `grant_id` lets `grantee` read `token_id` now.
    @dev For a category grant the category itself is checked off chain.
    @param grant_id A grant id.
    @param grantee Who asks.
    @param token_id Which token.
    @return True when the grant is live, is `grantee`'s, its owner still owns
            the token, and it covers the token.
    """
    return self._can_access(grant_id, grantee, token_id)


@external
def log_access(grant_id: uint256, token_id: uint256):
    """
    @notice Records, on chain, that a custodian released a key share of
            `token_id` under `grant_id`; the patient reads these events.
    @dev Only a custodian, and only for an access that holds now. Grant 0 is
         no grant but a guardian recovery: the share released to the token's
         owner, an account guardians recovered (the record keys were sealed
         for the lost key); it is logged with that owner as grantee, purpose 0.
    @param grant_id The grant released under, or 0 for a recovered owner.
    @param token_id The token whose key share was released.
    """
    assert self.is_custodian[msg.sender], "consent: caller is not a custodian"
    if grant_id == 0:
        owner: address = self._recovered_owner(token_id)
        log AccessLogged(owner=owner, grantee=owner, token_id=token_id, grant_id=0, purpose=0, custodian=msg.sender)
        return
    g: Grant = self.grants[grant_id]
    assert self._can_access(grant_id, g.grantee, token_id), "consent: no valid grant"
    log AccessLogged(owner=self._holder(g.owner), grantee=g.grantee, token_id=token_id, grant_id=grant_id, purpose=g.purpose, custodian=msg.sender)


@external
def set_custodian(custodian: address, status: bool):
    """
    @notice Admits or removes a custodian service.
    @dev Only the admin.
    @param custodian The custodian's address.
    @param status True to admit.
    """
    ownable._check_owner()
    self.is_custodian[custodian] = status
    log CustodianChanged(custodian=custodian, status=status)


# -- requests -------------------------------------------------------------------


@external
@payable
def request(owner: address, token_id: uint256, category: uint8, purpose: uint8, duration: uint256) -> uint256:
    """
    @notice Asks `owner` for access to one token (`category` 0) or a category
            (`token_id` 0), for `purpose`, for `duration` seconds once granted.
            Any value sent is a reward held in escrow. A request that meets one
            of the owner's policies is granted at once.
    @dev The requester and the owner must be members.
    @param owner The patient asked.
    @param token_id A token of the owner, or 0.
    @param category A category code, or 0.
    @param purpose A purpose code.
    @param duration How long the grant would last, in seconds.
    @return The request id.
    """
    assert staticcall registry.is_member(msg.sender), "consent: requester is not a registered member"
    assert staticcall registry.is_member(owner), "consent: owner is not a registered member"
    assert (token_id == 0) != (category == 0), "consent: ask for one token or one category"
    assert category <= MAX_CATEGORY, "consent: unknown category"
    assert purpose >= PURPOSE_TREATMENT and purpose <= PURPOSE_PUBLIC_HEALTH, "consent: unknown purpose"
    assert duration > 0 and duration <= 10 * 365 * 86400, "consent: duration out of range"
    if token_id != 0:
        assert staticcall token.ownerOf(token_id) == owner, "consent: owner does not own the token"
    request_id: uint256 = self.request_count + 1
    self.request_count = request_id
    self.requests[request_id] = Request(
        requester=msg.sender, owner=owner, token_id=token_id, category=category, purpose=purpose,
        duration=duration, escrow=msg.value, deadline=block.timestamp + REQUEST_WINDOW,
        state=REQUEST_PENDING, grant_id=0,
    )
    log AccessRequested(request_id=request_id, owner=owner, requester=msg.sender, purpose=purpose, escrow=msg.value)
    policy: uint256 = self._matching_policy(owner, msg.sender, category, purpose, duration)
    if policy != 0:
        self._approve(request_id, self._policies[self._policy_home_of(owner)][policy - 1].deidentified_only)
    return request_id


@external
def approve(request_id: uint256, deidentified_only: bool) -> uint256:
    """
    @notice The patient grants a pending request; its reward is paid to them.
    @param request_id A pending request to the caller.
    @param deidentified_only Release only de-identified derivatives.
    @return The grant id.
    """
    assert self._holder(self.requests[request_id].owner) == msg.sender, "consent: not a request to the caller"
    return self._approve(request_id, deidentified_only)


@external
def decline(request_id: uint256):
    """
    @notice The patient declines a pending request; its reward is refunded.
    @param request_id A pending request to the caller.
    """
    r: Request = self.requests[request_id]
    assert self._holder(r.owner) == msg.sender, "consent: not a request to the caller"
    assert r.state == REQUEST_PENDING, "consent: request is not pending"
    self.requests[request_id].state = REQUEST_DECLINED
    self.requests[request_id].escrow = 0
    log RequestSettled(request_id=request_id, state=REQUEST_DECLINED, grant_id=0)
    if r.escrow > 0:
        send(r.requester, r.escrow)


@external
def reclaim(request_id: uint256):
    """
    @notice The requester takes back the reward of a request left unanswered
            past its window.
    @param request_id A pending request of the caller, past its deadline.
    """
    r: Request = self.requests[request_id]
    assert r.requester == msg.sender, "consent: not the caller's request"
    assert r.state == REQUEST_PENDING, "consent: request is not pending"
    assert block.timestamp > r.deadline, "consent: request is still open"
    self.requests[request_id].state = REQUEST_RECLAIMED
    self.requests[request_id].escrow = 0
    log RequestSettled(request_id=request_id, state=REQUEST_RECLAIMED, grant_id=0)
    if r.escrow > 0:
        send(r.requester, r.escrow)


# -- policies -------------------------------------------------------------------


@external
def add_policy(grantee_kind: uint8, category: uint8, purpose: uint8, duration: uint256, deidentified_only: bool, valid_until: uint256) -> uint256:
    """
    @notice A standing rule: requests from participants of `grantee_kind` for
            `category` and `purpose`, for at most `duration`, are granted at once
            until `valid_until`.
    @param grantee_kind A participant kind code (2..6).
    @param category A category code (0: any single-token request).
    @param purpose A purpose code.
    @param duration The longest grant the policy gives, in seconds.
    @param deidentified_only Grants made by the policy release only de-identified data.
    @param valid_until Unix time after which the policy no longer applies.
    @return The policy index (1-based).
    """
    assert staticcall registry.is_member(msg.sender), "consent: caller is not a registered member"
    assert grantee_kind >= 2 and grantee_kind <= 6, "consent: unknown participant kind"
    assert category <= MAX_CATEGORY, "consent: unknown category"
    assert purpose >= PURPOSE_TREATMENT and purpose <= PURPOSE_PUBLIC_HEALTH, "consent: unknown purpose"
    assert valid_until > block.timestamp, "consent: policy already expired"
    home: address = self._policy_home_of(msg.sender)
    index: uint256 = self._policy_count[home]
    assert index < MAX_POLICIES, "consent: too many policies"
    self._policies[home][index] = Policy(
        grantee_kind=grantee_kind, category=category, purpose=purpose, duration=duration,
        deidentified_only=deidentified_only, valid_until=valid_until, active=True,
    )
    self._policy_count[home] = index + 1
    log PolicyChanged(owner=msg.sender, index=index + 1, active=True)
    return index + 1


@external
def remove_policy(index: uint256):
    """
    @notice Turns a policy off (grants it already made stay until revoked).
    @param index A 1-based policy index of the caller.
    """
    assert self.successor[msg.sender] == empty(address), "consent: account was recovered"
    home: address = self._policy_home_of(msg.sender)
    assert index > 0 and index <= self._policy_count[home], "consent: unknown policy"
    assert self._policies[home][index - 1].active, "consent: policy already removed"
    self._policies[home][index - 1].active = False
    log PolicyChanged(owner=msg.sender, index=index, active=False)


@external
@view
def policy_count(owner: address) -> uint256:
    """
    @notice How many policies `owner` has added (removed ones included).
    @param owner A participant (after a recovery: its new address).
    @return The count.
    """
    return self._policy_count[self._policy_home_of(owner)]


@external
@view
def policies(owner: address, index: uint256) -> Policy:
    """
    @notice `owner`'s policy at 0-based `index`.
    @param owner A participant (after a recovery: its new address).
    @param index 0-based.
    @return The policy (all zero beyond the count).
    """
    return self._policies[self._policy_home_of(owner)][index]


# -- guardian recovery ----------------------------------------------------------


@external
def recover_owner(old_owner: address, new_owner: address):
    """
    @notice Guardian recovery: `old_owner`'s grants, pending requests and
            standing policies are `new_owner`'s from now on, and `old_owner`
            can no longer act on them.
    @dev Only the recovery contract named in the registry (which has made
         `new_owner` a member in place of `old_owner`). Once per `old_owner`.
    @param old_owner The recovered patient's old address.
    @param new_owner Its new address.
    """
    recovery: address = staticcall registry.recovery()
    assert recovery != empty(address) and msg.sender == recovery, "consent: caller is not the recovery contract"
    assert new_owner != empty(address) and new_owner != old_owner, "consent: invalid new owner"
    assert self.successor[old_owner] == empty(address), "consent: owner already recovered"
    assert self.successor[new_owner] == empty(address), "consent: new owner was recovered"
    self.successor[old_owner] = new_owner
    self._policy_home[new_owner] = self._policy_home_of(old_owner)
    log OwnerRecovered(old_owner=old_owner, new_owner=new_owner)


@external
@view
def holder(account: address) -> address:
    """
    @notice Who acts for `account` now: itself, or the address it was recovered to.
    @param account Any address.
    @return The current address.
    """
    return self._holder(account)


# -- internals ------------------------------------------------------------------


@internal
@view
def _holder(account: address) -> address:
    current: address = account
    for _: uint256 in range(MAX_RECOVERIES):
        nxt: address = self.successor[current]
        if nxt == empty(address):
            break
        current = nxt
    return current


@internal
@view
def _recovered_owner(token_id: uint256) -> address:
    # The live token's owner, when guardians recovered that account (`recover_owner`
    # gave it a policy home); else the log is refused.
    assert token_id != 0 and token_id < staticcall token.next_token_id() and not staticcall token.is_burned(token_id), "consent: no such token"
    owner: address = staticcall token.ownerOf(token_id)
    assert self._policy_home[owner] != empty(address), "consent: the owner was not recovered"
    return owner


@internal
@view
def _policy_home_of(account: address) -> address:
    home: address = self._policy_home[account]
    if home == empty(address):
        return account
    return home



@internal
def _new_grant(owner: address, grantee: address, category: uint8, purpose: uint8, expires: uint256, deidentified_only: bool) -> uint256:
    assert grantee != owner, "consent: cannot grant to oneself"
    assert staticcall registry.is_member(grantee), "consent: grantee is not a registered member"
    assert purpose >= PURPOSE_TREATMENT and purpose <= PURPOSE_PUBLIC_HEALTH, "consent: unknown purpose"
    assert expires > block.timestamp, "consent: expiry is in the past"
    grant_id: uint256 = self.grant_count + 1
    self.grant_count = grant_id
    self.grants[grant_id] = Grant(
        owner=owner, grantee=grantee, category=category, purpose=purpose,
        deidentified_only=deidentified_only, expires=expires, revoked=False,
    )
    log GrantCreated(grant_id=grant_id, owner=owner, grantee=grantee, category=category, purpose=purpose, expires=expires)
    return grant_id


@internal
@view
def _can_access(grant_id: uint256, grantee: address, token_id: uint256) -> bool:
    g: Grant = self.grants[grant_id]
    if g.owner == empty(address) or g.revoked or block.timestamp >= g.expires:
        return False
    if g.grantee != grantee:
        return False
    # ownerOf reverts for unknown and burned tokens: a view answers False instead.
    if token_id == 0 or token_id >= staticcall token.next_token_id() or staticcall token.is_burned(token_id):
        return False
    if staticcall token.ownerOf(token_id) != self._holder(g.owner):
        return False
    return g.category != 0 or self._grant_tokens[grant_id][token_id]


@internal
def _approve(request_id: uint256, deidentified_only: bool) -> uint256:
    r: Request = self.requests[request_id]
    assert r.state == REQUEST_PENDING, "consent: request is not pending"
    assert block.timestamp <= r.deadline, "consent: request has lapsed"
    owner: address = self._holder(r.owner)  # the patient's current address
    if r.token_id != 0:
        assert staticcall token.ownerOf(r.token_id) == owner, "consent: owner no longer owns the token"
    grant_id: uint256 = self._new_grant(owner, r.requester, r.category, r.purpose, block.timestamp + r.duration, deidentified_only)
    if r.token_id != 0:
        self._grant_tokens[grant_id][r.token_id] = True
    self.requests[request_id].state = REQUEST_APPROVED
    self.requests[request_id].grant_id = grant_id
    self.requests[request_id].escrow = 0
    log RequestSettled(request_id=request_id, state=REQUEST_APPROVED, grant_id=grant_id)
    if r.escrow > 0:
        send(owner, r.escrow)
    return grant_id


@internal
@view
def _matching_policy(owner: address, requester: address, category: uint8, purpose: uint8, duration: uint256) -> uint256:
    """
    @dev 1-based index of the first active, unexpired policy of `owner` that
         matches the requester's kind, the category, the purpose and whose
         duration covers the request; 0 when none does.
    """
    kind: uint8 = 0
    active: bool = False
    key: bytes32 = empty(bytes32)
    kind, active, key = staticcall registry.participant(requester)
    home: address = self._policy_home_of(owner)
    count: uint256 = self._policy_count[home]
    for i: uint256 in range(MAX_POLICIES):
        if i >= count:
            break
        p: Policy = self._policies[home][i]
        if p.active and block.timestamp < p.valid_until and p.grantee_kind == kind and p.category == category and p.purpose == purpose and duration <= p.duration:
            return i + 1
    return 0
