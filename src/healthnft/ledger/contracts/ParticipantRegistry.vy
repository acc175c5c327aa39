# pragma version ~=0.4.3
"""
@title ParticipantRegistry
@custom:contract-name ParticipantRegistry
@license Apache-2.0
@notice The list of who may take part in the healthnft network: patients,
        hospitals, pharma, research institutes, insurers, government bodies,
        key custodians, drug manufacturers and pharmacies.
        Only the consortium admin (the `ownable` owner) registers participants
        and grants the issuer role (hospitals, and pharmacies for the
        MedicationDispense of a pack they dispense, that may mint records). In a
        consortium the owner is a `Governance` contract, so every such change
        takes k of the founding institutions' approvals (no single admin key).
@dev Invariants:
     - an address is registered at most once; its kind never changes;
     - only the owner changes an entry: its active flag (suspend, reactivate)
       and its encryption key (re-key); the key is never empty;
     - `is_issuer[a]` implies `a` is a registered, active participant;
     - nothing that identifies a person is stored: an entry is a kind code,
       an X25519 encryption public key, an Ed25519 DID key and an active flag;
     - a DID key is bound once, by the admin, to a registered participant;
     - a registrar (an enrolment office the owner names) registers patients and
       binds their DID keys, nothing else: it never registers an institution,
       grants a role, suspends or re-keys; the owner withdraws the role at will;
     - a credential is revoked under its issuer's address only by that issuer,
       and a revocation is never undone (revocation lists only grow);
     - a patient's account is recovered only by the recovery contract the owner
       names (guardians' approval and a delay are enforced there), only to a
       fresh address, once: the old entry becomes inactive for good
       (`recovered_to` is set and never cleared, `reactivate` refuses it) and
       the new one is an active patient; an institution is never recovered this
       way; an account descends from at most MAX_RECOVERIES recoveries, so the
       token and consent contracts follow a bounded chain of successors.
"""

from snekmate.auth import ownable

initializes: ownable
exports: (ownable.owner, ownable.transfer_ownership)


# @dev Participant kinds (coarse codes, never free text).
KIND_PATIENT: public(constant(uint8)) = 1
KIND_HOSPITAL: public(constant(uint8)) = 2
KIND_PHARMA: public(constant(uint8)) = 3
KIND_RESEARCH: public(constant(uint8)) = 4
KIND_INSURER: public(constant(uint8)) = 5
KIND_GOVERNMENT: public(constant(uint8)) = 6
# @dev Key custodian services (hold k-of-n key shares; see ConsentManager).
KIND_CUSTODIAN: public(constant(uint8)) = 7
# @dev Drug manufacturers: commission medicine batches (see DrugBatchRegistry).
#      Pharma keeps its research role; a company doing both registers two accounts.
KIND_MANUFACTURER: public(constant(uint8)) = 8
# @dev Pharmacies (dispensers): decommission packs when they hand them out. A hospital
#      dispenses too (its pharmacy), under its own hospital account.
KIND_PHARMACY: public(constant(uint8)) = 9


struct Participant:
    kind: uint8
    active: bool
    encryption_key: bytes32


# @dev Registered participants by address.
participants: HashMap[address, Participant]

# @dev Addresses allowed to mint records (hospitals and pharmacies).
is_issuer: public(HashMap[address, bool])

# @dev Enrolment offices allowed to register patients (and bind their DIDs) only.
is_registrar: public(HashMap[address, bool])

# @dev Ed25519 public key of each participant's did:key (empty: none bound).
did_key: public(HashMap[address, bytes32])

# @dev The participant a did:key key is bound to (the reverse of `did_key`).
did_owner: public(HashMap[bytes32, address])

# @dev The guardian recovery contract (empty: none named). Token and consent
#      manager read it here too, so the owner names it in one place.
recovery: public(address)

# @dev A recovered patient's account -> the account it was recovered to.
recovered_to: public(HashMap[address, address])

# @dev How many recoveries led to an account (0 for one never recovered into).
recovery_depth: public(HashMap[address, uint256])

# @dev The longest chain of recoveries one patient may go through.
MAX_RECOVERIES: public(constant(uint256)) = 8

# @dev issuer -> sha256(credential id) -> revoked.
is_revoked: public(HashMap[address, HashMap[bytes32, bool]])


event ParticipantRegistered:
    account: indexed(address)
    kind: uint8
    encryption_key: bytes32


event ParticipantDeactivated:
    account: indexed(address)


event ParticipantReactivated:
    account: indexed(address)


event EncryptionKeyChanged:
    account: indexed(address)
    encryption_key: bytes32


event IssuerChanged:
    account: indexed(address)
    status: bool


event RegistrarChanged:
    account: indexed(address)
    status: bool


event DidBound:
    account: indexed(address)
    did_key: bytes32


event RecoveryChanged:
    account: indexed(address)


event PatientRecovered:
    old_account: indexed(address)
    new_account: indexed(address)


event CredentialRevoked:
    issuer: indexed(address)
    credential_hash: indexed(bytes32)


@deploy
def __init__():
    """
    @notice The deployer becomes the consortium admin.
    """
    ownable.__init__()


