# pragma version ~=0.4.3
"""
@title DrugBatchRegistry
@custom:contract-name DrugBatchRegistry
@license Apache-2.0
@notice Medicine packs against counterfeits (issue 15), in the roles the EU FMD
        and the US DSCSA give to national systems: a manufacturer commissions a
        batch (one Merkle root over its packs' salted commitments), a dispenser
        (pharmacy, or hospital pharmacy) decommissions each pack as it hands it
        out, a second decommission of the same pack raises an alert, the
        manufacturer recalls its batch, a regulator quarantines and releases.
@dev What is on chain, per batch: `batch_key = keccak(domain | GTIN | lot)`,
     a Merkle root, an expiry and the manufacturer's address; per dispensed
     pack: 96 bits of the dispenser's address and the time, at the pack's leaf
     index. Never a serial, never a count: the root says nothing of the
     batch's size, so commissioning costs the same for 10 packs or 100,000.
     A pack's commitment is `sha256(domain | GTIN | lot | expiry | serial |
     16-byte salt)` (see `healthnft.drugs.commitments`). The tree's nodes are
     128 bits, each carried in a 32-byte word whose top 16 bytes are zero:
     a leaf is `keccak(0x00 | commitment) >> 128`, a node
     `keccak(left | right) >> 128` (two words, 64 bytes: never the 33 bytes
     of a leaf) in leaf-index order, and a missing sibling (the last node of
     an odd level) is the zero word: every proof of a tree is `depth`
     siblings long and the leaf index says, bit by bit, on which side each
     sibling lies.

     Invariants:
     - a batch key is commissioned at most once, by an active manufacturer;
       its root, expiry and manufacturer never change afterwards;
     - a pack's state is written only after its commitment was proven, by a
       Merkle proof, to be the leaf at its index under its batch's root; an
       unknown pack (batch never commissioned, or commitment not at that
       index) changes nothing. The index is canonical (below 2**len(proof),
       and only the tree's depth leads to the root), so one pack has one
       state;
     - only an active dispenser (pharmacy or hospital) decommissions, and
       never a pack of a recalled, quarantined or expired batch;
     - a decommissioned pack stays decommissioned: a second decommission
       changes no state, it logs `DispenseAlert` (the manufacturer's address is
       an indexed topic, the regulator watches them all);
     - a decommission is undone only by the account that made it, while it is
       still an active dispenser, before `UNDO_WINDOW` (10 days, as in the FMD)
       has passed, with the pack's proof; the pack is then active again;
     - a recall is made only by the batch's manufacturer and is final;
     - quarantine and release are made only by an active regulator
       (government kind); a quarantined batch is refused until released;
     - no view and no event names who dispensed a pack.

     Gas (issue 15 asks at most 60,000 for a dispense; `bench/drugs.py`
     prints the figures, docs/drugs.md explains them). Four choices:
     - Two packs share a storage word (`packs[batch][index / 2]`, a 128-bit
       lane each: the dispenser's low 96 address bits and a 32-bit time,
       good until 2106). The first dispense of a word writes a fresh slot
       (22,100 gas); the second changes a non-zero word (5,000). Over a
       batch whose packs are all dispensed, in any order, the average is the
       mean of the two. 96 bits of the address tell dispensers apart for the
       undo: matching another account's 96 bits takes ~2**96 key draws.
     - 128-bit tree nodes: a proof node costs 320 gas of calldata (16 zero
       bytes at 4, 16 at 16) instead of 512. Forging a pack means a 128-bit
       second preimage of truncated keccak against one node per level: out
       of reach (~2**124 hashes for a 17-level tree); collisions (2**64)
       help only whoever builds the tree, the manufacturer, who vouches for
       its batch anyway.
     - A dispense reads one word of its batch (`batches`: the 128-bit root,
       the expiry, the recall and quarantine flags); the manufacturer sits in
       a second word (`makers`), read for an alert, a recall and the views.
     - Leaf-index proofs: no sort compare per level, one keccak of two
       words per level, and the state keyed by the index.
     So the average dispense of a 100,000-pack batch (17-node proof) is
     under 60,000 and the second of a word well under; the first of a word
     is not (~66,700: 21,000 + 22,100 + the registry's role check ~7,500
     leave too little for 17 proof nodes). Only dropping the on-chain proof
     would bring it under, and an unknown pack could then change state.

     What "a verification never reveals who dispensed" can mean here: every
     member node holds every transaction, so the sender of a `dispense`
     transaction is readable by anyone with raw access to the chain, whatever
     this contract stores. Storing a salted hash of the dispenser instead of
     its address bits would move that leak, not close it (the transaction
     still names its sender), and the address is needed for the
     same-dispenser undo. So the promise is kept where it can be: the
     verification path (`status_of`, `verify_pack`, the events an EPCIS
     export reads) never carries the dispenser. Hiding the dispenser from
     node operators as well takes a relayer that sends dispensers' signed
     requests (the contract would then check a signature instead of
     `msg.sender`): the way forward, not done here. Likewise the number of
     `Dispensed` events of a batch is its sold volume, readable by every
     member: the root hides the commissioned count, not the rate at which
     packs leave pharmacies; and a dispense names its pack's leaf index, so
     the highest indexes seen bound the batch's size from below (the
     proof's length already gave it to within a factor of two).

     The contract cannot see a GTIN (only its hash), so it cannot check that a
     manufacturer owns the GTIN it commissions: the first active manufacturer
     to commission a batch key holds it. A verifier must therefore check
     `manufacturer_of(batch_key)` against the manufacturer the product's
     credential names for that GTIN, or a registered rogue manufacturer's
     batch under someone else's GTIN would read as genuine.
"""


