"""Guardian recovery on the embedded chain (issue 14, point 4, at contract level).

Alice names three guardians (a relative, her doctor, a recovery service), two of whom
must agree. She loses her key; the guardians move her account to a new address with new
keys; after the delay every token, grant and policy is the new address's and the old
key can do nothing. Two colluding guardians are stopped by the old key's cancel; a
recovery with too few guardians, too early, twice, by a stranger, to an address someone
else holds, or of an institution is refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from healthnft.errors import LedgerError
from healthnft.ledger.client import Ledger
from healthnft.ledger.compiler import compile_contract
from healthnft.ledger.consent import Consent
from healthnft.ledger.embedded import embedded_web3
from healthnft.ledger.governance import Governance
from healthnft.ledger.recovery import DEFAULT_DELAY_S, GuardianRecovery

DAY = 86400
DELAY = DEFAULT_DELAY_S  # 48 h


@dataclass
class Env:
    w3: Web3
    ledger: Ledger
    consent: Consent
    rec: GuardianRecovery
    admin: LocalAccount
    hospital: LocalAccount
    research: LocalAccount
    alice: LocalAccount
    bob: LocalAccount
    relative: LocalAccount
    doctor: LocalAccount
    service: LocalAccount
    stranger: LocalAccount
    tokens: list[int]

    @property
    def guardians(self) -> list[LocalAccount]:
        return [self.relative, self.doctor, self.service]

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def travel(self, seconds: int) -> None:
        self.w3.provider.ethereum_tester.time_travel(self.now() + seconds)

    def new_wallet(self) -> LocalAccount:
        """Alice's new device: a fresh key, funded for gas, registered nowhere."""
        acct = Account.create()
        self.ledger.fund(self.admin, acct.address, 10**20)
        return acct

    def mint(self, to: str, count: int) -> list[int]:
        start = self.ledger.next_token_id()
        self.ledger.transact(self.hospital, self.ledger.mint_call(to, count, start,
                                                                  os.urandom(32)))  # fmt: skip
        return list(range(start, start + count))


@pytest.fixture
def env(tmp_path: Path):
    admin = Account.create()
    w3 = embedded_web3(tmp_path / "chain.sqlite", {admin.address: 10**27})
    ledger = Ledger.deploy(w3, admin)
    accts = [Account.create() for _ in range(8)]
    hospital, research, alice, bob, relative, doctor, service, stranger = accts
    for a in accts:
        ledger.fund(admin, a.address, 10**21)
    for a, kind in [(hospital, "hospital"), (research, "research"), (alice, "patient"),
                    (bob, "patient"), (relative, "patient"), (doctor, "hospital"),
                    (service, "custodian")]:  # fmt: skip
        ledger.register(admin, a.address, kind, os.urandom(32))
    ledger.set_issuer(admin, hospital.address)
    rec = GuardianRecovery.install(ledger, admin, delay_s=DELAY)
    e = Env(w3, ledger, Consent(ledger), rec, admin, hospital, research, alice, bob, relative,
            doctor, service, stranger, [])  # fmt: skip
    e.tokens = e.mint(alice.address, 5)
    assert rec.set_guardians(alice, [g.address for g in e.guardians], 2) == "applied"
    yield e
    w3.provider.ethereum_tester.backend.db.close()


def approved_recovery(env: Env, new: str, enc: bytes | None = None,
                      did: bytes | None = None) -> int:  # fmt: skip
    """Two of Alice's three guardians propose and approve moving her to ``new``."""
    rid = env.rec.propose(env.relative, env.alice.address, new, enc or os.urandom(32), did)
    env.rec.approve(env.doctor, rid)
    return rid


def refused(match: str):
    return pytest.raises(LedgerError, match=match)


# -- the acceptance scenario ------------------------------------------------------