@external
def register(account: address, kind: uint8, encryption_key: bytes32):
    """
    @notice Registers `account` as a participant of `kind`.
    @dev The admin, or a registrar for a patient. Requires a fresh, non-zero
         address, a known kind and a non-zero encryption key.
    @param account The participant's Ethereum address.
    @param kind One of the KIND_* codes.
    @param encryption_key The participant's X25519 public key.
    """
    self._check_owner_or_registrar(kind)
    assert account != empty(address), "registry: zero address"
    assert kind >= KIND_PATIENT and kind <= KIND_PHARMACY, "registry: unknown kind"
    assert encryption_key != empty(bytes32), "registry: empty encryption key"
    assert self.participants[account].kind == 0, "registry: already registered"
    self.participants[account] = Participant(kind=kind, active=True, encryption_key=encryption_key)
    log ParticipantRegistered(account=account, kind=kind, encryption_key=encryption_key)


@external
def deactivate(account: address):
    """
    @notice Removes `account` from the network (it can no longer receive tokens
            or mint). Its history stays on chain.
    @dev Only the admin. Also drops the issuer role, keeping the invariant.
    @param account A registered participant.
    """
    ownable._check_owner()
    assert self.participants[account].active, "registry: not an active participant"
    self.participants[account].active = False
    if self.is_issuer[account]:
        self.is_issuer[account] = False
        log IssuerChanged(account=account, status=False)
    log ParticipantDeactivated(account=account)


@external
def reactivate(account: address):
    """
    @notice Lets a suspended participant take part again (its issuer role is
            not restored: that is a separate `set_issuer`).
    @dev Only the admin.
    @param account A registered, inactive participant.
    """
    ownable._check_owner()
    p: Participant = self.participants[account]
    assert p.kind != 0, "registry: not registered"
    assert not p.active, "registry: already active"
    assert self.recovered_to[account] == empty(address), "registry: account was recovered"
    self.participants[account].active = True
    log ParticipantReactivated(account=account)


@external
def set_encryption_key(account: address, encryption_key: bytes32):
    """
    @notice Re-keys a participant: records shared with it from now on are
            sealed to `encryption_key` (its old key may have leaked).
    @dev Only the admin. Requires a registered participant and a new, non-zero key.
    @param account A registered participant.
    @param encryption_key Its new X25519 public key.
    """
    ownable._check_owner()
    assert self.participants[account].kind != 0, "registry: not registered"
    assert encryption_key != empty(bytes32), "registry: empty encryption key"
    assert self.participants[account].encryption_key != encryption_key, "registry: same encryption key"
    self.participants[account].encryption_key = encryption_key
    log EncryptionKeyChanged(account=account, encryption_key=encryption_key)


@external
def set_issuer(account: address, status: bool):
    """
    @notice Grants or withdraws the right to mint records.
    @dev Only the admin; only a hospital or a pharmacy may be an issuer (a
         pharmacy mints the MedicationDispense of a pack it dispensed into the
         patient's wallet; issue 15).
    @param account A registered, active hospital or pharmacy.
    @param status True to grant, False to withdraw.
    """
    ownable._check_owner()
    if status:
        p: Participant = self.participants[account]
        assert p.active, "registry: not an active participant"
        assert p.kind == KIND_HOSPITAL or p.kind == KIND_PHARMACY, "registry: only hospitals and pharmacies may issue"
    self.is_issuer[account] = status
    log IssuerChanged(account=account, status=status)


@external
def set_registrar(account: address, status: bool):
    """
    @notice Names (or withdraws) an enrolment office that registers patients.
    @dev Only the admin (in a consortium: k of the council). The role covers
         `register` and `bind_did` of patients only, so the office's key, if
         stolen, can add patients but never an institution or an issuer.
    @param account The office's address (need not be a participant).
    @param status True to name it, False to withdraw the role.
    """
    ownable._check_owner()
    assert account != empty(address), "registry: zero address"
    self.is_registrar[account] = status
    log RegistrarChanged(account=account, status=status)


@external
def set_recovery(account: address):
    """
    @notice Names the guardian recovery contract (or none, with the empty address).
    @dev Only the admin (in a consortium: k of the council). The contract it names
         may only call `recover_patient`, and the token and consent manager let it
         move a recovered patient's tokens and consent, nothing else.
    @param account The recovery contract's address, or empty to withdraw.
    """
    ownable._check_owner()
    self.recovery = account
    log RecoveryChanged(account=account)


