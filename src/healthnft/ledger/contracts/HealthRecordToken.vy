# pragma version ~=0.4.3
"""
@title HealthRecordToken
@custom:contract-name HealthRecordToken
@license Apache-2.0
@notice ERC-721 tokens for patient-owned health records. A registered issuer
        (a hospital, or a pharmacy) mints a whole batch of records into one patient's wallet in
        one transaction: the batch stores one Merkle root over
        `leaf = keccak(0x00 || tokenId || commitment)` and one packed
        `owner | start | end` slot, and emits one ERC-2309 ConsecutiveTransfer
        for the range. Ownership is lazy (ERC-721A style): a token belongs to its
        batch's owner until it is transferred on its own.
@dev Invariants:
     - token ids are consecutive from 1; batch `b` covers [start_b, end_b) and
       batches are sorted by start with no gap, so `next_token_id` is the end of
       the last batch;
     - a token's owner is always a participant that was registered and active
       when it received the token;
     - approvals go to institutions only, and lapse: `approve` names a registered,
       active institution (hospital, pharma, research, insurer, government; never
       a patient, a custodian or an outsider) or clears, `setApprovalForAll`
       grants only to one (withdrawing is always allowed), each for
       APPROVAL_LIFETIME from the block that gave it; anyone but the owner who
       moves, burns or approves a token must still be an active institution when it
       acts. So a phished approval cannot hand a record to a fresh address nor to
       another person, cannot outlive its holder's membership, and cannot sit
       forgotten in a wallet (the choice of issue #14 point 5: ERC-721's approve
       kept, for an institution acting for the patient, e.g. an insurer moving a
       claim's records, but never open-ended);
     - `balanceOf(a)` equals the number of tokens whose `ownerOf` is `a`;
     - nothing here identifies a person or holds health data: only roots,
       addresses and token ranges;
     - a burned token has no owner and never comes back (its id is not reused);
     - `superseded_by[t]`, once set, names the token minted in the very same
       transaction (by `amend`), to `t`'s owner, by the issuer that owner approved
       for `t`; it is never changed. A correction and its link are one
       transaction: no token is ever superseded by a record that is not on chain,
       and no correction is ever minted without superseding the record it corrects;
     - an amendment approval is spent by the `amend` it allows, and dropped by a
       transfer or a burn (it is the owner's, not the token's);
     - guardian recovery: only the recovery contract the registry names calls
       `recover_owner(old, new)`, once per `old`; from then on every token whose
       recorded owner is `old` (batch owner or transfer) belongs to `new` (the
       `successor` chain, at most MAX_RECOVERIES long, is followed by `ownerOf`),
       `old`'s balance is `new`'s, and nothing `old` approved counts any more
       (operators are per owner; a token approval or an amendment approval counts
       only while the token's recorded owner is its current owner). This moves
       every token in O(1) gas, whatever the wallet's size, with no list to
       trust; the token contract grants the recovery contract no other power.
     (Who minted which batch is in BatchMinted events, and each record's issuer is
     proven by its attestation, so no issuer is stored per batch: that would add
     ~22k gas to every mint.)
"""

from ethereum.ercs import IERC165
from ethereum.ercs import IERC721

implements: IERC165
implements: IERC721


interface IParticipantRegistry:
    def is_member(account: address) -> bool: view
    def is_issuer(account: address) -> bool: view
    def is_institution(account: address) -> bool: view
    def recovery() -> address: view


interface IERC721Receiver:
    def onERC721Received(operator: address, owner: address, token_id: uint256, data: Bytes[1_024]) -> bytes4: nonpayable


# @dev ERC-165 (0x01ffc9a7), ERC-721 (0x80ac58cd), ERC-721 metadata (0x5b5e139f).
_SUPPORTED_INTERFACES: constant(bytes4[3]) = [0x01ffc9a7, 0x80ac58cd, 0x5b5e139f]

# @dev The largest batch one transaction may mint (bounds the event range).
MAX_BATCH: public(constant(uint256)) = 10_000

# @dev As the registry's MAX_RECOVERIES: the longest successor chain followed.
MAX_RECOVERIES: constant(uint256) = 8

_ADDRESS_BITS: constant(uint256) = 96
_RANGE_MASK: constant(uint256) = (1 << 48) - 1


name: public(constant(String[25])) = "healthnft health record"
symbol: public(constant(String[5])) = "HREC"

# @dev The registry that says who is a member and who may issue.
registry: public(immutable(IParticipantRegistry))

# @dev Next token id to mint (ids start at 1; 0 means "none").
next_token_id: public(uint256)

