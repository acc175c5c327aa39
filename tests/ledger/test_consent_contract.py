"""ConsentManager on the real embedded chain: grants, requests, escrow, policies, log."""

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
from healthnft.ledger.consent import Consent
from healthnft.ledger.embedded import embedded_web3

DAY = 86400


@dataclass
class Env:
    w3: Web3
    ledger: Ledger
    consent: Consent
    admin: LocalAccount
    hospital: LocalAccount
    alice: LocalAccount
    bob: LocalAccount
    research: LocalAccount
    insurer: LocalAccount
    custodian: LocalAccount
    outsider: LocalAccount
    tokens: range

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def travel(self, seconds: int) -> None:
        self.w3.provider.ethereum_tester.time_travel(self.now() + seconds)

    def balance(self, acct: LocalAccount) -> int:
        return self.w3.eth.get_balance(acct.address)


@pytest.fixture
def env(tmp_path: Path):
    admin = Account.create()
    w3 = embedded_web3(tmp_path / "chain.sqlite", {admin.address: 10**27})
    ledger = Ledger.deploy(w3, admin)
    accts = [Account.create() for _ in range(7)]
    hospital, alice, bob, research, insurer, custodian, outsider = accts
    for a in accts:
        ledger.fund(admin, a.address, 10**21)
    for a, kind in [(hospital, "hospital"), (alice, "patient"), (bob, "patient"),
                    (research, "research"), (insurer, "insurer")]:  # fmt: skip
        ledger.register(admin, a.address, kind, os.urandom(32))
    ledger.set_issuer(admin, hospital.address)
    start = ledger.next_token_id()
    ledger.transact(hospital, ledger.mint_call(alice.address, 5, start, os.urandom(32)))
    consent = Consent(ledger)
    consent.set_custodian(admin, custodian.address)
    yield Env(w3, ledger, consent, admin, hospital, alice, bob, research, insurer, custodian,
              outsider, range(start, start + 5))  # fmt: skip
    w3.provider.ethereum_tester.backend.db.close()


def test_token_grant_covers_exactly_its_tokens_until_revoked(env: Env) -> None:
    t = env.tokens
    gid = env.consent.share_tokens(env.alice, env.research.address, [t[0], t[1]], "research",
                                   env.now() + 30 * DAY)  # fmt: skip
    assert env.consent.can_access(gid, env.research.address, t[0])
    assert env.consent.can_access(gid, env.research.address, t[1])
    assert not env.consent.can_access(gid, env.research.address, t[2])  # outside the grant
    assert not env.consent.can_access(gid, env.insurer.address, t[0])  # someone else
    env.consent.revoke(env.alice, gid)
    assert not env.consent.can_access(gid, env.research.address, t[0])
    with pytest.raises(LedgerError, match="already revoked"):
        env.consent.revoke(env.alice, gid)
    grant = env.consent.grant(gid)
    assert grant.revoked and grant.purpose == "research" and grant.category is None


def test_only_the_owner_shares_and_revokes(env: Env) -> None:
    t = env.tokens
    with pytest.raises(LedgerError, match="does not own the token"):
        env.consent.share_tokens(env.bob, env.research.address, [t[0]], "research",
                                 env.now() + DAY)  # fmt: skip
    with pytest.raises(LedgerError, match="grantee is not a registered member"):
        env.consent.share_tokens(env.alice, env.outsider.address, [t[0]], "research",
                                 env.now() + DAY)  # fmt: skip
    gid = env.consent.share_category(env.alice, env.research.address, "laboratory", "research",
                                     env.now() + DAY)  # fmt: skip
    with pytest.raises(LedgerError, match="does not own the grant"):
        env.consent.revoke(env.research, gid)


def test_grants_expire_and_follow_ownership(env: Env) -> None:
    t = env.tokens
    gid = env.consent.share_category(env.alice, env.research.address, "laboratory", "research",
                                     env.now() + 2 * DAY)  # fmt: skip
    assert env.consent.can_access(gid, env.research.address, t[3])
    # Minted later, into the same owner: a category grant covers it.
    start = env.ledger.next_token_id()
    env.ledger.transact(env.hospital, env.ledger.mint_call(env.alice.address, 1, start,
                                                            os.urandom(32)))  # fmt: skip
    assert env.consent.can_access(gid, env.research.address, start)
    # Transferred away: Alice's grant no longer covers it.
    env.ledger.transact(env.alice, env.ledger.token.functions.transferFrom(
        env.alice.address, env.bob.address, t[3]))  # fmt: skip
    assert not env.consent.can_access(gid, env.research.address, t[3])
    env.travel(3 * DAY)
    assert not env.consent.can_access(gid, env.research.address, t[4])  # expired


