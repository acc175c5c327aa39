"""The three contracts against a plain Python model, driven by Hypothesis.

A :class:`~hypothesis.stateful.RuleBasedStateMachine` deploys the real contracts
once per run into an embedded chain of its own (1 hospital issuer, 3 patients,
1 research institute, 1 unregistered outsider), then plays random sequences of
mint / transfer / burn / share / revoke / amend / time travel. Every action is
either accepted by both the model and the chain, or refused by the chain
exactly when the model says it must be (with one of the reasons the model
expects). After every step that changed the chain, its owners (every token),
balances (everyone), token counter, grants (every grant's fields, and
``can_access`` for a sample of tokens per grant) and the burned and superseded
statuses of the tokens just touched (plus a rotating few, and all of them at the
end of the run) must equal the model's.

Two contract bugs found this way were fixed (bug 1: an amendment approval
survived a transfer, so an issuer could supersede a token its new owner never
approved; bug 2: ``can_access`` reverted on a burned token instead of answering
False). Their minimal reproductions stay at the bottom of the file as regression
tests, and the model holds the chain to the fixed behaviour.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_tester.exceptions import TransactionFailed
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from web3.exceptions import ContractLogicError

from healthnft.errors import LedgerError
from healthnft.ledger.client import Ledger
from healthnft.ledger.consent import CATEGORIES, Consent
from healthnft.ledger.embedded import embedded_web3

DAY = 86_400
SHORT = 10 * DAY  # a grant that time travel can outlive
LONG = 100 * 365 * DAY  # "far in the future"
TRAVEL = 30 * DAY  # never lands within a day of any expiry, so no boundary flakes

PATIENTS = ("p0", "p1", "p2")
ACTORS = ("hospital", *PATIENTS, "research", "outsider")
KINDS = {"hospital": "hospital", "p0": "patient", "p1": "patient", "p2": "patient",
         "research": "research"}  # fmt: skip
MEMBERS = frozenset(KINDS)  # registered and active; "outsider" is not
ISSUERS = frozenset({"hospital"})
CATEGORY_NAMES = tuple(CATEGORIES)

# Revert messages (substrings) the model can expect.
INVALID_ID = "healthrecord: invalid token ID"
BURNED = "healthrecord: token burned"
NOT_ISSUER_CALLER = "healthrecord: caller is not a registered issuer"
NOT_MEMBER_RECIPIENT = "healthrecord: recipient is not a registered member"
WRONG_FROM = "healthrecord: transfer from incorrect owner"
NOT_OWNER_OR_APPROVED = "healthrecord: caller is not token owner or approved"
NOT_TOKEN_OWNER = "healthrecord: caller is not token owner"
ALREADY_SUPERSEDED = "healthrecord: token already superseded"
NOT_AN_ISSUER = "healthrecord: not a registered issuer"
NOT_APPROVED = "healthrecord: amendment not approved by the owner"
SHARE_NOT_OWNED = "consent: caller does not own the token"
SELF_GRANT = "consent: cannot grant to oneself"
GRANTEE_NOT_MEMBER = "consent: grantee is not a registered member"
GRANT_NOT_OWNED = "consent: caller does not own the grant"
ALREADY_REVOKED = "consent: grant already revoked"

STATS: Counter[str] = Counter()


class World:
    """One embedded chain with the contracts deployed and the cast registered."""

    def __init__(self) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="healthnft-stateful-"))
        admin = Account.from_key(b"\xad" * 32)
        # Fixed keys: the same addresses every run, so a failure replays exactly.
        self.acct = {name: Account.from_key(bytes([i + 1]) * 32) for i, name in enumerate(ACTORS)}
        self.addr = {name: a.address for name, a in self.acct.items()}
        # Everyone is funded at genesis: the same as ledger.fund, six transactions sooner.
        funds = {admin.address: 10**27, **{a: 10**21 for a in self.addr.values()}}
        self.w3 = embedded_web3(self.home / "chain.sqlite", funds)
        self.ledger = Ledger.deploy(self.w3, admin)
        self.consent = Consent(self.ledger)
        for name, kind in KINDS.items():
            self.ledger.register(admin, self.addr[name], kind, bytes([0xE0 + len(name)]) * 32)
        self.ledger.set_issuer(admin, self.addr["hospital"])

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def mint(self, minter: str, to: str, count: int) -> range:
        start = self.ledger.next_token_id()
        root = start.to_bytes(32, "big")  # any non-zero root; the Merkle tree is not modelled
        call = self.ledger.mint_call(self.addr[to], count, start, root)
        self.ledger.transact(self.acct[minter], call)
        return range(start, start + count)

    def amend(self, caller: str, old: int) -> int:
        """The correction of ``old`` (minted and linked in one transaction); its id."""
        start = self.ledger.next_token_id()
        self.ledger.transact(self.acct[caller], self.ledger.amend_call(old, start, b"\x01" * 32))
        return start

    def transfer(self, sender: str, frm: str, to: str, token_id: int) -> None:
        call = self.ledger.token.functions.transferFrom(self.addr[frm], self.addr[to], token_id)
        self.ledger.transact(self.acct[sender], call)

    def close(self) -> None:
        self.w3.provider.ethereum_tester.backend.db.close()
        shutil.rmtree(self.home, ignore_errors=True)


@dataclass
class TokenModel:
    owner: str  # the current owner; for a burned token, its last one
    burned: bool = False
    superseded_by: int | None = None
    # The issuer the owner approved to supersede it; the approval is the owner's,
    # so any transfer (ERC-721 style, even to oneself) or a burn drops it.
    amend_issuer: str | None = None
    # An approval a transfer or burn dropped: superseding on it must be refused.
    stale_amend_issuer: str | None = None

    def drop_amendment_approval(self) -> None:
        self.stale_amend_issuer = self.amend_issuer or self.stale_amend_issuer
        self.amend_issuer = None

    def approved_by_previous_owner(self, issuer: str) -> bool:
        return self.stale_amend_issuer == issuer and self.amend_issuer != issuer


@dataclass
class GrantModel:
    owner: str
    grantee: str
    tokens: frozenset[int] | None  # None: a category grant
    category: str | None
    expires: int
    revoked: bool = False


class LedgerModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world = World()
        self.tokens: dict[int, TokenModel] = {}
        self.grants: dict[int, GrantModel] = {}
        self.checked_block = -1
        self.touched: set[int] = set()  # tokens burned or named in amendments since the check
        self.rotation = 0
        STATS["runs"] += 1

    def teardown(self) -> None:
        try:
            # Sweep every token's statuses once more, unless the run is already failing
            # (teardown runs in a ``finally``; a second error would hide the first).
            if self.checked_block >= 0 and sys.exc_info()[0] is None:
                self.check_token_statuses(sorted(self.tokens))
        finally:
            self.world.close()

    # -- helpers ------------------------------------------------------------------------

    @property
    def next_id(self) -> int:
        return len(self.tokens) + 1

    def owned(self, who: str) -> list[int]:
        return [t for t, tok in self.tokens.items() if tok.owner == who and not tok.burned]

    def live_tokens(self) -> list[int]:
        return [t for t, tok in self.tokens.items() if not tok.burned]

    def pick_actor(self, data: st.DataObject, preferred: list[str], label: str) -> str:
        """Mostly one of ``preferred`` (the likely-valid choice), else anyone."""
        return data.draw(st.sampled_from(preferred * 10 + list(ACTORS)), label=label)

    def pick_token(self, data: st.DataObject, preferred: list[int], label: str) -> int:
        """Mostly one of ``preferred``, else any minted id, 0 or the next unminted id."""
        choices = preferred * 10 + [*self.tokens, 0, self.next_id]
        return data.draw(st.sampled_from(choices), label=label)

    def token_reasons(self, token_id: int) -> list[str]:
        """Why any use of ``token_id`` as an existing token must fail, if it must."""
        tok = self.tokens.get(token_id)
        if tok is None:
            return [INVALID_ID]
        return [BURNED] if tok.burned else []

    def attempt(self, action: str, reasons: list[str], call: Callable[[], Any]) -> Any:
        """Run ``call``: it must be refused with one of ``reasons``, or succeed if none.

        Returns what ``call`` returned, or None when it was (rightly) refused.
        """
        STATS["steps"] += 1
        if reasons:
            try:
                call()
            except LedgerError as exc:
                assert any(r in str(exc) for r in reasons), (
                    f"{action}: refused with {str(exc)!r}, model expected one of {reasons}"
                )
                STATS[f"{action} refused"] += 1
                return None
            raise AssertionError(f"{action}: the chain accepted it; model expected {reasons}")
        try:
            result = call()
        except LedgerError as exc:
            raise AssertionError(f"{action}: the chain refused it ({exc}); model accepts") from None
        STATS[f"{action} ok"] += 1
        return result

    # -- tokens -------------------------------------------------------------------------

    @initialize(counts=st.tuples(*[st.integers(1, 3)] * len(PATIENTS)))
    def records_for_every_patient(self, counts: tuple[int, ...]) -> None:
        for patient, count in zip(PATIENTS, counts, strict=True):
            self.mint("hospital", patient, count)

    @rule(
        minter=st.sampled_from(("hospital",) * 4 + ACTORS),
        to=st.sampled_from(PATIENTS * 2 + ACTORS),
        count=st.integers(1, 5),
    )
    def mint(self, minter: str, to: str, count: int) -> None:
        reasons = []
        if minter not in ISSUERS:
            reasons.append(NOT_ISSUER_CALLER)
        if to not in MEMBERS:
            reasons.append(NOT_MEMBER_RECIPIENT)
        minted = self.attempt("mint", reasons, lambda: self.world.mint(minter, to, count))
        if not reasons:
            assert minted == range(self.next_id, self.next_id + count)
            for t in minted:
                self.tokens[t] = TokenModel(owner=to)

    @precondition(lambda self: self.tokens)
    @rule(data=st.data())
    def transfer_to_patient(self, data: st.DataObject) -> None:
        self.transfer(data, lambda owner: [p for p in PATIENTS if p != owner])

    @precondition(lambda self: self.tokens)
    @rule(data=st.data())
    def transfer_to_anyone(self, data: st.DataObject) -> None:
        """Also to the hospital and the research institute (members), or the outsider."""
        self.transfer(data, lambda owner: [])

    def transfer(self, data: st.DataObject, recipients: Callable[[str], list[str]]) -> None:
        # Tokens with an amendment approval pending count twice: moving them is what
        # makes the approval stale (bug 1's path).
        pending = [t for t in self.live_tokens() if self.tokens[t].amend_issuer]
        t = self.pick_token(data, self.live_tokens() + pending, "token")
        tok = self.tokens.get(t)
        owner = tok.owner if tok else "p0"
        sender = self.pick_actor(data, [owner], "sender")
        frm = self.pick_actor(data, [owner], "from")
        to = self.pick_actor(data, recipients(owner), "to")
        reasons = self.token_reasons(t)
        if tok is not None and not tok.burned:
            if frm != tok.owner:
                reasons.append(WRONG_FROM)
            if sender != tok.owner:  # nobody is ERC-721-approved in this model
                reasons.append(NOT_OWNER_OR_APPROVED)
            if to not in MEMBERS:
                reasons.append(NOT_MEMBER_RECIPIENT)
        self.attempt("transfer", reasons, lambda: self.world.transfer(sender, frm, to, t))
        if not reasons:
            assert tok is not None
            tok.owner = to
            tok.drop_amendment_approval()  # the new owner has approved nothing

    @precondition(lambda self: self.tokens)
    @rule(data=st.data())
    def burn(self, data: st.DataObject) -> None:
        t = self.pick_token(data, self.live_tokens(), "token")
        tok = self.tokens.get(t)
        sender = self.pick_actor(data, [tok.owner if tok else "p0"], "sender")
        reasons = self.token_reasons(t)
        if tok is not None and not tok.burned and sender != tok.owner:
            reasons.append(NOT_OWNER_OR_APPROVED)
        self.touched.add(t)
        self.attempt("burn", reasons, lambda: self.world.ledger.burn(self.world.acct[sender], t))
        if not reasons:
            assert tok is not None
            tok.burned = True
            tok.drop_amendment_approval()

    # -- amendments ---------------------------------------------------------------------

    def do_approve_amendment(self, sender: str, t: int, issuer: str) -> None:
        self.touched.add(t)
        tok = self.tokens.get(t)
        reasons = self.token_reasons(t)
        if tok is not None and not tok.burned:
            if sender != tok.owner:
                reasons.append(NOT_TOKEN_OWNER)
            if tok.superseded_by:
                reasons.append(ALREADY_SUPERSEDED)
            if issuer not in ISSUERS:
                reasons.append(NOT_AN_ISSUER)
        w = self.world
        self.attempt(
            "approve_amendment",
            reasons,
            lambda: w.ledger.approve_amendment(w.acct[sender], t, w.addr[issuer]),
        )
        if not reasons:
            assert tok is not None
            tok.amend_issuer, tok.stale_amend_issuer = issuer, None

    def amend_reasons(self, caller: str, old: int) -> list[str]:
        """Why ``amend(old)`` by ``caller`` must fail, given the approval on ``old``."""
        a = self.tokens.get(old)
        reasons = [] if caller in ISSUERS else [NOT_ISSUER_CALLER]
        if (a.amend_issuer if a else None) != caller:
            reasons.append(NOT_APPROVED)
        reasons += self.token_reasons(old)
        if a and a.superseded_by:
            reasons.append(ALREADY_SUPERSEDED)
        if a and not a.burned and a.owner not in MEMBERS:
            reasons.append(NOT_MEMBER_RECIPIENT)
        return reasons

    def do_amend(self, caller: str, old: int) -> None:
        self.touched.add(old)
        a = self.tokens.get(old)
        reasons = self.amend_reasons(caller, old)
        if a and a.approved_by_previous_owner(caller):
            STATS["amend on a previous owner's approval"] += 1  # bug 1's path
        new = self.attempt("amend", reasons, lambda: self.world.amend(caller, old))
        if not reasons:
            assert a is not None and new == self.next_id
            self.tokens[new] = TokenModel(owner=a.owner)
            self.touched.add(new)
            a.superseded_by = new
            a.amend_issuer = a.stale_amend_issuer = None

    @precondition(lambda self: self.tokens)
    @rule(data=st.data())
    def amend(self, data: st.DataObject) -> None:
        """The owner approves the hospital for ``old``; the hospital mints its correction."""
        live = [t for t in self.live_tokens() if not self.tokens[t].superseded_by]
        old = self.pick_token(data, live, "old")
        tok = self.tokens.get(old)
        self.do_approve_amendment(tok.owner if tok else "p0", old, "hospital")
        self.do_amend("hospital", old)

    @precondition(lambda self: self.tokens)
    @rule(
        data=st.data(),
        plan=st.sampled_from(("approve", "amend", "approve+amend")),
        issuer=st.sampled_from(("hospital", "p0", "research")),
    )
    def amend_by_anyone(self, data: st.DataObject, plan: str, issuer: str) -> None:
        """Approve and/or amend with any caller and any named issuer.

        "approve" alone leaves the approval standing (a later transfer makes it stale);
        "amend" alone mostly reuses an approval given in an earlier step.
        """
        if plan == "amend":  # approvals given earlier, stale ones (bug 1's path) first
            stale = [t for t, tok in self.tokens.items() if tok.stale_amend_issuer]
            preferred = stale * 2 + [t for t, tok in self.tokens.items() if tok.amend_issuer]
        else:
            preferred = [t for t in self.live_tokens() if not self.tokens[t].superseded_by]
        old = self.pick_token(data, preferred, "old")
        if plan != "amend":
            tok = self.tokens.get(old)
            owner = self.pick_actor(data, [tok.owner if tok else "p0"], "owner")
            self.do_approve_amendment(owner, old, issuer)
        if plan != "approve":
            self.do_amend(self.pick_actor(data, ["hospital"], "caller"), old)

    # -- consent ------------------------------------------------------------------------

    def grant_reasons(self, sender: str, grantee: str) -> list[str]:
        reasons = []
        if grantee == sender:
            reasons.append(SELF_GRANT)
        if grantee not in MEMBERS:
            reasons.append(GRANTEE_NOT_MEMBER)
        return reasons

    def record_grant(self, gid: int | None, grant: GrantModel) -> None:
        if gid is not None:  # None: refused, as the model expected
            assert gid == len(self.grants) + 1, f"grant id {gid}, model expected the next one"
            self.grants[gid] = grant

    @precondition(lambda self: self.tokens)
    @rule(data=st.data(), long=st.booleans())
    def share_tokens(self, data: st.DataObject, long: bool) -> None:
        holders = sorted({self.tokens[t].owner for t in self.live_tokens()})
        sender = self.pick_actor(data, holders, "owner")
        mine = self.owned(sender) or [*self.tokens, self.next_id]
        picked = data.draw(st.lists(st.sampled_from(mine), min_size=1, max_size=4, unique=True),
                           label="tokens")  # fmt: skip
        if data.draw(st.integers(0, 3), label="intrude") == 0:  # maybe someone else's token
            picked = list(dict.fromkeys([*picked, self.pick_token(data, [], "intruder")]))
        grantee = self.pick_actor(data, ["research"], "grantee")
        reasons = self.grant_reasons(sender, grantee)
        for t in picked:
            tok_reasons = self.token_reasons(t)
            reasons += tok_reasons or ([] if self.tokens[t].owner == sender else [SHARE_NOT_OWNED])
        expires = self.world.now() + (LONG if long else SHORT)
        w = self.world
        gid = self.attempt("share_tokens", reasons, lambda: w.consent.share_tokens(
            w.acct[sender], w.addr[grantee], picked, "research", expires))  # fmt: skip
        self.record_grant(gid, GrantModel(sender, grantee, frozenset(picked), None, expires))

    @rule(data=st.data(), category=st.sampled_from(CATEGORY_NAMES), long=st.booleans())
    def share_category(self, data: st.DataObject, category: str, long: bool) -> None:
        sender = self.pick_actor(data, list(PATIENTS), "owner")
        grantee = self.pick_actor(data, ["research"], "grantee")
        reasons = self.grant_reasons(sender, grantee)
        expires = self.world.now() + (LONG if long else SHORT)
        w = self.world
        gid = self.attempt("share_category", reasons, lambda: w.consent.share_category(
            w.acct[sender], w.addr[grantee], category, "treatment", expires))  # fmt: skip
        self.record_grant(gid, GrantModel(sender, grantee, None, category, expires))

    @rule(data=st.data())
    def revoke(self, data: st.DataObject) -> None:
        live = [g for g, grant in self.grants.items() if not grant.revoked]
        choices = live * 6 + [*self.grants, 0, len(self.grants) + 1]
        gid = data.draw(st.sampled_from(choices), label="grant")
        grant = self.grants.get(gid)
        sender = self.pick_actor(data, [grant.owner if grant else "p0"], "sender")
        reasons = []
        if grant is None or grant.owner != sender:
            reasons.append(GRANT_NOT_OWNED)
        elif grant.revoked:
            reasons.append(ALREADY_REVOKED)
        w = self.world
        self.attempt("revoke", reasons, lambda: w.consent.revoke(w.acct[sender], gid))
        if not reasons:
            assert grant is not None
            grant.revoked = True

    def has_live_short_grant(self) -> bool:
        now = self.world.now()
        return any(not g.revoked and now < g.expires < now + LONG // 2
                   for g in self.grants.values())  # fmt: skip

    @precondition(has_live_short_grant)
    @rule()
    def time_passes(self) -> None:
        """Travel past the live short grants' expiry (long ones stay ~100 years away)."""
        STATS["steps"] += 1
        STATS["time_passes ok"] += 1
        self.world.w3.provider.ethereum_tester.time_travel(self.world.now() + TRAVEL)

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def chain_agrees_with_model(self) -> None:
        # Refused actions are stopped at gas estimation and send nothing: while no
        # block has been mined since the last full check, the chain cannot have
        # changed, and neither has the model (it only changes on success).
        block = self.world.w3.eth.block_number
        if block == self.checked_block:
            return
        STATS["full invariant checks"] += 1
        self.check_token_counter()
        self.check_owners_and_statuses()
        self.check_balances()
        self.check_grants()
        self.checked_block = block
        self.rotation += 2

    def check_token_counter(self) -> None:
        assert self.world.ledger.next_token_id() == self.next_id

    def check_owners_and_statuses(self) -> None:
        ledger, addr = self.world.ledger, self.world.addr
        ids = sorted(self.tokens)
        expected = [None if self.tokens[t].burned else addr[self.tokens[t].owner] for t in ids]
        assert ledger.owners_of([0, *ids, self.next_id]) == [None, *expected, None]
        # is_burned and superseded_by take one call per token (~3 ms each): check every
        # token the last steps burned or named in an amendment (the only calls that may
        # change them), plus a rotating other one; teardown sweeps them all.
        window = {ids[self.rotation % len(ids)]} if ids else set()
        self.check_token_statuses(sorted((self.touched & set(ids)) | window))
        self.touched.clear()

    def check_token_statuses(self, ids: list[int]) -> None:
        ledger = self.world.ledger
        for t in ids:
            tok = self.tokens[t]
            assert ledger.is_burned(t) == tok.burned, f"token {t}"
            assert ledger.superseded_by(t) == tok.superseded_by, f"token {t}"

    def check_balances(self) -> None:
        for who in ACTORS:
            assert self.world.ledger.balance_of(self.world.addr[who]) == len(self.owned(who)), who

    def predict_access(self, gid: int, who: str, t: int, now: int) -> bool:
        g, tok = self.grants.get(gid), self.tokens.get(t)
        if g is None or g.revoked or now >= g.expires or who != g.grantee:
            return False
        if tok is None or tok.burned or tok.owner != g.owner:  # unknown, burned or moved on
            return False
        return g.tokens is None or t in g.tokens  # a category grant: whatever the owner holds

    def chain_access(self, gid: int, who: str, t: int) -> bool:
        """``can_access`` as the client answers it; a revert fails the test (bug 2)."""
        try:
            return self.world.consent.can_access(gid, self.world.addr[who], t)
        except (TransactionFailed, ContractLogicError) as exc:
            raise AssertionError(f"can_access({gid}, {who}, {t}) reverted: {exc}") from None

    def check_grants(self) -> None:
        w = self.world
        assert int(w.consent.contract.functions.grant_count().call()) == len(self.grants)
        assert w.consent.grant(len(self.grants) + 1) is None
        now = w.now()
        ids = sorted(self.tokens)
        for gid, g in self.grants.items():
            on_chain = w.consent.grant(gid)
            assert on_chain is not None, f"grant {gid} missing"
            assert (on_chain.owner, on_chain.grantee, on_chain.category, on_chain.expires,
                    on_chain.revoked) == (w.addr[g.owner], w.addr[g.grantee], g.category,
                                          g.expires, g.revoked), f"grant {gid}"  # fmt: skip
            # Candidates: the tokens it names, those its owner holds now, one other, the
            # latest burned token and the next, unminted, id. Each call costs ~4 ms, so
            # every check asks about a rotating two of them (one once there are many
            # grants), a different pair for each grant.
            cands = set(g.tokens or ()) | set(self.owned(g.owner))
            cands |= set([t for t in ids if t not in cands][:1])
            cands |= set([t for t in ids if self.tokens[t].burned][-1:]) | {self.next_id}
            ordered = sorted(cands)
            per_grant = 2 if len(self.grants) <= 6 else 1
            sample = {ordered[(self.rotation + gid + i) % len(ordered)] for i in range(per_grant)}
            for t in sorted(sample):
                want = self.predict_access(gid, g.grantee, t, now)
                assert self.chain_access(gid, g.grantee, t) == want, (gid, g, t)
                STATS["can_access checks"] += 1
            if (gid + self.rotation) % 4 == 0:  # now and then: nobody else gets in
                stranger = next(a for a in ACTORS if a not in (g.owner, g.grantee))
                assert not self.chain_access(gid, stranger, min(sample)), (gid, stranger)
        if ids:  # an unknown grant gives nothing
            assert not self.chain_access(len(self.grants) + 1, "research", ids[-1])