interface IParticipantRegistry:
    def active_kind(account: address) -> uint8: view


# @dev Participant kinds, as in ParticipantRegistry.
KIND_HOSPITAL: constant(uint8) = 2
KIND_GOVERNMENT: constant(uint8) = 6
KIND_MANUFACTURER: constant(uint8) = 8
KIND_PHARMACY: constant(uint8) = 9

# @dev How long a dispenser may undo a decommission (EU FMD: 10 days).
UNDO_WINDOW: public(constant(uint256)) = 10 * 86400

# @dev The deepest Merkle proof accepted (2**32 packs: any real batch).
MAX_DEPTH: constant(uint256) = 32

# @dev The most packs one `dispense_basket` decommissions (a prescription's worth).
MAX_BASKET: public(constant(uint256)) = 16

# @dev A tree node is the top 128 bits of a keccak digest.
NODE_SHIFT: constant(uint256) = 128

# @dev `batches` word: the 128-bit root in bits 0..127, expiry (unix time) in
#      bits 128..159, recalled in bit 160, quarantined in bit 161. Never 0
#      once commissioned (the expiry is in the future).
ROOT_MASK: constant(uint256) = 2**128 - 1
EXPIRY_SHIFT: constant(uint256) = 128
EXPIRY_MASK: constant(uint256) = 2**32 - 1
RECALLED_BIT: constant(uint256) = 2**160
QUARANTINED_BIT: constant(uint256) = 2**161

# @dev A pack's 128-bit lane in its `packs` word (lane `index % 2`): time of the
#      dispense in bits 0..31, the dispenser's low 96 address bits in 32..127.
#      0: not dispensed (a time is never 0).
LANE_BITS: constant(uint256) = 128
LANE_MASK: constant(uint256) = 2**128 - 1
TIME_MASK: constant(uint256) = 2**32 - 1
TAG_MASK: constant(uint256) = 2**96 - 1
TAG_SHIFT: constant(uint256) = 32


# @dev The participant registry (who is a manufacturer, a dispenser, a regulator).
registry: public(immutable(IParticipantRegistry))

# @dev batch key -> packed root, expiry and flags (0: not commissioned).
batches: HashMap[bytes32, uint256]

# @dev batch key -> its manufacturer.
makers: HashMap[bytes32, address]

# @dev batch key -> leaf index / 2 -> two packs' lanes (see LANE_BITS).
packs: HashMap[bytes32, HashMap[uint256, uint256]]


event Commissioned:
    batch_key: indexed(bytes32)
    manufacturer: indexed(address)
    root: bytes32
    expiry: uint256


event Dispensed:
    batch_key: indexed(bytes32)
    commitment: indexed(bytes32)