@external
def recover_patient(old_account: address, new_account: address, encryption_key: bytes32, did_key: bytes32):
    """
    @notice Moves a patient's membership to a new address after a guardian
            recovery: `new_account` is registered as a patient with the new keys
            and `old_account` is deactivated for good (its key is useless here).
    @dev Only the recovery contract named by `set_recovery`. Registering,
         binding the DID and deactivating are one step on purpose: the recovery
         contract is not a registrar and can enrol nobody but a successor.
    @param old_account An active patient (never an institution).
    @param new_account A fresh, non-zero address.
    @param encryption_key The new X25519 public key (non-zero).
    @param did_key The new Ed25519 did:key key, or empty to bind none.
    """
    assert self.recovery != empty(address) and msg.sender == self.recovery, "registry: caller is not the recovery contract"
    old: Participant = self.participants[old_account]
    assert old.kind == KIND_PATIENT, "registry: only a patient is recovered"
    assert old.active, "registry: not an active participant"
    assert new_account != empty(address), "registry: zero address"
    assert self.participants[new_account].kind == 0, "registry: already registered"
    assert encryption_key != empty(bytes32), "registry: empty encryption key"
    depth: uint256 = self.recovery_depth[old_account] + 1
    assert depth <= MAX_RECOVERIES, "registry: too many recoveries"

    self.participants[old_account].active = False
    self.recovered_to[old_account] = new_account
    self.participants[new_account] = Participant(kind=KIND_PATIENT, active=True, encryption_key=encryption_key)
    self.recovery_depth[new_account] = depth
    log ParticipantDeactivated(account=old_account)
    log ParticipantRegistered(account=new_account, kind=KIND_PATIENT, encryption_key=encryption_key)
    if did_key != empty(bytes32):
        assert self.did_owner[did_key] == empty(address), "registry: DID bound to another account"
        self.did_key[new_account] = did_key
        self.did_owner[did_key] = new_account
        log DidBound(account=new_account, did_key=did_key)
    log PatientRecovered(old_account=old_account, new_account=new_account)


@internal
@view
def _check_owner_or_registrar(kind: uint8):
    if msg.sender == ownable.owner:
        return
    assert self.is_registrar[msg.sender], "ownable: caller is not the owner"
    assert kind == KIND_PATIENT, "registry: a registrar enrols patients only"


@external
def bind_did(account: address, did_key: bytes32):
    """
    @notice Binds a participant's did:key (its Ed25519 public key) to its entry,
            so anyone can check that a DID speaks for a registered participant.
    @dev The admin, or a registrar for a patient; once per participant.
    @param account A registered participant.
    @param did_key The 32-byte Ed25519 public key inside its did:key.
    """
    assert self.participants[account].kind != 0, "registry: not registered"
    self._check_owner_or_registrar(self.participants[account].kind)
    assert did_key != empty(bytes32), "registry: empty DID key"
    assert self.did_key[account] == empty(bytes32), "registry: DID already bound"
    assert self.did_owner[did_key] == empty(address), "registry: DID bound to another account"
    self.did_key[account] = did_key
    self.did_owner[did_key] = account
    log DidBound(account=account, did_key=did_key)


@external
def revoke_credential(credential_hash: bytes32):
    """
    @notice Revokes a credential the caller issued. Verifiers look it up under
            the issuer's address, so nobody can revoke another's credentials.
    @dev Only a registered participant; idempotent.
    @param credential_hash sha256 of the credential id (never the credential).
    """
    assert self.participants[msg.sender].kind != 0, "registry: not registered"
    if not self.is_revoked[msg.sender][credential_hash]:
        self.is_revoked[msg.sender][credential_hash] = True
        log CredentialRevoked(issuer=msg.sender, credential_hash=credential_hash)


@external
@view
def revoked_among(issuer: address, credential_hashes: DynArray[bytes32, 1_024]) -> DynArray[bool, 1_024]:
    """
    @notice Revocation status of many credentials of one issuer in one call
            (minting checks a whole batch's attestations at once).
    @param issuer The issuer's address.
    @param credential_hashes Up to 1,024 credential hashes.
    @return Whether each is revoked, in order.
    """
    out: DynArray[bool, 1_024] = []
    for h: bytes32 in credential_hashes:
        out.append(self.is_revoked[issuer][h])
    return out


@external
@view
def is_member(account: address) -> bool:
    """
    @notice Whether `account` is an active participant (may hold tokens).
    @param account Any address.
    @return True when registered and active.
    """
    return self.participants[account].active


@external
@view
def is_institution(account: address) -> bool:
    """
    @notice Whether `account` is an active institution: a member that is neither
            a patient nor a key custodian (hospital, pharma, research, insurer,
            government, manufacturer, pharmacy). Only these may be approved to move a patient's record.
    @param account Any address.
    @return True when registered, active and an institution.
    """
    p: Participant = self.participants[account]
    return p.active and p.kind != KIND_PATIENT and p.kind != KIND_CUSTODIAN


@external
@view
def active_kind(account: address) -> uint8:
    """
    @notice The kind of an active participant, 0 for anyone else (unknown or
            suspended): the one read a contract needs to check a role.
    @dev Two storage reads where `participant` takes three; the drug registry
         calls it on every dispense.
    @param account Any address.
    @return A KIND_* code, or 0.
    """
    if not self.participants[account].active:
        return 0
    return self.participants[account].kind


@external
@view
def participant(account: address) -> (uint8, bool, bytes32):
    """
    @notice A participant's registry entry.
    @param account Any address.
    @return kind (0 when unknown), active flag, encryption public key.
    """
    p: Participant = self.participants[account]
    return (p.kind, p.active, p.encryption_key)