def test_lost_key_recovered_by_two_guardians_everything_follows(env: Env) -> None:
    alice, t = env.alice, env.tokens
    # Before the loss: a token from Bob, a token given to Bob, a grant, a category
    # grant, a standing policy and a pending request.
    from_bob = env.mint(env.bob.address, 1)[0]
    env.ledger.transact(env.bob, env.ledger.transfer_call(env.bob.address, alice.address,
                                                          from_bob))  # fmt: skip
    env.ledger.transact(alice, env.ledger.transfer_call(alice.address, env.bob.address, t[4]))
    grant = env.consent.share_tokens(alice, env.research.address, [t[0], t[1]], "research",
                                     env.now() + 365 * DAY)  # fmt: skip
    cat_grant = env.consent.share_category(alice, env.doctor.address, "laboratory", "treatment",
                                           env.now() + 365 * DAY)  # fmt: skip
    env.consent.add_policy(alice, grantee_kind="research", purpose="research",
                           duration=30 * DAY, valid_until=env.now() + 365 * DAY)  # fmt: skip
    pending = env.consent.request(env.hospital, alice.address, purpose="treatment",
                                  duration=DAY, token_id=t[2], reward_wei=10**15)  # fmt: skip
    owned_before = env.ledger.balance_of(alice.address)
    assert owned_before == 5  # 5 minted - 1 given + 1 received

    # Alice loses her phone. Her new device makes a key; guardians recover.
    new = env.new_wallet()
    enc, did = os.urandom(32), os.urandom(32)
    gas: dict[str, int] = {}
    rid = env.rec.propose(env.relative, alice.address, new.address, enc, did)
    gas["propose"] = env.rec.last_receipt["gasUsed"]
    assert env.rec.status(rid).executable_at == 0  # one approval of two
    executable_at = env.rec.approve(env.doctor, rid)
    gas["approve"] = env.rec.last_receipt["gasUsed"]
    assert executable_at == env.now() + DELAY
    with refused("recovery: still in its delay"):
        env.rec.execute(new, rid)
    env.travel(DELAY)
    env.rec.execute(new, rid)  # the new device sends it itself
    gas["execute"] = env.rec.last_receipt["gasUsed"]
    print("recovery gas:", gas)
    assert env.rec.status(rid).state == "executed"

    # Membership: the new address is Alice, the old one is dead.
    assert env.ledger.participant(new.address) == ("patient", True, enc)
    assert env.ledger.did_key(new.address) == did
    assert not env.ledger.is_member(alice.address)
    assert env.rec.recovered_to(alice.address) == new.address
    # Every token that was Alice's is the new address's; Bob's stays Bob's.
    mine = [t[0], t[1], t[2], t[3], from_bob]
    assert env.ledger.owners_of(mine) == [new.address] * 5
    assert env.ledger.owner_of(t[4]) == env.bob.address
    assert env.ledger.balance_of(new.address) == owned_before
    assert env.ledger.balance_of(alice.address) == 0
    # Consent made before still works, and is the new address's to manage.
    assert env.consent.can_access(grant, env.research.address, t[0])
    assert env.consent.can_access(cat_grant, env.doctor.address, t[3])
    assert env.consent.contract.functions.holder(alice.address).call() == new.address
    paid = env.w3.eth.get_balance(new.address)
    pending_grant = env.consent.approve(new, pending)
    assert env.consent.can_access(pending_grant, env.hospital.address, t[2])
    assert env.w3.eth.get_balance(new.address) > paid - 10**15  # the reward came to new
    assert env.consent.contract.functions.policy_count(new.address).call() == 1
    auto = env.consent.request(env.research, new.address, purpose="research", duration=DAY,
                               token_id=t[1])  # fmt: skip
    assert env.consent.get_request(auto).state == "approved"  # Alice's old policy answered
    env.consent.revoke(new, cat_grant)
    assert not env.consent.can_access(cat_grant, env.doctor.address, t[3])
    # The new key does what an owner does.
    env.ledger.transact(new, env.ledger.transfer_call(new.address, env.bob.address, t[3]))
    assert env.ledger.owner_of(t[3]) == env.bob.address
    assert env.mint(new.address, 1)

    # The old key can do nothing on chain.
    old = alice
    for what, call in [
        ("healthrecord: transfer from incorrect owner",
         env.ledger.transfer_call(old.address, env.bob.address, t[0])),
        ("healthrecord: caller is not token owner or approved",
         env.ledger.transfer_call(new.address, old.address, t[0])),
        ("healthrecord: caller is not token owner or approved",
         env.ledger.token.functions.burn(t[0])),
        ("healthrecord: caller is not token owner",
         env.ledger.token.functions.approve_amendment(t[0], env.hospital.address)),
        ("consent: caller does not own the token",
         env.consent.share_tokens_call(env.research.address, [t[0]], "research",
                                       env.now() + DAY)),
        ("consent: account was recovered",
         env.consent.share_category_call(env.research.address, "laboratory", "research",
                                         env.now() + DAY)),
        ("consent: caller does not own the grant", env.consent.contract.functions.revoke(grant)),
        ("consent: account was recovered", env.consent.contract.functions.remove_policy(1)),
        ("consent: caller is not a registered member",
         env.consent.add_policy_call(grantee_kind="research", purpose="research", duration=DAY,
                                     valid_until=env.now() + DAY)),
        ("recovery: not an active patient",
         env.rec.contract.functions.set_guardians([env.bob.address], 1)),
    ]:  # fmt: skip
        with refused(what):
            env.ledger.transact(old, call)
    with refused("recipient is not a registered member"):
        env.mint(old.address, 1)
    with refused("consent: owner is not a registered member"):
        env.consent.request(env.research, old.address, purpose="research", duration=DAY,
                            token_id=t[0])  # fmt: skip
    with refused("registry: account was recovered"):
        env.ledger.transact(env.admin, env.ledger.registry.functions.reactivate(old.address))
    with refused("recovery: not an open recovery"):
        env.rec.cancel(old, rid)
    assert env.consent.can_access(grant, env.research.address, t[0])  # untouched by all that