event DispenseAlert:
    batch_key: indexed(bytes32)
    commitment: indexed(bytes32)
    manufacturer: indexed(address)
    dispensed_at: uint256


event DispenseUndone:
    batch_key: indexed(bytes32)
    commitment: indexed(bytes32)


event Recalled:
    batch_key: indexed(bytes32)
    manufacturer: indexed(address)


event Quarantined:
    batch_key: indexed(bytes32)
    regulator: indexed(address)


event Released:
    batch_key: indexed(bytes32)
    regulator: indexed(address)


@deploy
def __init__(registry_: IParticipantRegistry):
    """
    @param registry_ The network's participant registry.
    """
    registry = registry_


# -- the manufacturer --------------------------------------------------------------


@external
def commission(batch_key: bytes32, root: bytes32, expiry: uint32):
    """
    @notice Commissions a batch: every pack whose commitment is a leaf under
            `root` is now genuine and active until `expiry`.
    @dev An active manufacturer only. One transaction whatever the batch's size:
         two storage words and one event.
    @param batch_key keccak of the batch's GTIN and lot (see commitments.batch_key).
    @param root The Merkle root over the packs' leaves (128 bits: the top 16
           bytes are zero).
    @param expiry Unix time from which the batch's packs are expired.
    """
    assert staticcall registry.active_kind(msg.sender) == KIND_MANUFACTURER, "drugs: caller is not a manufacturer"
    assert batch_key != empty(bytes32), "drugs: empty batch key"
    assert root != empty(bytes32), "drugs: empty root"
    assert convert(root, uint256) >> NODE_SHIFT == 0, "drugs: root is not a 128-bit tree node"
    assert self.batches[batch_key] == 0, "drugs: batch already commissioned"
    assert convert(expiry, uint256) > block.timestamp, "drugs: batch already expired"
    self.batches[batch_key] = convert(root, uint256) | (convert(expiry, uint256) << EXPIRY_SHIFT)
    self.makers[batch_key] = msg.sender
    log Commissioned(batch_key=batch_key, manufacturer=msg.sender, root=root, expiry=convert(expiry, uint256))


@external
def recall(batch_key: bytes32):
    """
    @notice Recalls a batch: its packs can no longer be dispensed. Final.
    @dev The batch's manufacturer only (even if suspended since: a recall only
         ever makes the network safer).
    @param batch_key A commissioned batch.
    """
    b: uint256 = self.batches[batch_key]
    assert b != 0, "drugs: unknown batch"
    assert self.makers[batch_key] == msg.sender, "drugs: caller is not the batch's manufacturer"
    assert b & RECALLED_BIT == 0, "drugs: batch already recalled"
    self.batches[batch_key] = b | RECALLED_BIT
    log Recalled(batch_key=batch_key, manufacturer=msg.sender)


# -- the regulator -----------------------------------------------------------------


@external
def quarantine(batch_key: bytes32):
    """
    @notice Puts a batch on hold: its packs are refused until `release`.
    @dev An active regulator (government kind) only.
    @param batch_key A commissioned batch, not quarantined.
    """
    b: uint256 = self._regulated(batch_key)
    assert b & QUARANTINED_BIT == 0, "drugs: batch already quarantined"
    self.batches[batch_key] = b | QUARANTINED_BIT
    log Quarantined(batch_key=batch_key, regulator=msg.sender)


@external
def release(batch_key: bytes32):
    """
    @notice Lifts a quarantine (a recall stays).
    @dev An active regulator (government kind) only.
    @param batch_key A quarantined batch.
    """
    b: uint256 = self._regulated(batch_key)
    assert b & QUARANTINED_BIT != 0, "drugs: batch not quarantined"
    self.batches[batch_key] = b ^ QUARANTINED_BIT
    log Released(batch_key=batch_key, regulator=msg.sender)


@internal
@view
def _regulated(batch_key: bytes32) -> uint256:
    assert staticcall registry.active_kind(msg.sender) == KIND_GOVERNMENT, "drugs: caller is not a regulator"
    b: uint256 = self.batches[batch_key]
    assert b != 0, "drugs: unknown batch"
    return b