SETTINGS = settings(
    max_examples=15,
    stateful_step_count=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.slow
def test_contracts_agree_with_the_model() -> None:
    STATS.clear()
    started = time.perf_counter()
    run_state_machine_as_test(LedgerModel, settings=SETTINGS)
    elapsed = time.perf_counter() - started
    print(f"\nstateful model: {elapsed:.1f} s", dict(sorted(STATS.items())))
    # Not vacuous: every action was seen both accepted and refused.
    for action in ("mint", "transfer", "burn", "approve_amendment", "amend",
                   "share_tokens", "share_category", "revoke"):  # fmt: skip
        assert STATS[f"{action} ok"] > 0, f"{action} never succeeded: {STATS}"
        assert STATS[f"{action} refused"] > 0, f"{action} was never refused: {STATS}"
    assert STATS["time_passes ok"] > 0


# -- regression tests: minimal reproductions of the bugs the machine found ----------------


@pytest.fixture
def world():
    w = World()
    yield w
    w.close()


def test_an_amendment_approval_does_not_survive_a_transfer(world: World) -> None:
    """Bug 1: transferFrom kept amendment_approved[t], so the issuer p0 approved could
    still supersede the token (then with one of p1's), without p1's consent."""
    (old,) = world.mint("hospital", "p0", 1)
    world.ledger.approve_amendment(world.acct["p0"], old, world.addr["hospital"])
    world.transfer("p0", "p0", "p1", old)  # p1 now owns it and has approved nothing
    with pytest.raises(LedgerError, match=NOT_APPROVED):
        world.amend("hospital", old)
    assert world.ledger.superseded_by(old) is None
    # Once p1 approves, the same correction goes through, into p1's wallet.
    world.ledger.approve_amendment(world.acct["p1"], old, world.addr["hospital"])
    new = world.amend("hospital", old)
    assert world.ledger.superseded_by(old) == new
    assert world.ledger.owner_of(new) == world.addr["p1"]


def test_can_access_on_a_burned_token_is_false(world: World) -> None:
    """Bug 2: _can_access called token.ownerOf, which reverts for a burned token, so the
    view reverted for the grantee of a live grant instead of answering False."""
    (t,) = world.mint("hospital", "p0", 1)
    gid = world.consent.share_tokens(world.acct["p0"], world.addr["research"], [t], "research",
                                     world.now() + LONG)  # fmt: skip
    assert world.consent.can_access(gid, world.addr["research"], t) is True
    world.ledger.burn(world.acct["p0"], t)
    for token_id in (t, t + 1, 0):  # burned, never minted, never valid
        try:
            allowed = world.consent.can_access(gid, world.addr["research"], token_id)
        except (TransactionFailed, ContractLogicError) as exc:
            raise AssertionError(f"can_access({token_id}) reverted: {exc}") from None
        assert allowed is False, token_id