# @dev Number of batches minted so far.
batch_count: public(uint256)

# @dev Batch index -> owner << 96 | start << 48 | end (end exclusive).
_batches: HashMap[uint256, uint256]

# @dev Batch index -> Merkle root of its leaves.
batch_root: public(HashMap[uint256, bytes32])

# @dev Owner of a token transferred out of its batch (empty: batch owner).
_owner_override: HashMap[uint256, address]

# @dev Burned tokens (their records were crypto-shredded off chain).
is_burned: public(HashMap[uint256, bool])

# @dev Old token -> the token that corrects it (0: not superseded).
superseded_by: public(HashMap[uint256, uint256])

# @dev Old token -> issuer the owner allows to supersede it.
amendment_approved: public(HashMap[uint256, address])

# @dev A recovered owner -> the address its tokens now belong to (empty: none).
successor: public(HashMap[address, address])

_balances: HashMap[address, uint256]
_token_approvals: HashMap[uint256, address]
# @dev When each token approval lapses (block timestamp; 0 = none).
_approval_until: HashMap[uint256, uint256]
# @dev owner => operator => when that operator's approval lapses (0 = none).
_operator_until: HashMap[address, HashMap[address, uint256]]

# @dev How long an ERC-721 approval or operator approval lasts (7 days): long
#      enough for an institution to act on the patient's behalf, short enough
#      that a forgotten or phished approval lapses by itself.
APPROVAL_LIFETIME: public(constant(uint256)) = 7 * 86_400


event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    token_id: indexed(uint256)


event Approval:
    owner: indexed(address)
    approved: indexed(address)
    token_id: indexed(uint256)


event ApprovalForAll:
    owner: indexed(address)
    operator: indexed(address)
    approved: bool


# @dev ERC-2309: a consecutive range of tokens changed hands in one go.
event ConsecutiveTransfer:
    fromTokenId: indexed(uint256)
    toTokenId: uint256
    fromAddress: indexed(address)
    toAddress: indexed(address)


event BatchMinted:
    batch_id: indexed(uint256)
    issuer: indexed(address)
    root: bytes32


# @dev Every token of `old_owner` (`tokens` of them) now belongs to `new_owner`.
event OwnerRecovered:
    old_owner: indexed(address)
    new_owner: indexed(address)
    tokens: uint256


# @dev `old_token` was corrected by `new_token`, minted in the same transaction.
event Superseded:
    old_token: indexed(uint256)
    new_token: indexed(uint256)


@deploy
def __init__(registry_: IParticipantRegistry):
    """
    @param registry_ The ParticipantRegistry this token trusts.
    """
    registry = registry_
    self.next_token_id = 1


@external
@view
def supportsInterface(interface_id: bytes4) -> bool:
    """
    @notice ERC-165.
    @param interface_id The interface identifier.
    @return Whether it is supported.
    """
    return interface_id in _SUPPORTED_INTERFACES


@external
def mint_batch(to: address, count: uint256, expected_start: uint256, root: bytes32) -> uint256:
    """
    @notice Mints `count` consecutive tokens to `to` under one Merkle root.
    @dev Only a registered issuer; `to` must be a member. `expected_start` must
         equal `next_token_id`, because the leaves commit to token ids: a batch
         built for another range is refused rather than minted with wrong proofs.
    @param to The patient's wallet.
    @param count Number of records, 1..MAX_BATCH.
    @param expected_start The first token id the caller built the leaves for.
    @param root The Merkle root over the batch's leaves.
    @return The batch id.
    """
    return self._mint_batch(to, count, expected_start, root)


@external
def amend(old_token: uint256, expected_start: uint256, root: bytes32) -> uint256:
    """
    @notice Mints the corrected version of `old_token` (a batch of one, to the
            same owner) and marks `old_token` superseded by it, in one transaction:
            a crash can leave the correction either wholly done or not begun.
    @dev Only the issuer the owner approved for `old_token` (approve_amendment),
         while it is still a registered issuer; the token must not be burned nor
         already superseded, and its owner must still be a member. The approval
         is spent. `expected_start` and `root` are as in `mint_batch` (the new
         token's id is `expected_start`).
    @param old_token The inaccurate record's token.
    @param expected_start The id the caller built the corrected record's leaf for.
    @param root The Merkle root over the one leaf of the corrected record.
    @return The batch id of the corrected record.
    """
    assert self.amendment_approved[old_token] == msg.sender, "healthrecord: amendment not approved by the owner"
    owner: address = self._owner_of(old_token)
    assert self._recorded_owner(old_token) == owner, "healthrecord: amendment not approved by the owner"
    assert self.superseded_by[old_token] == 0, "healthrecord: token already superseded"
    batch_id: uint256 = self._mint_batch(owner, 1, expected_start, root)
    self.superseded_by[old_token] = expected_start
    self.amendment_approved[old_token] = empty(address)
    log Superseded(old_token=old_token, new_token=expected_start)
    return batch_id