# -- the dispenser -----------------------------------------------------------------


@external
def dispense(batch_key: bytes32, index: uint256, commitment: bytes32, proof: DynArray[bytes32, MAX_DEPTH]) -> bool:
    """
    @notice Decommissions a pack as it is handed out. A pack already
            decommissioned is not changed: the call logs `DispenseAlert` and
            answers False (the transaction succeeds, so the alert is kept).
    @dev An active pharmacy or hospital only. Refused (nothing changes) when the
         pack is unknown (batch not commissioned, or the proof does not lead
         from the commitment at `index` to the batch's root), recalled,
         quarantined or expired. Writes the pack's lane of a word shared with
         the pack at `index ^ 1`.
    @param batch_key The pack's batch.
    @param index The pack's leaf index in its batch's tree.
    @param commitment The pack's commitment (from the manufacturer's node).
    @param proof The sibling hashes from the pack's leaf to the root.
    @return True when decommissioned now, False on an alert.
    """
    self._check_dispenser()
    return self._dispense(batch_key, index, commitment, proof)


@external
def dispense_basket(batch_keys: DynArray[bytes32, MAX_BASKET], indexes: DynArray[uint256, MAX_BASKET], commitments: DynArray[bytes32, MAX_BASKET], proofs: DynArray[DynArray[bytes32, MAX_DEPTH], MAX_BASKET]) -> uint256:
    """
    @notice Decommissions the packs of one basket (a prescription) in one
            transaction: the transaction's and the role check's cost is shared.
            Each pack is handled as by `dispense` (an alert for a pack already
            decommissioned); one refused pack refuses the whole basket.
    @dev An active pharmacy or hospital only. The four arrays are parallel.
    @param batch_keys Each pack's batch.
    @param indexes Each pack's leaf index.
    @param commitments Each pack's commitment.
    @param proofs Each pack's Merkle proof.
    @return How many packs were decommissioned now (the others raised alerts).
    """
    n: uint256 = len(batch_keys)
    assert len(indexes) == n and len(commitments) == n and len(proofs) == n, "drugs: basket arrays differ in length"
    self._check_dispenser()
    done: uint256 = 0
    for i: uint256 in range(n, bound=MAX_BASKET):
        if self._dispense(batch_keys[i], indexes[i], commitments[i], proofs[i]):
            done += 1
    return done


@internal
def _dispense(batch_key: bytes32, index: uint256, commitment: bytes32, proof: DynArray[bytes32, MAX_DEPTH]) -> bool:
    b: uint256 = self.batches[batch_key]
    assert b != 0, "drugs: unknown pack (batch not commissioned)"
    assert self._proves(b, index, commitment, proof), "drugs: unknown pack (not in its batch)"
    assert b & RECALLED_BIT == 0, "drugs: recalled"
    assert b & QUARANTINED_BIT == 0, "drugs: quarantined"
    assert block.timestamp < (b >> EXPIRY_SHIFT) & EXPIRY_MASK, "drugs: expired"
    at: uint256 = (index & 1) * LANE_BITS
    word: uint256 = self.packs[batch_key][index >> 1]
    lane: uint256 = (word >> at) & LANE_MASK
    if lane != 0:
        log DispenseAlert(batch_key=batch_key, commitment=commitment, manufacturer=self.makers[batch_key], dispensed_at=lane & TIME_MASK)
        return False
    lane = ((convert(msg.sender, uint256) & TAG_MASK) << TAG_SHIFT) | block.timestamp
    self.packs[batch_key][index >> 1] = word | (lane << at)
    log Dispensed(batch_key=batch_key, commitment=commitment)
    return True


