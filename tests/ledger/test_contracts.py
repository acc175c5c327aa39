"""Contract rules on the real embedded chain, through the project's own Ledger client.

Every test deploys fresh contracts into its own chain (about 0.2 s), so tests that
move tokens do not depend on each other.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from healthnft.errors import LedgerError
from healthnft.ledger.client import Ledger
from healthnft.ledger.embedded import embedded_web3

ZERO = "0x0000000000000000000000000000000000000000"
NOT_OWNER = "caller is not the owner"
NOT_ISSUER = "healthrecord: caller is not a registered issuer"
NOT_MEMBER = "recipient is not a registered member"


@dataclass
class Env:
    w3: Web3
    ledger: Ledger
    admin: LocalAccount
    hospital: LocalAccount
    alice: LocalAccount
    bob: LocalAccount
    carol: LocalAccount
    outsider: LocalAccount
    insurer: LocalAccount  # an institution a patient may approve for a while

    def mint(self, owner: LocalAccount | str, count: int, root: bytes | None = None) -> range:
        """Mint ``count`` tokens to ``owner`` as the hospital; returns their ids."""
        to = owner if isinstance(owner, str) else owner.address
        start = self.ledger.next_token_id()
        call = self.ledger.mint_call(to, count, start, root or os.urandom(32))
        self.ledger.transact(self.hospital, call)
        return range(start, start + count)

    def transfer(self, sender: LocalAccount, frm: str, to: str, token_id: int) -> dict:
        call = self.ledger.token.functions.transferFrom(frm, to, token_id)
        return self.ledger.transact(sender, call)

    def deactivate(self, address: str) -> None:
        self.ledger.transact(self.admin, self.ledger.registry.functions.deactivate(address))


@pytest.fixture
def env(tmp_path: Path) -> Env:
    admin = Account.create()
    w3 = embedded_web3(tmp_path / "chain.sqlite", {admin.address: 10**27})
    ledger = Ledger.deploy(w3, admin)
    hospital, alice, bob, carol, outsider, insurer = (Account.create() for _ in range(6))
    for acct in (hospital, alice, bob, carol, outsider, insurer):
        ledger.fund(admin, acct.address, 10**20)
    ledger.register(admin, hospital.address, "hospital", os.urandom(32))
    ledger.set_issuer(admin, hospital.address)
    ledger.register(admin, insurer.address, "insurer", os.urandom(32))
    for patient in (alice, bob, carol):
        ledger.register(admin, patient.address, "patient", os.urandom(32))
    yield Env(w3, ledger, admin, hospital, alice, bob, carol, outsider, insurer)
    w3.provider.ethereum_tester.backend.db.close()


# -- registry: who may do what ------------------------------------------------------


def test_only_the_admin_registers_participants(env: Env) -> None:
    newcomer = Account.create().address
    for caller in (env.outsider, env.hospital, env.alice):
        with pytest.raises(LedgerError, match=NOT_OWNER):
            env.ledger.register(caller, newcomer, "patient", os.urandom(32))
    assert env.ledger.participant(newcomer)[0] is None
    assert not env.ledger.is_member(newcomer)

    env.ledger.register(env.admin, newcomer, "research", os.urandom(32))
    assert env.ledger.participant(newcomer)[:2] == ("research", True)
    # An address is registered once; its kind never changes.
    with pytest.raises(LedgerError, match="already registered"):
        env.ledger.register(env.admin, newcomer, "hospital", os.urandom(32))
    assert env.ledger.participant(newcomer)[0] == "research"


def test_only_the_admin_grants_or_withdraws_the_issuer_role(env: Env) -> None:
    other_hospital = Account.create().address
    env.ledger.register(env.admin, other_hospital, "hospital", os.urandom(32))
    for caller in (env.outsider, env.hospital, env.alice):
        with pytest.raises(LedgerError, match=NOT_OWNER):
            env.ledger.set_issuer(caller, other_hospital, True)
        with pytest.raises(LedgerError, match=NOT_OWNER):
            env.ledger.set_issuer(caller, env.hospital.address, False)
    assert not env.ledger.is_issuer(other_hospital)
    assert env.ledger.is_issuer(env.hospital.address)

    env.ledger.set_issuer(env.admin, other_hospital, True)
    assert env.ledger.is_issuer(other_hospital)
    env.ledger.set_issuer(env.admin, other_hospital, False)
    assert not env.ledger.is_issuer(other_hospital)


def test_only_active_hospitals_and_pharmacies_can_become_issuers(env: Env) -> None:
    for kind in ("patient", "pharma", "research", "insurer", "government", "manufacturer"):
        addr = Account.create().address
        env.ledger.register(env.admin, addr, kind, os.urandom(32))
        with pytest.raises(LedgerError, match="only hospitals and pharmacies may issue"):
            env.ledger.set_issuer(env.admin, addr, True)
        assert not env.ledger.is_issuer(addr)
    pharmacy = Account.create().address  # issue 15: it mints the MedicationDispense
    env.ledger.register(env.admin, pharmacy, "pharmacy", os.urandom(32))
    env.ledger.set_issuer(env.admin, pharmacy, True)
    assert env.ledger.is_issuer(pharmacy)
    with pytest.raises(LedgerError, match="not an active participant"):
        env.ledger.set_issuer(env.admin, Account.create().address, True)
    with pytest.raises(LedgerError, match="only hospitals and pharmacies may issue"):
        env.ledger.set_issuer(env.admin, env.alice.address, True)  # a registered patient

    closed = Account.create().address
    env.ledger.register(env.admin, closed, "hospital", os.urandom(32))
    env.deactivate(closed)
    with pytest.raises(LedgerError, match="not an active participant"):
        env.ledger.set_issuer(env.admin, closed, True)


def test_deactivating_an_issuer_drops_its_role_and_its_minting(env: Env) -> None:
    env.mint(env.alice, 2)
    env.deactivate(env.hospital.address)
    assert not env.ledger.is_issuer(env.hospital.address)
    assert not env.ledger.is_member(env.hospital.address)
    start = env.ledger.next_token_id()
    with pytest.raises(LedgerError, match=NOT_ISSUER):
        env.mint(env.alice, 1)
    assert env.ledger.next_token_id() == start
    # Its history stays: the tokens it minted are still there.
    assert env.ledger.owner_of(1) == env.alice.address
    assert env.ledger.balance_of(env.alice.address) == 2


# -- minting ------------------------------------------------------------------------


def test_only_registered_issuers_mint(env: Env) -> None:
    unauthorised_hospital = Account.create()
    env.ledger.register(env.admin, unauthorised_hospital.address, "hospital", os.urandom(32))
    env.ledger.fund(env.admin, unauthorised_hospital.address, 10**20)
    for caller in (env.outsider, env.alice, env.admin, unauthorised_hospital):
        call = env.ledger.mint_call(env.alice.address, 3, 1, os.urandom(32))
        with pytest.raises(LedgerError, match=NOT_ISSUER):
            env.ledger.transact(caller, call)
    assert env.ledger.next_token_id() == 1
    assert env.ledger.batch_count() == 0
    assert env.ledger.balance_of(env.alice.address) == 0

    # A withdrawn issuer is refused as well.
    env.mint(env.alice, 1)
    env.ledger.set_issuer(env.admin, env.hospital.address, False)
    with pytest.raises(LedgerError, match=NOT_ISSUER):
        env.mint(env.alice, 1)
    assert env.ledger.next_token_id() == 2


def test_minting_to_a_non_member_is_refused(env: Env) -> None:
    stranger = Account.create().address
    for to in (stranger, ZERO):
        with pytest.raises(LedgerError, match=NOT_MEMBER):
            env.mint(to, 3)
    env.deactivate(env.carol.address)
    with pytest.raises(LedgerError, match=NOT_MEMBER):
        env.mint(env.carol, 3)
    assert env.ledger.next_token_id() == 1
    assert env.ledger.balance_of(stranger) == 0


def test_batch_size_and_root_are_checked(env: Env) -> None:
    ledger = env.ledger
    for count in (0, 10_001):
        with pytest.raises(LedgerError, match="batch size out of range"):
            ledger.transact(env.hospital, ledger.mint_call(env.alice.address, count, 1, b"\1" * 32))
    with pytest.raises(LedgerError, match="empty root"):
        ledger.transact(env.hospital, ledger.mint_call(env.alice.address, 1, 1, b"\0" * 32))
    assert ledger.next_token_id() == 1

    # The largest batch goes through in one transaction.
    tokens = env.mint(env.alice, 10_000)
    assert ledger.next_token_id() == 10_001
    assert ledger.balance_of(env.alice.address) == 10_000
    assert ledger.owner_of(tokens[-1]) == env.alice.address
    assert ledger.batch_of(tokens[-1]).end == 10_001


def test_a_stale_expected_start_is_refused(env: Env) -> None:
    ledger = env.ledger
    env.mint(env.alice, 4)  # tokens 1..4
    for stale in (1, 4, 6, 0):
        with pytest.raises(LedgerError, match="token range moved"):
            ledger.transact(env.hospital, ledger.mint_call(env.bob.address, 2, stale, b"\2" * 32))
    assert ledger.next_token_id() == 5
    assert ledger.batch_count() == 1

    # The race the check exists for: two batches built for the same range. Both sign
    # (estimation passes), the first lands, the second reverts on chain.
    nonce = ledger.nonce(env.hospital.address)
    first = ledger.sign(env.hospital, ledger.mint_call(env.alice.address, 2, 5, b"\3" * 32), nonce)
    second = ledger.sign(env.hospital, ledger.mint_call(env.bob.address, 3, 5, b"\4" * 32),
                         nonce + 1)  # fmt: skip
    ledger.broadcast(first)
    with pytest.raises(LedgerError, match="reverted"):
        ledger.broadcast(second)
    assert ledger.next_token_id() == 7
    assert ledger.batch_count() == 2
    assert ledger.batch(1).root == b"\3" * 32
    assert ledger.balance_of(env.bob.address) == 0


def test_owner_balance_and_batch_lookup_across_batches(env: Env) -> None:
    ledger = env.ledger
    owners = [env.alice, env.bob, env.carol]
    sizes = [1, 7, 2, 33, 3, 64, 1, 12, 5, 1]
    batches: list[tuple[range, str, bytes]] = []
    for i, size in enumerate(sizes):
        owner = owners[i % 3].address
        root = os.urandom(32)
        batches.append((env.mint(owner, size, root), owner, root))
    assert ledger.batch_count() == len(sizes)
    assert ledger.next_token_id() == 1 + sum(sizes)

    expected_owner: dict[int, str] = {}
    expected_batch: dict[int, int] = {}
    for batch_id, (tokens, owner, root) in enumerate(batches):
        info = ledger.batch(batch_id)
        assert (info.owner, info.start, info.end, info.root) == (
            owner, tokens[0], tokens[-1] + 1, root,
        )  # fmt: skip
        for t in tokens:
            expected_owner[t] = owner
            expected_batch[t] = batch_id
        for t in {tokens[0], tokens[-1]}:  # both ends of every batch
            assert ledger.batch_of(t) == info
            assert ledger.token.functions.batch_of(t).call() == batch_id
            assert ledger.owner_of(t) == owner
    rng = random.Random(20240601)
    for t in rng.sample(sorted(expected_owner), 30):
        assert ledger.token.functions.batch_of(t).call() == expected_batch[t]
        assert ledger.owner_of(t) == expected_owner[t]
    # The bulk lookup agrees with ownerOf everywhere, unknown ids included.
    every = sorted(expected_owner)
    nxt = ledger.next_token_id()
    assert ledger.owners_of([0, *every, nxt, nxt + 5]) == [
        None, *(expected_owner[t] for t in every), None, None,
    ]  # fmt: skip
    assert ledger.owners_of(list(range(1, 1300)))[: len(every)] == [
        expected_owner[t] for t in every
    ]  # more than one 1,024-id call
    for owner in owners:
        held = sum(1 for o in expected_owner.values() if o == owner.address)
        assert ledger.balance_of(owner.address) == held
    assert ledger.balance_of(env.outsider.address) == 0
    # Outside the minted range there is no batch.
    assert ledger.batch_of(0) is None
    assert ledger.batch_of(ledger.next_token_id()) is None
    with pytest.raises(Exception, match="invalid token ID"):
        ledger.token.functions.batch_of(ledger.next_token_id()).call()
    with pytest.raises(Exception, match="not a valid owner"):
        ledger.token.functions.balanceOf(ZERO).call()
    assert ledger.token.functions.tokenURI(5).call() == "healthnft:token/5"


def test_owner_of_an_unknown_token_is_none(env: Env) -> None:
    env.mint(env.alice, 2)
    assert env.ledger.owner_of(3) is None
    assert env.ledger.owner_of(0) is None


# -- transfers --------------------------------------------------------------------


def test_transfer_between_members_moves_just_that_token(env: Env) -> None:
    ledger = env.ledger
    env.mint(env.bob, 3)  # 1..3
    tokens = env.mint(env.alice, 7)  # 4..10
    moved = tokens[3]
    receipt = env.transfer(env.alice, env.alice.address, env.bob.address, moved)
    assert receipt["status"] == 1
    assert ledger.owner_of(moved) == env.bob.address
    for t in tokens:
        if t != moved:
            assert ledger.owner_of(t) == env.alice.address
    assert ledger.balance_of(env.alice.address) == 6
    assert ledger.balance_of(env.bob.address) == 4
    assert ledger.owners_of(list(tokens)) == [
        env.bob.address if t == moved else env.alice.address for t in tokens
    ]
    # The batch record itself is unchanged (original owner, same range).
    assert ledger.batch(1).owner == env.alice.address
    assert ledger.batch_of(moved).start == tokens[0]

    # Onwards to carol, then back home to alice.
    env.transfer(env.bob, env.bob.address, env.carol.address, moved)
    assert ledger.owner_of(moved) == env.carol.address
    env.transfer(env.carol, env.carol.address, env.alice.address, moved)
    assert ledger.owner_of(moved) == env.alice.address
    assert [ledger.balance_of(a.address) for a in (env.alice, env.bob, env.carol)] == [7, 3, 0]


def test_transfers_that_must_be_refused(env: Env) -> None:
    ledger = env.ledger
    tokens = env.mint(env.alice, 3)
    t = tokens[1]
    stranger = Account.create().address
    with pytest.raises(LedgerError, match=NOT_MEMBER):
        env.transfer(env.alice, env.alice.address, stranger, t)
    with pytest.raises(LedgerError, match="transfer to the zero address"):
        env.transfer(env.alice, env.alice.address, ZERO, t)
    for thief in (env.bob, env.outsider, env.hospital, env.admin):
        with pytest.raises(LedgerError, match="caller is not token owner or approved"):
            env.transfer(thief, env.alice.address, thief.address, t)
        with pytest.raises(LedgerError, match="caller is not token owner or approved"):
            env.transfer(thief, env.alice.address, env.bob.address, t)
    with pytest.raises(LedgerError, match="transfer from incorrect owner"):
        env.transfer(env.alice, env.bob.address, env.carol.address, t)
    with pytest.raises(LedgerError, match="invalid token ID"):
        env.transfer(env.alice, env.alice.address, env.bob.address, tokens[-1] + 1)
    assert [ledger.owner_of(x) for x in tokens] == [env.alice.address] * 3
    assert ledger.balance_of(env.alice.address) == 3
    assert ledger.balance_of(stranger) == 0


def test_approved_address_and_operator_can_transfer(env: Env) -> None:
    ledger, fns = env.ledger, env.ledger.token.functions
    tokens = env.mint(env.alice, 4)
    t = tokens[2]
    with pytest.raises(LedgerError, match="approve caller is not token owner"):
        ledger.transact(env.insurer, fns.approve(env.insurer.address, t))
    with pytest.raises(LedgerError, match="approval to current owner"):
        ledger.transact(env.alice, fns.approve(env.alice.address, t))

    ledger.transact(env.alice, fns.approve(env.insurer.address, t))
    assert fns.getApproved(t).call() == env.insurer.address
    env.transfer(env.insurer, env.alice.address, env.carol.address, t)  # approved, not owner
    assert ledger.owner_of(t) == env.carol.address
    assert fns.getApproved(t).call() == ZERO  # cleared by the transfer
    with pytest.raises(LedgerError, match="caller is not token owner or approved"):
        env.transfer(env.insurer, env.carol.address, env.bob.address, t)
    # The approval covered one token only.
    with pytest.raises(LedgerError, match="caller is not token owner or approved"):
        env.transfer(env.insurer, env.alice.address, env.bob.address, tokens[0])

    # An operator may move all of the owner's tokens, until withdrawn.
    ledger.transact(env.alice, fns.setApprovalForAll(env.insurer.address, True))
    assert fns.isApprovedForAll(env.alice.address, env.insurer.address).call()
    env.transfer(env.insurer, env.alice.address, env.insurer.address, tokens[0])
    assert ledger.owner_of(tokens[0]) == env.insurer.address
    ledger.transact(env.alice, fns.setApprovalForAll(env.insurer.address, False))
    with pytest.raises(LedgerError, match="caller is not token owner or approved"):
        env.transfer(env.insurer, env.alice.address, env.insurer.address, tokens[1])
    assert [ledger.balance_of(a.address) for a in (env.alice, env.insurer, env.carol)] == [
        2, 1, 1]  # fmt: skip


# Issue #12, approval theft: an owner (or a phished owner's wallet) approved a fresh
# address, and that address then moved the record away with transferFrom. Issue #14
# point 5: approvals go to institutions only (never another person), and lapse.
APPROVED_NOT_INSTITUTION = "healthrecord: approved address is not a registered institution"
OPERATOR_NOT_INSTITUTION = "healthrecord: operator is not a registered institution"
CALLER_NOT_INSTITUTION = "healthrecord: caller is not a registered institution"


def test_an_approval_to_anyone_but_an_institution_is_refused(env: Env) -> None:
    (t,) = env.mint(env.alice, 1)
    stranger = Account.create().address
    custodian = Account.create()
    env.ledger.register(env.admin, custodian.address, "custodian", os.urandom(32))
    # An outsider, a fresh address, another patient, a key custodian: none may be approved.
    for refused in (env.outsider.address, stranger, env.bob.address, custodian.address):
        with pytest.raises(LedgerError, match=APPROVED_NOT_INSTITUTION):
            env.ledger.approve(env.alice, refused, t)
        with pytest.raises(LedgerError, match=OPERATOR_NOT_INSTITUTION):
            env.ledger.set_approval_for_all(env.alice, refused, True)
        assert not env.ledger.is_approved_for_all(env.alice.address, refused)
    assert env.ledger.get_approved(t) is None
    # An institution may be approved, and the approval cleared again.
    env.ledger.approve(env.alice, env.insurer.address, t)
    assert env.ledger.get_approved(t) == env.insurer.address
    env.ledger.approve(env.alice, ZERO, t)
    assert env.ledger.get_approved(t) is None
    env.deactivate(env.insurer.address)  # a former institution is an outsider now
    with pytest.raises(LedgerError, match=APPROVED_NOT_INSTITUTION):
        env.ledger.approve(env.alice, env.insurer.address, t)
    # Withdrawing is always allowed (it gives nothing).
    env.ledger.set_approval_for_all(env.alice, env.outsider.address, False)
    env.ledger.set_approval_for_all(env.alice, env.hospital.address, True)
    assert env.ledger.is_approved_for_all(env.alice.address, env.hospital.address)


def test_a_patient_cannot_be_made_to_move_anothers_record(env: Env) -> None:
    """A phished patient cannot approve another person (the page's 'approve' prompt is
    refused on chain): the other patient holds nothing and moves nothing."""
    (t,) = env.mint(env.alice, 1)
    with pytest.raises(LedgerError, match=APPROVED_NOT_INSTITUTION):
        env.ledger.approve(env.alice, env.bob.address, t)
    with pytest.raises(LedgerError, match="caller is not token owner or approved"):
        env.transfer(env.bob, env.alice.address, env.bob.address, t)
    assert env.ledger.owner_of(t) == env.alice.address


def test_approvals_lapse(env: Env) -> None:
    """An approval and an operator approval last APPROVAL_LIFETIME, then count no more:
    getApproved and isApprovedForAll say so, and a transfer or burn is refused."""
    ledger = env.ledger
    one, two = env.mint(env.alice, 2)
    lifetime = ledger.token.functions.APPROVAL_LIFETIME().call()
    assert lifetime == 7 * 86_400
    ledger.approve(env.alice, env.insurer.address, one)
    ledger.set_approval_for_all(env.alice, env.hospital.address, True)
    tester = env.w3.provider.ethereum_tester
    now = env.w3.eth.get_block("latest")["timestamp"]
    tester.time_travel(now + lifetime - 60)  # still inside the lifetime
    tester.mine_blocks(1)
    assert ledger.get_approved(one) == env.insurer.address
    assert ledger.is_approved_for_all(env.alice.address, env.hospital.address)
    tester.time_travel(now + lifetime + 60)
    tester.mine_blocks(1)
    assert ledger.get_approved(one) is None
    assert not ledger.is_approved_for_all(env.alice.address, env.hospital.address)
    with pytest.raises(LedgerError, match="caller is not token owner or approved"):
        env.transfer(env.insurer, env.alice.address, env.insurer.address, one)
    with pytest.raises(LedgerError, match="caller is not token owner or approved"):
        ledger.burn(env.hospital, two)
    with pytest.raises(LedgerError, match="approve caller is not token owner"):
        ledger.approve(env.hospital, env.insurer.address, two)
    # Renewed by the owner, it counts again.
    ledger.set_approval_for_all(env.alice, env.hospital.address, True)
    env.transfer(env.hospital, env.alice.address, env.hospital.address, two)
    assert ledger.owners_of([one, two]) == [env.alice.address, env.hospital.address]


def test_an_approved_outsider_cannot_transfer_nor_burn(env: Env) -> None:
    """The only way left to hold an approval without being an institution: be
    deactivated after receiving it. The approval is then void, for transfers, burns and
    approvals."""
    ledger = env.ledger
    one, two, three = env.mint(env.alice, 3)
    ledger.approve(env.alice, env.insurer.address, one)
    ledger.set_approval_for_all(env.alice, env.insurer.address, True)
    env.deactivate(env.insurer.address)
    for t in (one, two):
        for to in (env.insurer.address, env.carol.address):  # to itself, or to an accomplice
            with pytest.raises(LedgerError, match=CALLER_NOT_INSTITUTION):
                env.transfer(env.insurer, env.alice.address, to, t)
        with pytest.raises(LedgerError, match=CALLER_NOT_INSTITUTION):
            ledger.burn(env.insurer, t)
    with pytest.raises(LedgerError, match=CALLER_NOT_INSTITUTION):
        ledger.approve(env.insurer, env.hospital.address, three)  # an operator approving others
    # A plain outsider, approved for nothing, is refused as before.
    with pytest.raises(LedgerError, match="caller is not token owner or approved"):
        env.transfer(env.outsider, env.alice.address, env.carol.address, three)
    assert ledger.owners_of([one, two, three]) == [env.alice.address] * 3
    assert ledger.balance_of(env.alice.address) == 3
    # The owner still moves their own records; a transfer clears the stale approval.
    env.transfer(env.alice, env.alice.address, env.carol.address, one)
    assert ledger.owner_of(one) == env.carol.address and ledger.get_approved(one) is None


def test_an_approved_institution_moves_records_only_to_members(env: Env) -> None:
    ledger = env.ledger
    (t,) = env.mint(env.alice, 1)
    ledger.approve(env.alice, env.insurer.address, t)
    with pytest.raises(LedgerError, match=NOT_MEMBER):
        env.transfer(env.insurer, env.alice.address, env.outsider.address, t)
    env.transfer(env.insurer, env.alice.address, env.carol.address, t)
    assert ledger.owner_of(t) == env.carol.address


def test_deactivated_participants_cannot_receive(env: Env) -> None:
    ledger = env.ledger
    held = env.mint(env.carol, 2)
    tokens = env.mint(env.alice, 2)
    env.deactivate(env.carol.address)
    assert not ledger.is_member(env.carol.address)
    assert ledger.participant(env.carol.address)[:2] == ("patient", False)
    with pytest.raises(LedgerError, match=NOT_MEMBER):
        env.mint(env.carol, 1)
    with pytest.raises(LedgerError, match=NOT_MEMBER):
        env.transfer(env.alice, env.alice.address, env.carol.address, tokens[0])
    with pytest.raises(LedgerError, match="not an active participant"):
        env.deactivate(env.carol.address)
    # What carol already holds stays hers (history is kept on chain).
    assert [ledger.owner_of(t) for t in held] == [env.carol.address] * 2
    assert ledger.balance_of(env.carol.address) == 2
    assert ledger.owner_of(tokens[0]) == env.alice.address


def test_supports_interface(env: Env) -> None:
    fn = env.ledger.token.functions.supportsInterface
    for iface in ("01ffc9a7", "80ac58cd", "5b5e139f"):
        assert fn(bytes.fromhex(iface)).call() is True, iface
    for iface in ("ffffffff", "00000000", "780e9d63"):  # 780e9d63: enumerable, not offered
        assert fn(bytes.fromhex(iface)).call() is False, iface


# -- registry: DID binding and credential revocation ----------------------------------


def test_only_the_admin_binds_a_did_once(env: Env) -> None:
    key = os.urandom(32)
    with pytest.raises(LedgerError, match=NOT_OWNER):
        env.ledger.bind_did(env.alice, env.alice.address, key)
    with pytest.raises(LedgerError, match="not registered"):
        env.ledger.bind_did(env.admin, env.outsider.address, key)
    assert env.ledger.did_key(env.alice.address) is None
    env.ledger.bind_did(env.admin, env.alice.address, key)
    assert env.ledger.did_key(env.alice.address) == key
    with pytest.raises(LedgerError, match="DID already bound"):
        env.ledger.bind_did(env.admin, env.alice.address, os.urandom(32))


def test_revocation_is_per_issuer_and_final(env: Env) -> None:
    cred = os.urandom(32)
    assert not env.ledger.is_revoked(env.hospital.address, cred)
    with pytest.raises(LedgerError, match="not registered"):
        env.ledger.revoke_credential(env.outsider, cred)
    env.ledger.revoke_credential(env.hospital, cred)
    env.ledger.revoke_credential(env.hospital, cred)  # idempotent
    assert env.ledger.is_revoked(env.hospital.address, cred)
    # Another participant revoking "the same" id touches only its own list.
    env.ledger.revoke_credential(env.alice, os.urandom(32))
    assert not env.ledger.is_revoked(env.alice.address, cred)
    others = [os.urandom(32) for _ in range(1500)]
    assert env.ledger.revoked_among(env.hospital.address, [*others, cred]) == [False] * 1500 + [
        True
    ]


# -- burn and amendment ----------------------------------------------------------------


def test_burn_removes_the_token_for_good(env: Env) -> None:
    ids = env.mint(env.alice, 3)
    with pytest.raises(LedgerError, match="not token owner"):
        env.ledger.burn(env.bob, ids[1])
    env.ledger.burn(env.alice, ids[1])
    assert env.ledger.is_burned(ids[1]) and env.ledger.owner_of(ids[1]) is None
    assert env.ledger.balance_of(env.alice.address) == 2
    assert env.ledger.owners_of(list(ids)) == [env.alice.address, None, env.alice.address]
    with pytest.raises(LedgerError, match="burned"):
        env.ledger.burn(env.alice, ids[1])
    with pytest.raises(LedgerError, match="burned"):
        env.transfer(env.alice, env.alice.address, env.bob.address, ids[1])
    assert env.ledger.next_token_id() == ids[-1] + 1  # ids are never reused


def _amend(env: Env, caller: LocalAccount, old: int, start: int | None = None,
           root: bytes | None = None) -> dict:  # fmt: skip
    """``amend(old, ...)`` by ``caller``: the correction of ``old``, minted at ``start``."""
    start = env.ledger.next_token_id() if start is None else start
    call = env.ledger.amend_call(old, start, os.urandom(32) if root is None else root)
    return env.ledger.transact(caller, call)


def test_amendment_needs_the_owner_and_the_approved_issuer(env: Env) -> None:
    (old,) = env.mint(env.alice, 1)
    (bobs,) = env.mint(env.bob, 1)
    with pytest.raises(LedgerError, match="amendment not approved by the owner"):
        _amend(env, env.hospital, old)
    with pytest.raises(LedgerError, match="caller is not token owner"):
        env.ledger.approve_amendment(env.bob, old, env.hospital.address)
    with pytest.raises(LedgerError, match="healthrecord: not a registered issuer"):
        env.ledger.approve_amendment(env.alice, old, env.bob.address)
    env.ledger.approve_amendment(env.alice, old, env.hospital.address)
    assert env.ledger.amendment_approved(old) == env.hospital.address
    with pytest.raises(LedgerError, match="amendment not approved by the owner"):
        _amend(env, env.alice, old)  # only the approved issuer corrects
    with pytest.raises(LedgerError, match="amendment not approved by the owner"):
        _amend(env, env.hospital, bobs)  # an approval is for one token
    with pytest.raises(LedgerError, match="healthrecord: token range moved, rebuild the batch"):
        _amend(env, env.hospital, old, start=env.ledger.next_token_id() + 1)
    with pytest.raises(LedgerError, match="healthrecord: empty root"):
        _amend(env, env.hospital, old, root=bytes(32))
    assert env.ledger.next_token_id() == bobs + 1  # every refusal minted nothing

    balance = env.ledger.balance_of(env.alice.address)
    root = os.urandom(32)
    receipt = _amend(env, env.hospital, old, root=root)
    new = bobs + 1
    # One transaction: the new token, its batch of one, and the link.
    assert env.ledger.superseded_in(receipt) == [(old, new)]
    assert env.ledger.minted_batch(receipt) == (env.ledger.batch_count() - 1, root)
    assert env.ledger.owner_of(new) == env.alice.address
    assert env.ledger.balance_of(env.alice.address) == balance + 1
    assert env.ledger.batch_of(new).root == root and env.ledger.batch_of(new).start == new
    assert env.ledger.superseded_by(old) == new and env.ledger.superseded_by(new) is None
    assert env.ledger.amendment_approved(old) is None  # spent
    with pytest.raises(LedgerError, match="amendment not approved by the owner"):
        _amend(env, env.hospital, old)  # a second correction needs a new approval...
    with pytest.raises(LedgerError, match="already superseded"):
        env.ledger.approve_amendment(env.alice, old, env.hospital.address)  # ...never given


def test_amend_refuses_what_mint_refuses(env: Env) -> None:
    """The correction is a mint: the approved issuer must still be an issuer, the owner
    still a member; a transfer or a burn drops the approval."""
    (old,) = env.mint(env.alice, 1)
    env.ledger.approve_amendment(env.alice, old, env.hospital.address)
    env.ledger.set_issuer(env.admin, env.hospital.address, False)
    with pytest.raises(LedgerError, match=NOT_ISSUER):
        _amend(env, env.hospital, old)
    env.ledger.set_issuer(env.admin, env.hospital.address, True)
    env.deactivate(env.alice.address)
    with pytest.raises(LedgerError, match=NOT_MEMBER):
        _amend(env, env.hospital, old)
    (moved, burned) = env.mint(env.bob, 2)
    for t in (moved, burned):
        env.ledger.approve_amendment(env.bob, t, env.hospital.address)
    env.transfer(env.bob, env.bob.address, env.carol.address, moved)
    env.ledger.burn(env.bob, burned)
    for t in (moved, burned):
        with pytest.raises(LedgerError, match="amendment not approved by the owner"):
            _amend(env, env.hospital, t)
    with pytest.raises(LedgerError, match="healthrecord: invalid token ID"):
        env.ledger.approve_amendment(env.alice, env.ledger.next_token_id(), env.hospital.address)
    assert env.ledger.superseded_by(old) is None


def test_amend_costs_less_than_a_mint_and_a_second_transaction(env: Env) -> None:
    """Gas from receipts: the correction is a batch of one plus the link, and the link
    costs less than any separate transaction writing it could (21,000 base + 22,100 for
    a fresh ``superseded_by`` slot). bench/consent_gas.py measures the old two."""
    env.mint(env.alice, 1)  # the owner's first token (first-write costs) is behind us
    start = env.ledger.next_token_id()
    mint_one = env.ledger.transact(env.hospital, env.ledger.mint_call(
        env.alice.address, 1, start, os.urandom(32)))["gasUsed"]  # fmt: skip
    env.ledger.approve_amendment(env.alice, start, env.hospital.address)
    amend = _amend(env, env.hospital, start)["gasUsed"]
    assert mint_one < amend < mint_one + 21_000 + 22_100, (mint_one, amend)


# -- the service's read cache -------------------------------------------------------


def test_read_cache_memoizes_views_until_a_write(env: Env) -> None:
    (token,) = env.mint(env.alice, 1)
    cache = env.ledger.enable_read_cache(ttl_s=60)
    assert env.ledger.owner_of(token) == env.alice.address
    calls = []
    original = env.ledger.token.functions.owners_of  # what owner_of reads
    env.ledger.token.functions.owners_of = lambda *a: calls.append(a) or original(*a)
    try:
        assert env.ledger.owner_of(token) == env.alice.address  # served from the cache
        assert calls == []
        version = cache.version
        env.transfer(env.alice, env.alice.address, env.bob.address, token)  # a write
        assert cache.version > version
        assert env.ledger.owner_of(token) == env.bob.address  # re-read after the write
        assert len(calls) == 1
        owners = env.ledger.owners_of([token, token + 1])
        owners.append("changed by the caller")
        assert env.ledger.owners_of([token, token + 1]) == [env.bob.address, None]
        assert env.ledger.participant(env.bob.address)[:2] == ("patient", True)
        assert env.ledger.participant(env.bob.address)[:2] == ("patient", True)
    finally:
        env.ledger.token.functions.owners_of = original


def test_read_cache_entries_expire(env: Env) -> None:
    (token,) = env.mint(env.alice, 1)
    cache = env.ledger.enable_read_cache(ttl_s=0.05)
    assert env.ledger.is_burned(token) is False
    assert cache.get(("is_burned", token)) == (True, False)
    time.sleep(0.1)
    assert cache.get(("is_burned", token))[0] is False
