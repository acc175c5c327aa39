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
     pack: the dispenser and the time, keyed by the pack's commitment
     `sha256(domain | GTIN | lot | expiry | serial | 16-byte salt)` (see
     `healthnft.drugs.commitments`). Never a serial, never a count: the root
     says nothing of the batch's size, so commissioning costs the same for 10
     packs or 100,000. A leaf is `keccak(0x00 | commitment)` and a node
     `keccak(0x01 | min(a, b) | max(a, b))`, as in `healthnft.ledger.merkle`.

     Invariants:
     - a batch key is commissioned at most once, by an active manufacturer;
       its root, expiry and manufacturer never change afterwards;
     - a pack's state is written only after its commitment was proven, by a
       Merkle proof, to be a leaf of its batch's root; an unknown pack (batch
       never commissioned, or commitment not in it) changes nothing;
     - only an active dispenser (pharmacy or hospital) decommissions, and
       never a pack of a recalled, quarantined or expired batch;
     - a decommissioned pack stays decommissioned: a second decommission
       changes no state, it logs `DispenseAlert` (the manufacturer's address is
       an indexed topic, the regulator watches them all);
     - a decommission is undone only by the account that made it, while it is
       still an active dispenser, before `UNDO_WINDOW` (10 days, as in the FMD)
       has passed; the pack is then active again;
     - a recall is made only by the batch's manufacturer and is final;
     - quarantine and release are made only by an active regulator
       (government kind); a quarantined batch is refused until released;
     - no view and no event names who dispensed a pack.

     What "a verification never reveals who dispensed" can mean here: every
     member node holds every transaction, so the sender of a `dispense`
     transaction is readable by anyone with raw access to the chain, whatever
     this contract stores. Storing a salted hash of the dispenser instead of
     its address would move that leak, not close it (the transaction still
     names its sender), and the address is needed for the same-dispenser
     undo. So the promise is kept where it can be: the verification path
     (`status_of`, `verify_pack`, the events an EPCIS export reads) never
     carries the dispenser, and the slot that holds it is reachable only from
     the pack's commitment, which needs the manufacturer's salt. Hiding the
     dispenser from node operators as well takes a relayer that sends
     dispensers' signed requests (the contract would then check a signature
     instead of `msg.sender`): the way forward, not done here.
     Likewise the number of `Dispensed` events of a batch is its sold volume,
     readable by every member: the root hides the commissioned count, not the
     rate at which packs leave pharmacies.

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

# @dev `meta` word: manufacturer in bits 0..159, expiry (unix time) in bits
#      160..191, recalled in bit 192, quarantined in bit 193. One slot, so a
#      dispense reads a batch in two storage reads (root and this word).
ADDRESS_MASK: constant(uint256) = 2**160 - 1
EXPIRY_SHIFT: constant(uint256) = 160
EXPIRY_MASK: constant(uint256) = 2**32 - 1
RECALLED_BIT: constant(uint256) = 2**192
QUARANTINED_BIT: constant(uint256) = 2**193

# @dev `packs` word: dispenser in bits 0..159, time of the dispense in bits 160..223.
TIME_SHIFT: constant(uint256) = 160


# @dev The participant registry (who is a manufacturer, a dispenser, a regulator).
registry: public(immutable(IParticipantRegistry))

# @dev batch key -> Merkle root over its packs' leaves (empty: not commissioned).
root_of: public(HashMap[bytes32, bytes32])

# @dev batch key -> packed manufacturer, expiry and flags (see ADDRESS_MASK...).
meta: HashMap[bytes32, uint256]