@external
def undo(batch_key: bytes32, index: uint256, commitment: bytes32, proof: DynArray[bytes32, MAX_DEPTH]):
    """
    @notice Undoes a decommission made by mistake: the pack is active again.
    @dev The account that dispensed it, still an active dispenser, within
         UNDO_WINDOW of the dispense. The proof makes the `DispenseUndone`
         event name the right commitment (the state is keyed by index).
    @param batch_key The pack's batch.
    @param index The pack's leaf index.
    @param commitment The pack's commitment.
    @param proof The sibling hashes from the pack's leaf to the root.
    """
    self._check_dispenser()
    b: uint256 = self.batches[batch_key]
    assert b != 0, "drugs: unknown pack (batch not commissioned)"
    assert self._proves(b, index, commitment, proof), "drugs: unknown pack (not in its batch)"
    at: uint256 = (index & 1) * LANE_BITS
    word: uint256 = self.packs[batch_key][index >> 1]
    lane: uint256 = (word >> at) & LANE_MASK
    assert lane != 0, "drugs: pack not dispensed"
    assert lane >> TAG_SHIFT == convert(msg.sender, uint256) & TAG_MASK, "drugs: dispensed by another dispenser"
    assert block.timestamp < (lane & TIME_MASK) + UNDO_WINDOW, "drugs: undo window is over"
    self.packs[batch_key][index >> 1] = word ^ (lane << at)
    log DispenseUndone(batch_key=batch_key, commitment=commitment)


@internal
@view
def _check_dispenser():
    kind: uint8 = staticcall registry.active_kind(msg.sender)
    assert kind == KIND_PHARMACY or kind == KIND_HOSPITAL, "drugs: caller is not a dispenser"


@internal
@pure
def _proves(b: uint256, index: uint256, commitment: bytes32, proof: DynArray[bytes32, MAX_DEPTH]) -> bool:
    """
    @dev Whether `proof` leads from `commitment` at `index` to the root `b`
         holds. An index at or past 2**len(proof) is refused, so a pack has
         one index.
    """
    if index >> len(proof) != 0:
        return False
    node: uint256 = convert(keccak256(concat(b"\x00", commitment)), uint256) >> NODE_SHIFT
    i: uint256 = index
    for sibling: bytes32 in proof:
        if i & 1 == 0:
            node = convert(keccak256(abi_encode(node, sibling)), uint256) >> NODE_SHIFT
        else:
            node = convert(keccak256(abi_encode(sibling, node)), uint256) >> NODE_SHIFT
        i >>= 1
    return node == b & ROOT_MASK


# -- reading -----------------------------------------------------------------------


@external
@view
def status_of(batch_key: bytes32, index: uint256) -> (bool, uint256, bool, bool, uint256):
    """
    @notice A pack's status, without who dispensed it. Does not check which
            commitment sits at `index`: pair it with `verify_pack` (or check the
            proof against `root_of` off chain, as the verifier does).
    @param batch_key The pack's batch.
    @param index The pack's leaf index.
    @return commissioned, expiry (unix time), recalled, quarantined,
            dispensed at (unix time, 0: not dispensed).
    """
    b: uint256 = self.batches[batch_key]
    lane: uint256 = (self.packs[batch_key][index >> 1] >> ((index & 1) * LANE_BITS)) & LANE_MASK
    return (b != 0, (b >> EXPIRY_SHIFT) & EXPIRY_MASK, b & RECALLED_BIT != 0,
            b & QUARANTINED_BIT != 0, lane & TIME_MASK)


@external
@view
def verify_pack(batch_key: bytes32, index: uint256, commitment: bytes32, proof: DynArray[bytes32, MAX_DEPTH]) -> bool:
    """
    @notice Whether `commitment` is the pack at `index` of the commissioned batch `batch_key`.
    @param batch_key A batch key.
    @param index The pack's leaf index.
    @param commitment A pack's commitment.
    @param proof The sibling hashes from the pack's leaf to the root.
    @return True when the proof leads to the batch's root.
    """
    b: uint256 = self.batches[batch_key]
    return b != 0 and self._proves(b, index, commitment, proof)


@external
@view
def root_of(batch_key: bytes32) -> bytes32:
    """
    @notice A batch's Merkle root (empty: not commissioned).
    @param batch_key A batch key.
    @return The root (128 bits in a 32-byte word).
    """
    return convert(self.batches[batch_key] & ROOT_MASK, bytes32)


@external
@view
def manufacturer_of(batch_key: bytes32) -> address:
    """
    @notice Who commissioned a batch (the empty address: nobody). Public anyway:
            the GTIN's company prefix names the manufacturer on every pack.
    @param batch_key A batch key.
    @return The manufacturer's address.
    """
    return self.makers[batch_key]