@external
@view
def batch(batch_id: uint256) -> (address, uint256, uint256, bytes32):
    """
    @notice A batch's original owner, token range [start, end) and root.
    @param batch_id A batch index below `batch_count`.
    @return owner, start, end, root.
    """
    assert batch_id < self.batch_count, "healthrecord: unknown batch"
    packed: uint256 = self._batches[batch_id]
    return (
        convert(packed >> _ADDRESS_BITS, address),
        (packed >> 48) & _RANGE_MASK,
        packed & _RANGE_MASK,
        self.batch_root[batch_id],
    )


@external
@view
def batch_of(token_id: uint256) -> uint256:
    """
    @notice The batch that minted `token_id`.
    @param token_id A minted token id.
    @return The batch id.
    """
    return self._batch_of(token_id)


@external
@view
def balanceOf(owner: address) -> uint256:
    """
    @notice ERC-721: number of tokens held by `owner`.
    @param owner A non-zero address.
    @return The balance.
    """
    assert owner != empty(address), "healthrecord: the zero address is not a valid owner"
    return self._balances[owner]


@external
@view
def ownerOf(token_id: uint256) -> address:
    """
    @notice ERC-721: the owner of `token_id`.
    @param token_id A minted token id.
    @return The owner.
    """
    return self._owner_of(token_id)


@external
@view
def owners_of(token_ids: DynArray[uint256, 1_024]) -> DynArray[address, 1_024]:
    """
    @notice Owners of many tokens in one call (empty address for unknown ids),
            so a wallet can confirm its whole listing against the chain at once.
    @param token_ids Up to 1,024 token ids.
    @return Their owners, in order.
    """
    owners: DynArray[address, 1_024] = []
    for token_id: uint256 in token_ids:
        if token_id == 0 or token_id >= self.next_token_id or self.is_burned[token_id]:
            owners.append(empty(address))
        else:
            owners.append(self._owner_of(token_id))
    return owners


@external
@view
def tokenURI(token_id: uint256) -> String[96]:
    """
    @notice ERC-721 metadata. Deliberately empty of content: the record lives
            encrypted off chain and its description is private.
    @param token_id A minted token id.
    @return A URI naming only the token.
    """
    self._owner_of(token_id)
    return concat("healthnft:token/", uint2str(token_id))


@external
@payable
def approve(to: address, token_id: uint256):
    """
    @notice ERC-721: lets `to` transfer `token_id`.
    @dev Only the owner or an operator of the owner (still an institution); `to`
         must be a registered, active institution, or empty to clear the approval.
         The approval lapses after APPROVAL_LIFETIME.
    @param to The approved address (empty to clear).
    @param token_id A token of the caller.
    """
    owner: address = self._owner_of(token_id)
    assert to != owner, "healthrecord: approval to current owner"
    assert msg.sender == owner or self._is_operator(owner, msg.sender), "healthrecord: approve caller is not token owner or approved for all"
    if msg.sender != owner:
        assert staticcall registry.is_institution(msg.sender), "healthrecord: caller is not a registered institution"
    if to != empty(address):
        assert staticcall registry.is_institution(to), "healthrecord: approved address is not a registered institution"
    self._settle_owner(token_id, owner)
    self._token_approvals[token_id] = to
    self._approval_until[token_id] = block.timestamp + APPROVAL_LIFETIME if to != empty(address) else 0
    log Approval(owner=owner, approved=to, token_id=token_id)


@external
@view
def getApproved(token_id: uint256) -> address:
    """
    @notice ERC-721: the address approved for `token_id` (empty once lapsed).
    @param token_id A minted token id.
    @return The approved address or empty.
    """
    owner: address = self._owner_of(token_id)
    if self._recorded_owner(token_id) != owner:
        return empty(address)  # given by a recovered owner: void
    if self._approval_until[token_id] <= block.timestamp:
        return empty(address)  # lapsed
    return self._token_approvals[token_id]


@external
@view
def isApprovedForAll(owner: address, operator: address) -> bool:
    """
    @notice ERC-721: whether `operator` may manage all of `owner`'s tokens now
            (false once the approval lapsed or was withdrawn).
    @param owner A token owner.
    @param operator Any address.
    @return True while the operator approval lasts.
    """
    return self._is_operator(owner, operator)