# @dev batch key -> pack commitment -> packed dispenser and time (0: not dispensed).
packs: HashMap[bytes32, HashMap[bytes32, uint256]]


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
    @param root The Merkle root over the packs' leaves.
    @param expiry Unix time from which the batch's packs are expired.
    """
    assert staticcall registry.active_kind(msg.sender) == KIND_MANUFACTURER, "drugs: caller is not a manufacturer"
    assert batch_key != empty(bytes32), "drugs: empty batch key"
    assert root != empty(bytes32), "drugs: empty root"
    assert self.root_of[batch_key] == empty(bytes32), "drugs: batch already commissioned"
    assert convert(expiry, uint256) > block.timestamp, "drugs: batch already expired"
    self.root_of[batch_key] = root
    self.meta[batch_key] = convert(msg.sender, uint256) | (convert(expiry, uint256) << EXPIRY_SHIFT)
    log Commissioned(batch_key=batch_key, manufacturer=msg.sender, root=root, expiry=convert(expiry, uint256))


@external
def recall(batch_key: bytes32):
    """
    @notice Recalls a batch: its packs can no longer be dispensed. Final.
    @dev The batch's manufacturer only (even if suspended since: a recall only
         ever makes the network safer).
    @param batch_key A commissioned batch.
    """
    m: uint256 = self.meta[batch_key]
    assert m != 0, "drugs: unknown batch"
    assert convert(m & ADDRESS_MASK, address) == msg.sender, "drugs: caller is not the batch's manufacturer"
    assert m & RECALLED_BIT == 0, "drugs: batch already recalled"
    self.meta[batch_key] = m | RECALLED_BIT
    log Recalled(batch_key=batch_key, manufacturer=msg.sender)


# -- the regulator -----------------------------------------------------------------


@external
def quarantine(batch_key: bytes32):
    """
    @notice Puts a batch on hold: its packs are refused until `release`.
    @dev An active regulator (government kind) only.
    @param batch_key A commissioned batch, not quarantined.
    """
    m: uint256 = self._regulated(batch_key)
    assert m & QUARANTINED_BIT == 0, "drugs: batch already quarantined"
    self.meta[batch_key] = m | QUARANTINED_BIT
    log Quarantined(batch_key=batch_key, regulator=msg.sender)


@external
def release(batch_key: bytes32):
    """
    @notice Lifts a quarantine (a recall stays).
    @dev An active regulator (government kind) only.
    @param batch_key A quarantined batch.
    """
    m: uint256 = self._regulated(batch_key)
    assert m & QUARANTINED_BIT != 0, "drugs: batch not quarantined"
    self.meta[batch_key] = m ^ QUARANTINED_BIT
    log Released(batch_key=batch_key, regulator=msg.sender)


@internal
@view
def _regulated(batch_key: bytes32) -> uint256:
    assert staticcall registry.active_kind(msg.sender) == KIND_GOVERNMENT, "drugs: caller is not a regulator"
    m: uint256 = self.meta[batch_key]
    assert m != 0, "drugs: unknown batch"
    return m


# -- the dispenser -----------------------------------------------------------------


@external
def dispense(batch_key: bytes32, commitment: bytes32, proof: DynArray[bytes32, MAX_DEPTH]) -> bool:
    """
    @notice Decommissions a pack as it is handed out. A pack already
            decommissioned is not changed: the call logs `DispenseAlert` and
            answers False (the transaction succeeds, so the alert is kept).
    @dev An active pharmacy or hospital only. Refused (nothing changes) when the
         pack is unknown (batch not commissioned, or the proof does not lead
         from the commitment to the batch's root), recalled, quarantined or
         expired. One new storage word per pack.
    @param batch_key The pack's batch.
    @param commitment The pack's commitment (from the manufacturer's node).
    @param proof The sibling hashes from the pack's leaf to the root.
    @return True when decommissioned now, False on an alert.
    """
    self._check_dispenser()
    return self._dispense(batch_key, commitment, proof)


@external
def dispense_basket(batch_keys: DynArray[bytes32, MAX_BASKET], commitments: DynArray[bytes32, MAX_BASKET], proofs: DynArray[DynArray[bytes32, MAX_DEPTH], MAX_BASKET]) -> uint256:
    """
    @notice Decommissions the packs of one basket (a prescription) in one
            transaction: the transaction's and the role check's cost is shared.
            Each pack is handled as by `dispense` (an alert for a pack already
            decommissioned); one refused pack refuses the whole basket.
    @dev An active pharmacy or hospital only. The three arrays are parallel.
    @param batch_keys Each pack's batch.
    @param commitments Each pack's commitment.
    @param proofs Each pack's Merkle proof.
    @return How many packs were decommissioned now (the others raised alerts).
    """
    assert len(batch_keys) == len(commitments) and len(batch_keys) == len(proofs), "drugs: basket arrays differ in length"
    self._check_dispenser()
    done: uint256 = 0
    for i: uint256 in range(len(batch_keys), bound=MAX_BASKET):
        if self._dispense(batch_keys[i], commitments[i], proofs[i]):
            done += 1
    return done


@internal
def _dispense(batch_key: bytes32, commitment: bytes32, proof: DynArray[bytes32, MAX_DEPTH]) -> bool:
    root: bytes32 = self.root_of[batch_key]
    assert root != empty(bytes32), "drugs: unknown pack (batch not commissioned)"
    assert self._verify(commitment, proof, root), "drugs: unknown pack (not in its batch)"
    m: uint256 = self.meta[batch_key]
    assert m & RECALLED_BIT == 0, "drugs: recalled"
    assert m & QUARANTINED_BIT == 0, "drugs: quarantined"
    assert block.timestamp < (m >> EXPIRY_SHIFT) & EXPIRY_MASK, "drugs: expired"
    state: uint256 = self.packs[batch_key][commitment]
    if state != 0:
        log DispenseAlert(batch_key=batch_key, commitment=commitment, manufacturer=convert(m & ADDRESS_MASK, address), dispensed_at=state >> TIME_SHIFT)
        return False
    self.packs[batch_key][commitment] = convert(msg.sender, uint256) | (block.timestamp << TIME_SHIFT)
    log Dispensed(batch_key=batch_key, commitment=commitment)
    return True


@external
def undo(batch_key: bytes32, commitment: bytes32):
    """
    @notice Undoes a decommission made by mistake: the pack is active again.
    @dev The account that dispensed it, still an active dispenser, within
         UNDO_WINDOW of the dispense.
    @param batch_key The pack's batch.
    @param commitment The pack's commitment.
    """
    self._check_dispenser()
    state: uint256 = self.packs[batch_key][commitment]
    assert state != 0, "drugs: pack not dispensed"
    assert convert(state & ADDRESS_MASK, address) == msg.sender, "drugs: dispensed by another dispenser"
    assert block.timestamp < (state >> TIME_SHIFT) + UNDO_WINDOW, "drugs: undo window is over"
    self.packs[batch_key][commitment] = 0
    log DispenseUndone(batch_key=batch_key, commitment=commitment)


@internal
@view
def _check_dispenser():
    kind: uint8 = staticcall registry.active_kind(msg.sender)
    assert kind == KIND_PHARMACY or kind == KIND_HOSPITAL, "drugs: caller is not a dispenser"


@internal
@pure
def _verify(commitment: bytes32, proof: DynArray[bytes32, MAX_DEPTH], root: bytes32) -> bool:
    node: bytes32 = keccak256(concat(b"\x00", commitment))
    for sibling: bytes32 in proof:
        if convert(node, uint256) <= convert(sibling, uint256):
            node = keccak256(concat(b"\x01", node, sibling))
        else:
            node = keccak256(concat(b"\x01", sibling, node))
    return node == root


# -- reading -----------------------------------------------------------------------


@external
@view
def status_of(batch_key: bytes32, commitment: bytes32) -> (bool, uint256, bool, bool, uint256):
    """
    @notice A pack's status, without who dispensed it. Does not check that the
            commitment belongs to the batch: pair it with `verify_pack` (or check
            the proof against `root_of` off chain, as the verifier does).
    @param batch_key The pack's batch.
    @param commitment The pack's commitment.
    @return commissioned, expiry (unix time), recalled, quarantined,
            dispensed at (unix time, 0: not dispensed).
    """
    m: uint256 = self.meta[batch_key]
    return (m != 0, (m >> EXPIRY_SHIFT) & EXPIRY_MASK, m & RECALLED_BIT != 0,
            m & QUARANTINED_BIT != 0, self.packs[batch_key][commitment] >> TIME_SHIFT)


@external
@view
def verify_pack(batch_key: bytes32, commitment: bytes32, proof: DynArray[bytes32, MAX_DEPTH]) -> bool:
    """
    @notice Whether `commitment` is a pack of the commissioned batch `batch_key`.
    @param batch_key A batch key.
    @param commitment A pack's commitment.
    @param proof The sibling hashes from the pack's leaf to the root.
    @return True when the proof leads to the batch's root.
    """
    root: bytes32 = self.root_of[batch_key]
    return root != empty(bytes32) and self._verify(commitment, proof, root)


@external
@view
def manufacturer_of(batch_key: bytes32) -> address:
    """
    @notice Who commissioned a batch (the empty address: nobody). Public anyway:
            the GTIN's company prefix names the manufacturer on every pack.
    @param batch_key A batch key.
    @return The manufacturer's address.
    """
    return convert(self.meta[batch_key] & ADDRESS_MASK, address)