def test_request_approved_pays_the_patient(env: Env) -> None:
    reward = 10**18
    rid = env.consent.request(env.research, env.alice.address, purpose="research",
                              duration=30 * DAY, category="laboratory",
                              reward_wei=reward)  # fmt: skip
    req = env.consent.get_request(rid)
    assert req.state == "pending" and req.escrow == reward
    assert env.w3.eth.get_balance(env.consent.contract.address) == reward
    with pytest.raises(LedgerError, match="not a request to the caller"):
        env.consent.approve(env.bob, rid)
    before = env.balance(env.alice)
    gid = env.consent.approve(env.alice, rid)
    assert env.balance(env.alice) > before + reward * 99 // 100  # reward minus gas
    assert env.w3.eth.get_balance(env.consent.contract.address) == 0
    assert env.consent.can_access(gid, env.research.address, env.tokens[0])
    assert env.consent.get_request(rid).state == "approved"


def test_declined_and_lapsed_requests_refund(env: Env) -> None:
    reward = 5 * 10**17
    rid = env.consent.request(env.insurer, env.alice.address, purpose="insurance",
                              duration=DAY, token_id=env.tokens[0], reward_wei=reward)  # fmt: skip
    before = env.balance(env.insurer)
    env.consent.decline(env.alice, rid)
    assert env.balance(env.insurer) == before + reward
    with pytest.raises(LedgerError, match="not pending"):
        env.consent.approve(env.alice, rid)
    rid2 = env.consent.request(env.insurer, env.alice.address, purpose="insurance",
                               duration=DAY, token_id=env.tokens[0], reward_wei=reward)  # fmt: skip
    with pytest.raises(LedgerError, match="still open"):
        env.consent.reclaim(env.insurer, rid2)
    env.travel(31 * DAY)
    with pytest.raises(LedgerError, match="lapsed"):
        env.consent.approve(env.alice, rid2)
    before = env.balance(env.insurer)
    env.consent.reclaim(env.insurer, rid2)
    assert env.balance(env.insurer) > before + reward * 99 // 100
    assert env.w3.eth.get_balance(env.consent.contract.address) == 0


def test_policy_approves_matching_requests_only(env: Env) -> None:
    idx = env.consent.add_policy(env.alice, grantee_kind="research", category="laboratory",
                                 purpose="research", duration=365 * DAY,
                                 valid_until=env.now() + 10 * DAY,
                                 deidentified_only=True)  # fmt: skip
    ok = env.consent.request(env.research, env.alice.address, purpose="research",
                             duration=30 * DAY, category="laboratory")  # fmt: skip
    req = env.consent.get_request(ok)
    assert req.state == "approved"
    assert env.consent.grant(req.grant_id).deidentified_only
    # Must not match: wrong purpose, wrong participant kind, wrong category, too long.
    for requester, kw in [
        (env.research, {"purpose": "treatment", "category": "laboratory", "duration": DAY}),
        (env.insurer, {"purpose": "research", "category": "laboratory", "duration": DAY}),
        (env.research, {"purpose": "research", "category": "immunization", "duration": DAY}),
        (env.research, {"purpose": "research", "category": "laboratory",
                        "duration": 400 * DAY}),
    ]:  # fmt: skip
        rid = env.consent.request(requester, env.alice.address, **kw)
        assert env.consent.get_request(rid).state == "pending", kw
    # An expired policy does not match either; a removed one neither.
    env.travel(11 * DAY)
    late = env.consent.request(env.research, env.alice.address, purpose="research",
                               duration=DAY, category="laboratory")  # fmt: skip
    assert env.consent.get_request(late).state == "pending"
    env.consent.remove_policy(env.alice, idx)
    with pytest.raises(LedgerError, match="already removed"):
        env.consent.remove_policy(env.alice, idx)


def test_only_custodians_log_and_only_valid_access(env: Env) -> None:
    t = env.tokens
    gid = env.consent.share_tokens(env.alice, env.research.address, [t[0]], "research",
                                   env.now() + DAY)  # fmt: skip
    with pytest.raises(LedgerError, match="not a custodian"):
        env.consent.log_access(env.outsider, gid, t[0])
    with pytest.raises(LedgerError, match="no valid grant"):
        env.consent.log_access(env.custodian, gid, t[1])
    env.consent.log_access(env.custodian, gid, t[0])
    log = env.consent.access_log(env.alice.address)
    assert len(log) == 1 and log[0]["token_id"] == t[0] and log[0]["purpose"] == "research"
    assert log[0]["grantee"] == env.research.address
    env.consent.revoke(env.alice, gid)
    with pytest.raises(LedgerError, match="no valid grant"):
        env.consent.log_access(env.custodian, gid, t[0])