@external
def setApprovalForAll(operator: address, approved: bool):
    """
    @notice ERC-721: lets `operator` manage all the caller's tokens for
            APPROVAL_LIFETIME.
    @dev Granting needs a registered, active institution; withdrawing is always
         allowed.
    @param operator The operator.
    @param approved Grant (or renew) or withdraw.
    """
    assert operator != msg.sender, "healthrecord: approve to caller"
    if approved:
        assert staticcall registry.is_institution(operator), "healthrecord: operator is not a registered institution"
        self._operator_until[msg.sender][operator] = block.timestamp + APPROVAL_LIFETIME
    else:
        self._operator_until[msg.sender][operator] = 0
    log ApprovalForAll(owner=msg.sender, operator=operator, approved=approved)


@external
@payable
def transferFrom(owner: address, to: address, token_id: uint256):
    """
    @notice ERC-721 transfer; only between registered members.
    @dev By the owner, or by an address approved for the token or an operator
         of the owner (not lapsed) that is still an institution.
    @param owner The current owner.
    @param to A registered, active participant.
    @param token_id The token.
    """
    self._transfer(owner, to, token_id)


@external
@payable
def safeTransferFrom(owner: address, to: address, token_id: uint256, data: Bytes[1_024] = b""):
    """
    @notice ERC-721 safe transfer; only between registered members.
    @dev By the owner, or by an address approved for the token or an operator
         of the owner (not lapsed) that is still an institution.
    @param owner The current owner.
    @param to A registered, active participant.
    @param token_id The token.
    @param data Passed to `onERC721Received` when `to` is a contract.
    """
    self._transfer(owner, to, token_id)
    if to.is_contract:
        ret: bytes4 = extcall IERC721Receiver(to).onERC721Received(msg.sender, owner, token_id, data)
        assert ret == method_id("onERC721Received(address,address,uint256,bytes)", output_type=bytes4), "healthrecord: transfer to non-ERC721Receiver implementer"


@external
def burn(token_id: uint256):
    """
    @notice Destroys a token. Its record is crypto-shredded off chain; the chain
            keeps only that the token existed.
    @dev Only the owner, or an address approved for the token or an operator of
         the owner (not lapsed) that is still an institution.
    @param token_id The token.
    """
    owner: address = self._owner_of(token_id)
    self._check_caller(owner, token_id)
    self._token_approvals[token_id] = empty(address)
    self.amendment_approved[token_id] = empty(address)
    self._balances[owner] -= 1
    self.is_burned[token_id] = True
    log Transfer(sender=owner, receiver=empty(address), token_id=token_id)


@external
def approve_amendment(token_id: uint256, issuer: address):
    """
    @notice The owner lets `issuer` supersede `token_id` with a corrected record
            (one `amend`; a transfer or a burn drops the approval).
    @param token_id A token of the caller, not yet superseded.
    @param issuer A registered issuer (the hospital correcting its record).
    """
    assert self._owner_of(token_id) == msg.sender, "healthrecord: caller is not token owner"
    assert self.superseded_by[token_id] == 0, "healthrecord: token already superseded"
    assert staticcall registry.is_issuer(issuer), "healthrecord: not a registered issuer"
    self._settle_owner(token_id, msg.sender)
    self.amendment_approved[token_id] = issuer


@external
def recover_owner(old_owner: address, new_owner: address):
    """
    @notice Guardian recovery: every token of `old_owner` now belongs to
            `new_owner` (one storage write, whatever the number of tokens).
    @dev Only the recovery contract named in the registry, which has already
         made `new_owner` a member in place of `old_owner` (registry
         `recover_patient`). Once per `old_owner`; `new_owner` must not itself
         be a recovered address.
    @param old_owner The recovered patient's old address.
    @param new_owner Its new address.
    """
    recovery: address = staticcall registry.recovery()
    assert recovery != empty(address) and msg.sender == recovery, "healthrecord: caller is not the recovery contract"
    assert new_owner != empty(address) and new_owner != old_owner, "healthrecord: invalid new owner"
    assert self.successor[old_owner] == empty(address), "healthrecord: owner already recovered"
    assert self.successor[new_owner] == empty(address), "healthrecord: new owner was recovered"
    moved: uint256 = self._balances[old_owner]
    self.successor[old_owner] = new_owner
    self._balances[old_owner] = 0
    self._balances[new_owner] += moved
    log OwnerRecovered(old_owner=old_owner, new_owner=new_owner, tokens=moved)