def test_a_custodian_logs_its_release_to_a_recovered_owner_under_grant_0(env: Env) -> None:
    """A custodian's release of a key share to a recovered owner (no grant) is logged as
    every release is: ``log_access(0, token)``, accepted only when the token's owner is
    an account guardians recovered, and shown as the owner's own access."""
    custodian, token = env.service, env.tokens[0]
    env.consent.set_custodian(env.admin, custodian.address)
    with refused("consent: the owner was not recovered"):
        env.consent.log_access(custodian, 0, token)
    new = env.new_wallet()
    rid = approved_recovery(env, new.address)
    env.travel(DELAY)
    env.rec.execute(new, rid)
    with refused("consent: caller is not a custodian"):
        env.consent.log_access(env.stranger, 0, token)
    with refused("consent: no such token"):
        env.consent.log_access(custodian, 0, env.ledger.next_token_id())
    env.consent.log_access(custodian, 0, token)
    [entry] = env.consent.access_log(new.address)
    said = {k: entry[k] for k in ("token_id", "grantee", "grant_id", "purpose", "custodian")}
    assert said == {"token_id": token, "grantee": new.address, "grant_id": 0,
                    "purpose": "recovery", "custodian": custodian.address}  # fmt: skip
    # Bob's token: Bob was never recovered, so no release to him is logged this way.
    with refused("consent: the owner was not recovered"):
        env.consent.log_access(custodian, 0, env.mint(env.bob.address, 1)[0])


