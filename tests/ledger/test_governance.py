"""Governance on the embedded chain: a council of 4 founding institutions, 3 of which
must approve every change to the membership; the deploying admin key, once it has
handed the contracts over, changes nothing."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from web3 import Web3

from healthnft.errors import LedgerError
from healthnft.ledger.client import Ledger
from healthnft.ledger.compiler import compile_contract
from healthnft.ledger.consent import Consent
from healthnft.ledger.embedded import embedded_web3
from healthnft.ledger.governance import DEFAULT_VOTING_PERIOD_S, Governance

NOT_OWNER = "ownable: caller is not the owner"
FOUNDERS = ("hospital", "research", "insurer", "government")


@dataclass
class Env:
    w3: Web3
    ledger: Ledger
    admin: LocalAccount
    council: list[LocalAccount]
    gov: Governance
    outsider: LocalAccount

    def travel(self, seconds: int) -> None:
        now = self.w3.eth.get_block("latest")["timestamp"]
        self.w3.provider.ethereum_tester.time_travel(now + seconds)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    admin = Account.create()
    w3 = embedded_web3(tmp_path / "chain.sqlite", {admin.address: 10**27})
    ledger = Ledger.deploy(w3, admin)
    council = [Account.create() for _ in FOUNDERS]
    outsider = Account.create()
    for member, kind in zip(council, FOUNDERS, strict=True):
        ledger.fund(admin, member.address, 10**20)
        ledger.register(admin, member.address, kind, os.urandom(32))
    ledger.fund(admin, outsider.address, 10**20)
    gov = Governance.install(ledger, admin, [m.address for m in council], threshold=3)
    yield Env(w3, ledger, admin, council, gov, outsider)
    w3.provider.ethereum_tester.backend.db.close()


def test_a_member_joins_only_on_the_third_approval(env: Env) -> None:
    a, b, c, _ = env.council
    newcomer = Account.create().address
    key = os.urandom(32)
    pid = env.gov.propose(a, "register", newcomer, kind="research", key=key)
    assert env.gov.proposal(pid).state == "pending"
    assert env.gov.proposal(pid).approvals == 1
    assert not env.ledger.is_member(newcomer)
    assert env.gov.approve(b, pid) is False
    assert not env.ledger.is_member(newcomer)
    assert env.gov.approve(c, pid) is True
    assert env.ledger.participant(newcomer) == ("research", True, key)
    p = env.gov.proposal(pid)
    assert (p.state, p.approvals, p.threshold) == ("executed", 3, 3)
    with pytest.raises(LedgerError, match="governance: proposal already executed"):
        env.gov.approve(env.council[3], pid)


def test_the_old_admin_key_can_no_longer_change_the_membership(env: Env) -> None:
    newcomer = Account.create().address
    assert env.gov.installed()
    assert Governance.of(env.ledger).address == env.gov.address
    with pytest.raises(LedgerError, match=NOT_OWNER) as refused:
        env.ledger.register(env.admin, newcomer, "patient", os.urandom(32))
    assert "governance propose" in str(refused.value)
    with pytest.raises(LedgerError, match=NOT_OWNER):
        env.ledger.set_issuer(env.admin, env.council[0].address, True)
    with pytest.raises(LedgerError, match=NOT_OWNER):
        env.ledger.transact(env.admin, env.ledger.registry.functions.transfer_ownership(
            env.admin.address))  # fmt: skip
    with pytest.raises(LedgerError, match=NOT_OWNER):
        Consent(env.ledger).set_custodian(env.admin, newcomer, True)


def test_no_admin_without_governance_is_unchanged(tmp_path: Path) -> None:
    admin = Account.create()
    w3 = embedded_web3(tmp_path / "chain.sqlite", {admin.address: 10**27})
    ledger = Ledger.deploy(w3, admin)
    assert Governance.of(ledger) is None
    ledger.register(admin, Account.create().address, "patient", os.urandom(32))
    w3.provider.ethereum_tester.backend.db.close()


def test_approving_twice_or_off_the_council_is_refused(env: Env) -> None:
    a, b, _, _ = env.council
    pid = env.gov.propose(a, "register", Account.create().address, kind="patient",
                          key=os.urandom(32))  # fmt: skip
    with pytest.raises(LedgerError, match="governance: already approved"):
        env.gov.approve(a, pid)
    env.gov.approve(b, pid)
    with pytest.raises(LedgerError, match="governance: already approved"):
        env.gov.approve(b, pid)
    for stranger in (env.outsider, env.admin):
        with pytest.raises(LedgerError, match="governance: caller is not on the council"):
            env.gov.approve(stranger, pid)
        with pytest.raises(LedgerError, match="governance: caller is not on the council"):
            env.gov.propose(stranger, "suspend", a.address)
    with pytest.raises(LedgerError, match="governance: unknown proposal"):
        env.gov.approve(a, 99)
    assert env.gov.proposal(pid).approvals == 2


def test_an_expired_proposal_cannot_execute(env: Env) -> None:
    a, b, c, _ = env.council
    newcomer = Account.create().address
    pid = env.gov.propose(a, "register", newcomer, kind="patient", key=os.urandom(32))
    env.gov.approve(b, pid)
    env.travel(DEFAULT_VOTING_PERIOD_S + 1)
    assert env.gov.proposal(pid).state == "expired"
    with pytest.raises(LedgerError, match="governance: proposal expired"):
        env.gov.approve(c, pid)
    assert not env.ledger.is_member(newcomer)


def test_suspension_reactivation_and_rekeying_take_k_of_n(env: Env) -> None:
    a, b, c, d = env.council
    patient = Account.create().address
    pid = env.gov.propose(a, "register", patient, kind="patient", key=b"\x01" * 32)
    env.gov.approve(b, pid)
    env.gov.approve(c, pid)

    pid = env.gov.propose(b, "rekey", patient, key=b"\x02" * 32)
    env.gov.approve(c, pid)
    assert env.ledger.participant(patient)[2] == b"\x01" * 32
    env.gov.approve(d, pid)
    assert env.ledger.participant(patient)[2] == b"\x02" * 32

    pid = env.gov.propose(a, "suspend", patient)
    env.gov.approve(b, pid)
    assert env.ledger.is_member(patient)
    env.gov.approve(d, pid)
    assert not env.ledger.is_member(patient)

    pid = env.gov.propose(c, "reactivate", patient)
    env.gov.approve(a, pid)
    env.gov.approve(b, pid)
    assert env.ledger.is_member(patient)


def test_a_suspended_council_member_neither_approves_nor_counts(env: Env) -> None:
    a, b, c, d = env.council
    newcomer = Account.create().address
    pending = env.gov.propose(d, "register", newcomer, kind="patient", key=os.urandom(32))
    pid = env.gov.propose(a, "suspend", d.address)
    env.gov.approve(b, pid)
    env.gov.approve(c, pid)
    assert not env.ledger.is_member(d.address)
    assert env.gov.proposal(pending).approvals == 0  # d's approval no longer counts
    with pytest.raises(LedgerError, match="governance: council member is suspended"):
        env.gov.approve(d, pending)
    with pytest.raises(LedgerError, match="governance: council member is suspended"):
        env.gov.propose(d, "reactivate", d.address)
    # the three others still reach the threshold
    env.gov.approve(a, pending)
    env.gov.approve(b, pending)
    assert not env.ledger.is_member(newcomer)
    env.gov.approve(c, pending)
    assert env.ledger.is_member(newcomer)


def test_a_compromised_member_cannot_change_the_council_alone(env: Env) -> None:
    a, b, c, d = env.council
    accomplice = Account.create()
    # alone: every council change is only a pending proposal
    lower = env.gov.propose(a, "set-threshold", a.address, number=2)
    with pytest.raises(LedgerError, match="governance: threshold below 2"):
        env.gov.propose(a, "set-threshold", a.address, number=1)
    remove = env.gov.propose(a, "remove-council", b.address)
    assert env.gov.proposal(remove).state == "pending"
    assert env.gov.threshold() == 3
    with pytest.raises(LedgerError, match="governance: already approved"):
        env.gov.approve(a, lower)
    with pytest.raises(LedgerError, match="council member must be an active participant"):
        env.gov.propose(a, "add-council", accomplice.address)
    hand_over = env.gov.propose(a, "hand-over", a.address)
    assert env.gov.proposal(hand_over).state == "pending"
    assert env.gov.installed()
    assert env.gov.threshold() == 3
    assert env.gov.council() == [m.address for m in env.council]
    # k of n: the threshold changes, and the change voids what was pending
    env.gov.approve(b, lower)
    env.gov.approve(c, lower)
    assert env.gov.threshold() == 2
    assert env.gov.proposal(hand_over).state == "void"
    with pytest.raises(LedgerError, match="governance: proposal void"):
        env.gov.approve(b, hand_over)
    del d


def test_a_council_address_is_replaced_by_k_of_n(env: Env) -> None:
    a, b, c, d = env.council
    new_key = Account.create()
    env.gov.ledger.fund(env.admin, new_key.address, 10**20)
    pid = env.gov.propose(a, "register", new_key.address, kind="government",
                          key=os.urandom(32))  # fmt: skip
    env.gov.approve(b, pid)
    env.gov.approve(c, pid)
    pid = env.gov.propose(a, "replace-council", d.address, new_account=new_key.address)
    env.gov.approve(b, pid)
    env.gov.approve(c, pid)
    assert set(env.gov.council()) == {a.address, b.address, c.address, new_key.address}
    probe = env.gov.propose(new_key, "suspend", d.address)
    with pytest.raises(LedgerError, match="governance: caller is not on the council"):
        env.gov.approve(d, probe)


def test_issuer_and_custodian_roles_go_through_the_council(env: Env) -> None:
    a, b, c, _ = env.council
    hospital = env.council[0].address
    pid = env.gov.propose(b, "set-issuer", hospital, flag=True)
    env.gov.approve(c, pid)
    assert not env.ledger.is_issuer(hospital)
    env.gov.approve(a, pid)
    assert env.ledger.is_issuer(hospital)
    custodian = Account.create().address
    pid = env.gov.propose(a, "register", custodian, kind="custodian", key=os.urandom(32))
    env.gov.approve(b, pid)
    env.gov.approve(c, pid)
    pid = env.gov.propose(a, "set-custodian", custodian, flag=True)
    env.gov.approve(b, pid)
    env.gov.approve(c, pid)
    assert env.ledger.consent.functions.is_custodian(custodian).call()


def test_a_registrar_named_by_the_council_enrols_patients_and_nothing_else(env: Env) -> None:
    a, b, c, _ = env.council
    office = env.outsider
    patient, hospital = Account.create().address, Account.create().address
    with pytest.raises(LedgerError, match=NOT_OWNER):  # not yet a registrar
        env.ledger.register(office, patient, "patient", os.urandom(32))
    pid = env.gov.propose(a, "set-registrar", office.address, flag=True)
    env.gov.approve(b, pid)
    assert not env.ledger.is_registrar(office.address)
    env.gov.approve(c, pid)
    assert env.ledger.is_registrar(office.address)
    assert "patient registrar" in env.gov.proposal(pid).describe()

    env.ledger.register(office, patient, "patient", key := os.urandom(32))
    env.ledger.bind_did(office, patient, did := os.urandom(32))
    assert env.ledger.participant(patient) == ("patient", True, key)
    assert env.ledger.did_key(patient) == did
    # Never an institution, a role, a suspension or a DID of someone who is not a patient.
    with pytest.raises(LedgerError, match="registry: a registrar enrols patients only"):
        env.ledger.register(office, hospital, "hospital", os.urandom(32))
    with pytest.raises(LedgerError, match="registry: a registrar enrols patients only"):
        env.ledger.bind_did(office, b.address, os.urandom(32))
    for call in (env.ledger.registry.functions.set_issuer(b.address, True),
                 env.ledger.registry.functions.deactivate(patient),
                 env.ledger.registry.functions.set_registrar(a.address, True)):  # fmt: skip
        with pytest.raises(LedgerError, match=NOT_OWNER):
            env.ledger.transact(office, call)
    assert not env.ledger.is_member(hospital)

    pid = env.gov.propose(b, "set-registrar", office.address, flag=False)
    env.gov.approve(c, pid)
    env.gov.approve(a, pid)
    with pytest.raises(LedgerError, match=NOT_OWNER):  # withdrawn
        env.ledger.register(office, Account.create().address, "patient", os.urandom(32))


def test_a_failing_action_reverts_the_deciding_approval_with_the_registrys_reason(
    env: Env,
) -> None:
    a, b, c, _ = env.council
    pid = env.gov.propose(a, "register", b.address, kind="patient", key=os.urandom(32))
    env.gov.approve(b, pid)
    with pytest.raises(LedgerError, match="registry: already registered"):
        env.gov.approve(c, pid)
    assert env.gov.proposal(pid).state == "pending"


def test_install_refuses_a_threshold_of_one_or_a_stranger_on_the_council(tmp_path: Path) -> None:
    admin = Account.create()
    w3 = embedded_web3(tmp_path / "chain.sqlite", {admin.address: 10**27})
    ledger = Ledger.deploy(w3, admin)
    members = [Account.create().address for _ in range(3)]
    for m in members:
        ledger.register(admin, m, "hospital", os.urandom(32))
    with pytest.raises(LedgerError, match="governance not installed"):
        Governance.install(ledger, admin, members, threshold=1)
    with pytest.raises(LedgerError, match="governance not installed"):
        Governance.install(ledger, admin, [*members, Account.create().address], threshold=2)
    assert Governance.of(ledger) is None
    ledger.register(admin, Account.create().address, "patient", os.urandom(32))
    w3.provider.ethereum_tester.backend.db.close()


@pytest.mark.parametrize("evm_version", ["paris", "prague"])
def test_governance_compiles_without_push0_for_clique(evm_version: str) -> None:
    code = compile_contract("Governance", evm_version).bytecode
    assert code
    assert compile_contract("ParticipantRegistry", evm_version).bytecode


def test_governance_deploys_and_runs_on_paris_bytecode(tmp_path: Path) -> None:
    admin = Account.create()
    w3 = embedded_web3(tmp_path / "chain.sqlite", {admin.address: 10**27})
    ledger = Ledger.deploy(w3, admin, "paris")
    members = [Account.create() for _ in range(2)]
    for m in members:
        ledger.fund(admin, m.address, 10**20)
        ledger.register(admin, m.address, "hospital", os.urandom(32))
    gov = Governance.install(ledger, admin, [m.address for m in members], 2, evm_version="paris")
    newcomer = Account.create().address
    pid = gov.propose(members[0], "register", newcomer, kind="patient", key=os.urandom(32))
    assert gov.approve(members[1], pid)
    assert ledger.is_member(newcomer)
    w3.provider.ethereum_tester.backend.db.close()


# -- a model: random proposals and approvals, the chain agreeing at every step ----------

THRESHOLD = 3


@dataclass
class ModelProposal:
    action: str
    target: str
    approvals: set[str]
    executed: bool = False
    expired: bool = False


class GovernanceModel(RuleBasedStateMachine):
    """Four founders, three must approve; actors include the admin and an outsider.
    Every attempt's outcome (done, or the contract's exact reason) is predicted first."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self.dir = tempfile.mkdtemp(prefix="gov-model-")
        self.admin = Account.create()
        self.w3 = embedded_web3(Path(self.dir) / "chain.sqlite", {self.admin.address: 10**27})
        self.ledger = Ledger.deploy(self.w3, self.admin)
        self.keys = {f"m{i}": Account.create() for i in range(4)}
        for acct in self.keys.values():
            self.ledger.fund(self.admin, acct.address, 10**20)
            self.ledger.register(self.admin, acct.address, "hospital", os.urandom(32))
        self.keys["admin"] = self.admin
        self.keys["outsider"] = Account.create()
        self.ledger.fund(self.admin, self.keys["outsider"].address, 10**20)
        self.gov = Governance.install(self.ledger, self.admin,
                                      [self.keys[f"m{i}"].address for i in range(4)],
                                      THRESHOLD)  # fmt: skip
        self.active = {self.keys[f"m{i}"].address: True for i in range(4)}
        self.proposals: dict[int, ModelProposal] = {}

    def teardown(self) -> None:
        self.w3.provider.ethereum_tester.backend.db.close()

    def voter_reason(self, who: str) -> str | None:
        addr = self.keys[who].address
        if who not in ("m0", "m1", "m2", "m3"):
            return "governance: caller is not on the council"
        if not self.active[addr]:
            return "governance: council member is suspended"
        return None

    def attempt(self, reason: str | None, call: Any) -> Any:
        if reason is None:
            return call()
        with pytest.raises(LedgerError, match=reason.replace("(", r"\(").replace(")", r"\)")):
            call()
        return None

    def live(self, p: ModelProposal) -> int:
        return sum(1 for a in p.approvals if self.active[a])

    def effect_reason(self, p: ModelProposal) -> str | None:
        """Why the action itself would revert in the registry."""
        if p.action == "register":
            return "registry: already registered" if p.target in self.active else None
        if p.action == "suspend":
            return None if self.active.get(p.target) else "registry: not an active participant"
        return "registry: already active" if self.active.get(p.target) else None

    def apply(self, p: ModelProposal) -> None:
        p.executed = True
        self.active[p.target] = p.action != "suspend"

    @rule(who=st.sampled_from(["m0", "m1", "m2", "m3", "admin", "outsider"]),
          action=st.sampled_from(["register", "suspend", "reactivate"]),
          whom=st.sampled_from(["m1", "m2", "m3", "new"]))  # fmt: skip
    def propose(self, who: str, action: str, whom: str) -> None:
        addr = (Account.create().address if whom == "new" and action == "register"
                else self.keys.get(whom, self.keys["m3"]).address)  # fmt: skip
        key = os.urandom(32) if action == "register" else None
        kind = "patient" if action == "register" else None
        pid = self.attempt(self.voter_reason(who), lambda: self.gov.propose(
            self.keys[who], action, addr, kind=kind, key=key))  # fmt: skip
        if pid is not None:
            self.proposals[pid] = ModelProposal(action, addr, {self.keys[who].address})

    @rule(who=st.sampled_from(["m0", "m1", "m2", "m3", "outsider"]), data=st.data())
    def approve(self, who: str, data: st.DataObject) -> None:
        if not self.proposals:
            return
        pid = data.draw(st.sampled_from(sorted(self.proposals)), label="proposal")
        p = self.proposals[pid]
        me = self.keys[who].address
        reason = self.voter_reason(who)
        if reason is None:
            if p.executed:
                reason = "governance: proposal already executed"
            elif p.expired:
                reason = "governance: proposal expired"
            elif me in p.approvals:
                reason = "governance: already approved"
        executes = False
        if reason is None and self.live(p) + 1 >= THRESHOLD:
            reason = self.effect_reason(p)
            executes = reason is None
        done = self.attempt(reason, lambda: self.gov.approve(self.keys[who], pid))
        if reason is None:
            p.approvals.add(me)
            assert done is executes
            if executes:
                self.apply(p)

    @rule()
    def travel(self) -> None:
        now = self.w3.eth.get_block("latest")["timestamp"]
        self.w3.provider.ethereum_tester.time_travel(now + DEFAULT_VOTING_PERIOD_S + 1)
        for p in self.proposals.values():
            p.expired = True

    @invariant()
    def chain_agrees(self) -> None:
        for addr, active in self.active.items():
            assert self.ledger.is_member(addr) is active
        for pid, p in self.proposals.items():
            got = self.gov.proposal(pid)
            want = "executed" if p.executed else "expired" if p.expired else "pending"
            assert (got.state, got.approvals) == (want, self.live(p))


def test_governance_model() -> None:
    run_state_machine_as_test(GovernanceModel, settings=settings(
        max_examples=8, stateful_step_count=15, deadline=None,
        suppress_health_check=list(HealthCheck)))  # fmt: skip