@internal
def _mint_batch(to: address, count: uint256, expected_start: uint256, root: bytes32) -> uint256:
    """
    @dev Checks, then effects: one packed batch slot, one root, one ERC-2309 event.
    """
    assert staticcall registry.is_issuer(msg.sender), "healthrecord: caller is not a registered issuer"
    assert staticcall registry.is_member(to), "healthrecord: recipient is not a registered member"
    assert count > 0 and count <= MAX_BATCH, "healthrecord: batch size out of range"
    assert root != empty(bytes32), "healthrecord: empty root"
    start: uint256 = self.next_token_id
    assert start == expected_start, "healthrecord: token range moved, rebuild the batch"
    end: uint256 = start + count
    batch_id: uint256 = self.batch_count

    self._batches[batch_id] = (convert(to, uint256) << _ADDRESS_BITS) | (start << 48) | end
    self.batch_root[batch_id] = root
    self.batch_count = batch_id + 1
    self.next_token_id = end
    self._balances[to] += count

    log ConsecutiveTransfer(fromTokenId=start, toTokenId=end - 1, fromAddress=empty(address), toAddress=to)
    log BatchMinted(batch_id=batch_id, issuer=msg.sender, root=root)
    return batch_id


@internal
@view
def _batch_of(token_id: uint256) -> uint256:
    """
    @dev Binary search over batches sorted by start token.
    """
    assert token_id > 0 and token_id < self.next_token_id, "healthrecord: invalid token ID"
    lo: uint256 = 0
    hi: uint256 = self.batch_count - 1
    for _: uint256 in range(64):
        if lo >= hi:
            break
        mid: uint256 = (lo + hi + 1) // 2
        if (self._batches[mid] >> 48) & _RANGE_MASK <= token_id:
            lo = mid
        else:
            hi = mid - 1
    return lo


@internal
@view
def _recorded_owner(token_id: uint256) -> address:
    """
    @dev The owner as written (batch or transfer), before following recoveries.
    """
    assert not self.is_burned[token_id], "healthrecord: token burned"
    override: address = self._owner_override[token_id]
    if override != empty(address):
        return override
    return convert(self._batches[self._batch_of(token_id)] >> _ADDRESS_BITS, address)


@internal
@view
def _current(account: address) -> address:
    """
    @dev `account`, or the address it was recovered to (followed to the end).
    """
    current: address = account
    for _: uint256 in range(MAX_RECOVERIES):
        nxt: address = self.successor[current]
        if nxt == empty(address):
            break
        current = nxt
    return current


@internal
@view
def _owner_of(token_id: uint256) -> address:
    return self._current(self._recorded_owner(token_id))


@internal
def _settle_owner(token_id: uint256, owner: address):
    """
    @dev Writes the current owner as the recorded one when they differ (a token
         of a recovered address), so an approval the new owner gives counts.
    """
    if self._recorded_owner(token_id) != owner:
        self._owner_override[token_id] = owner


@internal
@view
def _is_operator(owner: address, operator: address) -> bool:
    """
    @dev An operator approval counts until it lapses (or is withdrawn).
    """
    return self._operator_until[owner][operator] > block.timestamp


@internal
@view
def _check_caller(owner: address, token_id: uint256):
    """
    @dev The owner acts on its own tokens. Anyone else must hold an approval for
         the token or be an operator of the owner, neither lapsed, and still be a
         registered, active institution (an approval given to an institution
         deactivated since is void). The owner's
         path costs nothing more than before.
    """
    if msg.sender == owner:
        return
    assert self._is_operator(owner, msg.sender) or (self._token_approvals[token_id] == msg.sender and self._approval_until[token_id] > block.timestamp and self._recorded_owner(token_id) == owner), "healthrecord: caller is not token owner or approved"
    assert staticcall registry.is_institution(msg.sender), "healthrecord: caller is not a registered institution"


@internal
def _transfer(owner: address, to: address, token_id: uint256):
    """
    @dev Checks, then effects; the recipient must be a member (closes the
         phishing path of transfers to fresh attacker addresses).
    """
    current: address = self._owner_of(token_id)
    assert current == owner, "healthrecord: transfer from incorrect owner"
    self._check_caller(owner, token_id)
    assert to != empty(address), "healthrecord: transfer to the zero address"
    assert staticcall registry.is_member(to), "healthrecord: recipient is not a registered member"

    self._token_approvals[token_id] = empty(address)
    self.amendment_approved[token_id] = empty(address)  # approvals are the owner's, not the token's
    self._balances[owner] -= 1
    self._balances[to] += 1
    self._owner_override[token_id] = to
    log Transfer(sender=owner, receiver=to, token_id=token_id)