def test_colluding_guardians_are_stopped_by_the_old_keys_cancel(env: Env) -> None:
    thief = env.new_wallet()  # the relative and the service collude
    rid = env.rec.propose(env.relative, env.alice.address, thief.address, os.urandom(32))
    env.rec.approve(env.service, rid)
    env.travel(DELAY // 2)
    env.rec.cancel(env.alice, rid)  # Alice still has her key and notices
    gas_cancel = env.rec.last_receipt["gasUsed"]
    print("cancel gas:", gas_cancel)
    env.travel(DELAY)
    with refused("recovery: not an open recovery"):
        env.rec.execute(thief, rid)
    with refused("recovery: not an open recovery"):
        env.rec.approve(env.doctor, rid)
    assert env.rec.status(rid).state == "cancelled"
    assert env.ledger.is_member(env.alice.address)
    assert not env.ledger.is_member(thief.address)
    assert env.ledger.owners_of(env.tokens[:1]) == [env.alice.address]
    # Only the old key cancels: not a guardian, not the would-be new owner.
    rid2 = env.rec.propose(env.relative, env.alice.address, thief.address, os.urandom(32))
    for someone in (env.doctor, thief, env.bob):
        with refused("recovery: only the old key cancels"):
            env.rec.cancel(someone, rid2)


def test_a_recovery_without_enough_guardians_reverts(env: Env) -> None:
    new = env.new_wallet()
    rid = env.rec.propose(env.relative, env.alice.address, new.address, os.urandom(32))
    assert env.rec.status(rid).approvals == 1
    env.travel(DELAY * 10)
    with refused("recovery: not enough guardian approvals"):
        env.rec.execute(new, rid)
    assert env.ledger.owners_of(env.tokens[:1]) == [env.alice.address]
    # The delay runs from the approval that reached the threshold, not from the proposal.
    env.rec.approve(env.service, rid)
    with refused("recovery: still in its delay"):
        env.rec.execute(new, rid)
    at = env.rec.status(rid).executable_at
    env.w3.provider.ethereum_tester.time_travel(at - 60)
    with refused("recovery: still in its delay"):
        env.rec.execute(new, rid)
    env.w3.provider.ethereum_tester.time_travel(at)
    env.rec.execute(new, rid)


def test_strangers_cannot_propose_or_approve_and_nothing_happens_twice(env: Env) -> None:
    new = env.new_wallet()
    for outsider in (env.bob, env.hospital, env.stranger, env.alice):
        with refused("recovery: caller is not a guardian"):
            env.rec.propose(outsider, env.alice.address, new.address, os.urandom(32))
    rid = env.rec.propose(env.relative, env.alice.address, new.address, os.urandom(32))
    with refused("recovery: caller is not a guardian"):
        env.rec.approve(env.bob, rid)
    with refused("recovery: guardian already approved"):
        env.rec.approve(env.relative, rid)
    env.rec.approve(env.doctor, rid)
    assert env.rec.has_approved(rid, env.doctor.address)
    env.travel(DELAY)
    env.rec.execute(env.stranger, rid)  # anyone may send the execution
    with refused("recovery: not an open recovery"):
        env.rec.execute(env.stranger, rid)
    with refused("recovery: not an open recovery"):
        env.rec.approve(env.service, rid)
    # A suspended guardian no longer counts.
    bob_rid = None
    env.rec.set_guardians(env.bob, [env.relative.address, env.doctor.address], 2)
    bob_rid = env.rec.propose(env.relative, env.bob.address, env.new_wallet().address,
                              os.urandom(32))  # fmt: skip
    env.ledger.transact(env.admin, env.ledger.registry.functions.deactivate(env.doctor.address))
    with refused("recovery: guardian is not a registered member"):
        env.rec.approve(env.doctor, bob_rid)


def test_the_new_address_must_be_fresh(env: Env) -> None:
    with refused("recovery: new account already registered"):
        env.rec.propose(env.relative, env.alice.address, env.bob.address, os.urandom(32))
    with refused("recovery: invalid new account"):
        env.rec.propose(env.relative, env.alice.address, env.alice.address, os.urandom(32))
    # Fresh when proposed, taken by someone else before execution: refused then too.
    new = env.new_wallet()
    rid = approved_recovery(env, new.address)
    env.ledger.register(env.admin, new.address, "research", os.urandom(32))
    env.travel(DELAY)
    with refused("registry: already registered"):
        env.rec.execute(env.relative, rid)
    assert env.ledger.is_member(env.alice.address)
    env.rec.void(env.stranger, rid)  # it can never execute: anyone closes it
    assert env.rec.status(rid).state == "void"
    # A DID key bound to someone else is refused as well, and nothing is half done.
    env.ledger.bind_did(env.admin, env.bob.address, b"\x07" * 32)
    other = env.new_wallet()
    rid2 = approved_recovery(env, other.address, did=b"\x07" * 32)
    env.travel(DELAY)
    with refused("registry: DID bound to another account"):
        env.rec.execute(env.relative, rid2)
    with refused("recovery: the new account is still free"):
        env.rec.void(env.stranger, rid2)
    assert env.ledger.owners_of(env.tokens[:1]) == [env.alice.address]
    assert not env.ledger.is_member(other.address)


def test_an_institution_is_not_recovered_this_way(env: Env) -> None:
    with refused("recovery: only a patient's account is recovered"):
        env.rec.set_guardians(env.hospital, [env.doctor.address, env.research.address], 1)
    with refused("recovery: only a patient's account is recovered"):
        env.rec.propose(env.relative, env.hospital.address, env.new_wallet().address,
                        os.urandom(32))  # fmt: skip
    # The hooks answer the recovery contract only, not the admin nor anyone else.
    old, new = env.hospital.address, env.new_wallet().address
    for who in (env.admin, env.hospital, env.relative):
        with refused("registry: caller is not the recovery contract"):
            env.ledger.transact(who, env.ledger.registry.functions.recover_patient(
                old, new, os.urandom(32), bytes(32)))  # fmt: skip
        with refused("healthrecord: caller is not the recovery contract"):
            env.ledger.transact(who, env.ledger.token.functions.recover_owner(old, new))
        with refused("consent: caller is not the recovery contract"):
            env.ledger.transact(who, env.consent.contract.functions.recover_owner(old, new))
    # Naming the recovery contract is the registry owner's alone.
    with refused("ownable: caller is not the owner"):
        env.ledger.transact(env.hospital, env.ledger.registry.functions.set_recovery(
            env.hospital.address))  # fmt: skip


def test_guardian_changes_wait_and_cannot_beat_a_unanimous_recovery(env: Env) -> None:
    """A thief with Alice's key swaps her guardians for accomplices and cancels what
    two guardians do; all three guardians together still recover her account."""
    thief_friends = [env.bob.address, env.research.address]
    assert env.rec.set_guardians(env.alice, thief_friends, 1) == "queued"
    queued = env.rec.guardians(env.alice.address)
    assert queued.queued == thief_friends and queued.queued_at == env.now() + DELAY
    assert [g.address for g in env.guardians] == queued.guardians  # still in force
    with refused("recovery: guardian change still in its delay"):
        env.rec.apply_guardians(env.bob, env.alice.address)
    new = env.new_wallet()
    rid = approved_recovery(env, new.address)
    env.rec.cancel(env.alice, rid)  # the thief cancels a 2-of-3 recovery...
    rid = approved_recovery(env, new.address)
    env.rec.approve(env.service, rid)  # ...but not one all three approved
    assert env.rec.status(rid).unanimous
    with refused("recovery: every guardian approved"):
        env.rec.cancel(env.alice, rid)
    env.travel(DELAY)
    with refused("recovery: every guardian approved an open recovery"):
        env.rec.apply_guardians(env.bob, env.alice.address)
    env.rec.execute(new, rid)
    assert env.ledger.owners_of(env.tokens) == [new.address] * 5
    assert env.rec.guardians(env.alice.address).queued_at == 0  # the queued change is gone


def test_a_unanimous_recovery_that_cannot_execute_is_voided(env: Env) -> None:
    """A unanimous recovery blocks guardian changes; one whose new address is taken
    would block them for good, so anyone may void it and the change applies."""
    new = env.new_wallet()
    rid = approved_recovery(env, new.address)
    env.rec.approve(env.service, rid)
    env.rec.set_guardians(env.alice, [env.bob.address], 1)
    env.travel(DELAY)
    with refused("recovery: every guardian approved an open recovery"):
        env.rec.apply_guardians(env.alice, env.alice.address)
    env.ledger.register(env.admin, new.address, "patient", os.urandom(32))
    env.rec.void(env.bob, rid)
    with refused("recovery: not an open recovery"):
        env.rec.execute(env.relative, rid)
    env.rec.apply_guardians(env.alice, env.alice.address)
    assert env.rec.guardians(env.alice.address).guardians == [env.bob.address]


def test_an_applied_guardian_change_voids_open_recoveries(env: Env) -> None:
    new = env.new_wallet()
    rid = env.rec.propose(env.relative, env.alice.address, new.address, os.urandom(32))
    env.rec.set_guardians(env.alice, [env.bob.address, env.service.address], 2)
    env.travel(DELAY)
    env.rec.apply_guardians(env.stranger, env.alice.address)
    in_force = env.rec.guardians(env.alice.address).guardians
    assert in_force == [env.bob.address, env.service.address]
    assert env.rec.status(rid).stale
    with refused("recovery: guardians changed since the proposal"):
        env.rec.approve(env.doctor, rid)
    with refused("recovery: caller is not a guardian"):
        env.rec.propose(env.relative, env.alice.address, new.address, os.urandom(32))
    # The patient may drop a queued change.
    env.rec.set_guardians(env.alice, [env.relative.address], 1)
    env.rec.cancel_guardian_change(env.alice)
    assert env.rec.guardians(env.alice.address).queued == []
    with refused("recovery: threshold out of range"):
        env.rec.set_guardians(env.alice, [env.relative.address], 2)
    with refused("recovery: guardian named twice"):
        env.rec.set_guardians(env.alice, [env.relative.address, env.relative.address], 1)
    with refused("recovery: guardian is not a registered member"):
        env.rec.set_guardians(env.alice, [env.stranger.address], 1)
    with refused("recovery: a patient cannot guard itself"):
        env.rec.set_guardians(env.alice, [env.alice.address], 1)


def test_approvals_given_by_the_old_key_die_with_it(env: Env) -> None:
    t = env.tokens
    # Before the loss, Alice (or a thief with her key) approved the hospital on a token and as
    # an operator, and approved a hospital to amend a record.
    env.ledger.approve(env.alice, env.hospital.address, t[0])
    env.ledger.set_approval_for_all(env.alice, env.research.address, True)
    env.ledger.approve_amendment(env.alice, t[1], env.hospital.address)
    new = env.new_wallet()
    rid = approved_recovery(env, new.address)
    env.travel(DELAY)
    env.rec.execute(new, rid)
    assert env.ledger.get_approved(t[0]) is None
    with refused("healthrecord: caller is not token owner or approved"):
        env.ledger.transact(env.hospital, env.ledger.transfer_call(
            new.address, env.hospital.address, t[0]))  # fmt: skip
    with refused("healthrecord: caller is not token owner or approved"):
        env.ledger.transact(env.research, env.ledger.transfer_call(
            new.address, env.research.address, t[0]))  # fmt: skip
    with refused("healthrecord: amendment not approved by the owner"):
        env.ledger.transact(env.hospital, env.ledger.amend_call(
            t[1], env.ledger.next_token_id(), os.urandom(32)))  # fmt: skip
    # Approvals the new owner gives count.
    env.ledger.approve(new, env.research.address, t[0])
    assert env.ledger.get_approved(t[0]) == env.research.address
    env.ledger.transact(env.research, env.ledger.transfer_call(
        new.address, env.research.address, t[0]))  # fmt: skip
    assert env.ledger.owner_of(t[0]) == env.research.address
    env.ledger.approve_amendment(new, t[1], env.hospital.address)
    env.ledger.transact(env.hospital, env.ledger.amend_call(
        t[1], env.ledger.next_token_id(), os.urandom(32)))  # fmt: skip
    assert env.ledger.superseded_by(t[1])
    assert env.ledger.owner_of(env.ledger.superseded_by(t[1])) == new.address


def test_a_recovered_account_can_be_recovered_again(env: Env) -> None:
    grant = env.consent.share_tokens(env.alice, env.research.address, [env.tokens[0]],
                                     "research", env.now() + 365 * DAY)  # fmt: skip
    env.consent.add_policy(env.alice, grantee_kind="research", purpose="research",
                           duration=30 * DAY, valid_until=env.now() + 365 * DAY)  # fmt: skip
    first = env.new_wallet()
    rid = approved_recovery(env, first.address)
    env.travel(DELAY)
    env.rec.execute(first, rid)
    # The new account names its own guardians (its first set applies at once).
    assert env.rec.set_guardians(first, [env.doctor.address, env.service.address], 2) == "applied"
    second = env.new_wallet()
    rid2 = env.rec.propose(env.doctor, first.address, second.address, os.urandom(32))
    env.rec.approve(env.service, rid2)
    env.travel(DELAY)
    env.rec.execute(second, rid2)
    assert env.ledger.owners_of(env.tokens) == [second.address] * 5
    assert env.consent.can_access(grant, env.research.address, env.tokens[0])
    assert env.consent.contract.functions.policy_count(second.address).call() == 1
    assert env.ledger.registry.functions.recovery_depth(second.address).call() == 2
    with refused("consent: caller does not own the grant"):
        env.consent.revoke(first, grant)
    env.consent.revoke(second, grant)


def test_recovery_is_optional_and_found_from_the_registry(tmp_path: Path) -> None:
    admin = Account.create()
    w3 = embedded_web3(tmp_path / "chain.sqlite", {admin.address: 10**27})
    ledger = Ledger.deploy(w3, admin)
    assert GuardianRecovery.of(ledger) is None
    rec = GuardianRecovery.install(ledger, admin, delay_s=3600)
    assert GuardianRecovery.of(ledger).address == rec.address
    assert rec.delay() == 3600
    with pytest.raises(LedgerError, match="positive"):
        GuardianRecovery.install(ledger, admin, delay_s=0)
    w3.provider.ethereum_tester.backend.db.close()


def test_a_council_names_the_recovery_contract(tmp_path: Path) -> None:
    admin = Account.create()
    w3 = embedded_web3(tmp_path / "chain.sqlite", {admin.address: 10**27})
    ledger = Ledger.deploy(w3, admin)
    council = [Account.create() for _ in range(3)]
    for m in council:
        ledger.fund(admin, m.address, 10**20)
        ledger.register(admin, m.address, "hospital", os.urandom(32))
    gov = Governance.install(ledger, admin, [m.address for m in council], threshold=2)
    with refused("governance propose"):
        GuardianRecovery.install(ledger, admin, delay_s=3600)
    rec = GuardianRecovery.deploy(ledger, admin, delay_s=3600)
    assert GuardianRecovery.of(ledger) is None
    pid = gov.propose(council[0], "set-recovery", rec.address, flag=True)
    assert "name guardian recovery contract" in gov.proposal(pid).describe()
    assert gov.approve(council[1], pid)
    assert GuardianRecovery.of(ledger).address == rec.address
    pid = gov.propose(council[0], "set-recovery", rec.address, flag=False)
    assert gov.approve(council[1], pid)
    assert GuardianRecovery.of(ledger) is None
    w3.provider.ethereum_tester.backend.db.close()


@pytest.mark.parametrize("evm_version", ["paris", "prague"])
def test_recovery_compiles_for_clique_without_push0(evm_version: str) -> None:
    assert compile_contract("GuardianRecovery", evm_version).bytecode


def test_recovery_runs_on_paris_bytecode(tmp_path: Path) -> None:
    admin = Account.create()
    w3 = embedded_web3(tmp_path / "chain.sqlite", {admin.address: 10**27})
    ledger = Ledger.deploy(w3, admin, "paris")
    rec = GuardianRecovery.install(ledger, admin, delay_s=60, evm_version="paris")
    alice, g1, new = Account.create(), Account.create(), Account.create()
    for a in (alice, g1, new):
        ledger.fund(admin, a.address, 10**20)
    ledger.register(admin, alice.address, "patient", os.urandom(32))
    ledger.register(admin, g1.address, "hospital", os.urandom(32))
    rec.set_guardians(alice, [g1.address], 1)
    rid = rec.propose(g1, alice.address, new.address, os.urandom(32))
    now = int(w3.eth.get_block("latest")["timestamp"])
    w3.provider.ethereum_tester.time_travel(now + 60)
    rec.execute(new, rid)
    assert ledger.is_member(new.address) and not ledger.is_member(alice.address)
    w3.provider.ethereum_tester.backend.db.close()


def test_balances_match_owners_through_random_moves_and_recoveries(env: Env) -> None:
    """ERC-721's `balanceOf(a) == #{t : ownerOf(t) == a}` holds across mints, transfers,
    burns and two recoveries in between (seeded, so a failure replays)."""
    import random

    rnd = random.Random(14)
    holders = {env.alice.address: env.alice, env.bob.address: env.bob}
    env.rec.set_guardians(env.bob, [env.relative.address, env.doctor.address], 2)
    tokens = list(env.tokens)

    def recover(old: LocalAccount) -> None:
        new = env.new_wallet()
        rid = env.rec.propose(env.relative, old.address, new.address, os.urandom(32))
        env.rec.approve(env.doctor, rid)
        env.travel(DELAY)
        env.rec.execute(new, rid)
        del holders[old.address]
        holders[new.address] = new
        env.rec.set_guardians(new, [env.relative.address, env.doctor.address], 2)

    for step in range(24):
        if step in (8, 16):
            recover(rnd.choice(list(holders.values())))
        live = [t for t in tokens if not env.ledger.is_burned(t)]
        action = rnd.choice(["mint", "transfer", "transfer", "burn"])
        if action == "mint" or not live:
            tokens += env.mint(rnd.choice(list(holders)), rnd.randint(1, 3))
            continue
        token = rnd.choice(live)
        owner = holders[env.ledger.owner_of(token)]
        if action == "burn":
            env.ledger.burn(owner, token)
        else:
            to = rnd.choice([a for a in holders if a != owner.address])
            env.ledger.transact(owner, env.ledger.transfer_call(owner.address, to, token))
    owners = env.ledger.owners_of(tokens)
    assert set(owners) <= {*holders, None}
    for address in [*holders, env.alice.address, env.bob.address]:
        assert env.ledger.balance_of(address) == owners.count(address), address
