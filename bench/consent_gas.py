"""Gas benchmark: what consent costs on chain (share, revoke, request, approve, ...).

Runs an embedded chain in a temporary directory, deploys the network's
contracts, registers a hospital (the issuer), a patient, a research institute
and an insurer, mints one batch of 100 records into the patient, admits a
custodian, and reads every figure from a real transaction receipt's
``gasUsed`` (net of storage refunds, as the chain charges it):

* ``gas``: for each operation, the median (``median_low``: an observed
  value) of ``--reps`` calls made *after* one warm-up call of the same
  operation, i.e. steady state;
* ``first_time``: the warm-up call's gas, listed only where it differs from the
  steady state (typically the first write of a counter: the first grant, the
  first request, the patient's first policy, the recipient's first token);
* ``range``: ``[min, max]`` of the steady-state calls.

The operations, in the order they run (order matters: ``request`` scans the
patient's policies, so the plain requests run while the patient has none):

* ``share_tokens_1`` / ``_10`` / ``_100``: the patient shares 1, 10 or 100 of
  their tokens with the research institute (one storage slot per token);
* ``share_category``: the patient shares a category with the insurer;
* ``revoke``: the patient revokes one of those grants;
* ``request`` / ``request_with_reward``: the research institute asks for one
  token, without and with a reward held in escrow;
* ``approve`` / ``approve_with_reward``: the patient approves them (the second
  pays the reward out to the patient);
* ``decline_with_refund``: the patient declines a rewarded request (refund);
* ``add_policy``: the patient adds a standing policy (the warm-up adds the one
  that matches the research institute, the others match insurers only);
* ``request_auto_approved``: a research request granted at once by the first
  policy; ``extra.request_scanning_policies`` is an insurer's request that
  matches none of them (every policy is read);
* ``log_access``: a custodian logs a key release under a token grant;
* ``transfer``: one ERC-721 ``transferFrom`` of a token, patient to the
  research institute, for comparison;
* ``approve_token``: the patient approves the research institute for one token
  (ERC-721 ``approve``; the approved address must be a member: one registry call);
  ``transfer_by_approved``: the research institute then moves that token to itself
  (the caller, not the owner, must still be a member: one registry call);
* ``set_approval_for_all``: the patient makes the insurer an operator (a member
  only), measured from "not an operator" each time (withdrawn, unmeasured, after);
  ``transfer_by_operator``: the insurer, an operator, moves one of the patient's
  tokens to itself.

And ``extra.amend``, a correction as it is and as it was: ``one_transaction`` is the
hospital's ``amend`` (mints the corrected record as a batch of one *and* supersedes the
old token); ``two_step_baseline`` is the same correction on the token as it was before
(``bench/contracts/HealthRecordTokenTwoStep.vy``, deployed beside it on the same chain
and registry): ``mint_batch`` of one record, then ``supersede(old, new)``, and their
``total``; ``saved`` is total minus one_transaction. The owner's ``approve_amendment``,
the same in both, is not counted.

Prints one JSON object on stdout (progress, if any, goes to stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3.logs import DISCARD

from healthnft.ledger.client import KIND_CODES, Ledger
from healthnft.ledger.compiler import compile_contract
from healthnft.ledger.consent import Consent, category_code, purpose_code
from healthnft.ledger.embedded import embedded_web3
from healthnft.ledger.merkle import build, leaf_hash

BATCH = 100
SHARE_SIZES = (1, 10, 100)
REWARD_WEI = 10**15
YEAR = 365 * 86400
MONTH = 30 * 86400
MINT_GAS = 1_000_000
BENCH_CONTRACTS = Path(__file__).resolve().parent / "contracts"
KEYS = (
    "share_tokens_1",
    "share_tokens_10",
    "share_tokens_100",
    "share_category",
    "revoke",
    "request",
    "request_with_reward",
    "approve",
    "approve_with_reward",
    "decline_with_refund",
    "request_auto_approved",
    "add_policy",
    "log_access",
    "transfer",
    "approve_token",
    "transfer_by_approved",
    "set_approval_for_all",
    "transfer_by_operator",
)


def _gas(receipt: dict) -> int:
    return int(receipt["gasUsed"])


class _Bench:
    """One chain, its participants, and the gas of every measured call."""

    def __init__(self, path: Path, reps: int) -> None:
        self.reps = reps
        self.admin = Account.create()
        self.hospital = Account.create()
        self.patient = Account.create()
        self.research = Account.create()
        self.insurer = Account.create()
        self.custodian = Account.create()
        w3 = embedded_web3(path, {self.admin.address: 10**27})
        self.w3 = w3
        self.ledger = Ledger.deploy(w3, self.admin)
        self.consent = Consent(self.ledger)
        self.c = self.consent.contract
        self.samples: dict[str, list[int]] = {}
        self.first: dict[str, int] = {}

    # -- helpers --------------------------------------------------------------

    def setup(self) -> None:
        ledger, admin = self.ledger, self.admin
        for account, kind in (
            (self.hospital, "hospital"),
            (self.patient, "patient"),
            (self.research, "research"),
            (self.insurer, "insurer"),
        ):
            ledger.register(admin, account.address, kind, os.urandom(32))
        ledger.set_issuer(admin, self.hospital.address)
        for account in (self.hospital, self.patient, self.research, self.insurer, self.custodian):
            ledger.fund(admin, account.address, 10**24)
        self.consent.set_custodian(admin, self.custodian.address)

        start = ledger.next_token_id()
        leaves = [leaf_hash(start + i, os.urandom(32)) for i in range(BATCH)]
        root, _proofs = build(leaves)
        call = ledger.mint_call(self.patient.address, BATCH, start, root)
        ledger.broadcast(ledger.sign(self.hospital, call, gas=MINT_GAS))
        if ledger.balance_of(self.patient.address) != BATCH:
            raise RuntimeError("the batch did not land in the patient's wallet")
        self.tokens = list(range(start, start + BATCH))

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def measure(self, key: str, op: Callable[[int], dict]) -> list[dict]:
        """Run ``op(i)`` once as a warm-up and ``reps`` times more; keep every gasUsed."""
        receipts = [op(i) for i in range(self.reps + 1)]
        self.first[key] = _gas(receipts[0])
        self.samples[key] = [_gas(r) for r in receipts[1:]]
        return receipts

    def tx(self, account: LocalAccount, call: Any, value: int = 0) -> dict:
        return self.ledger.transact(account, call, value=value)

    def grant_id(self, receipt: dict) -> int:
        for ev in self.c.events.GrantCreated().process_receipt(receipt, errors=DISCARD):
            return int(ev["args"]["grant_id"])
        raise RuntimeError("no GrantCreated event")

    def request_id(self, receipt: dict) -> int:
        for ev in self.c.events.AccessRequested().process_receipt(receipt, errors=DISCARD):
            return int(ev["args"]["request_id"])
        raise RuntimeError("no AccessRequested event")

    def state(self, request_id: int) -> str:
        req = self.consent.get_request(request_id)
        return req.state if req else "missing"

    # -- the operations -------------------------------------------------------

    def run(self) -> dict[str, Any]:
        p, research, insurer = self.patient, self.research, self.insurer
        expires = self.now() + YEAR
        research_code = purpose_code("research")

        # Grants of tokens: 1, 10, 100 of the patient's tokens to the research institute.
        token_grants: list[int] = []
        for n in SHARE_SIZES:
            receipts = self.measure(
                f"share_tokens_{n}",
                lambda _i, n=n: self.tx(
                    p,
                    self.c.functions.share_tokens(
                        research.address, self.tokens[:n], research_code, expires, False
                    ),
                ),
            )
            if n == 1:
                token_grants = [self.grant_id(r) for r in receipts]

        # A category to the insurer; then revoke those grants.
        receipts = self.measure(
            "share_category",
            lambda _i: self.tx(
                p,
                self.c.functions.share_category(
                    insurer.address,
                    category_code("laboratory"),
                    purpose_code("insurance"),
                    expires,
                    False,
                ),
            ),
        )
        category_grants = [self.grant_id(r) for r in receipts]
        self.measure("revoke", lambda i: self.tx(p, self.c.functions.revoke(category_grants[i])))
        if not all(self.consent.grant(g).revoked for g in category_grants):
            raise RuntimeError("a revoke did not land")

        # Requests for one token each, while the patient has no policy.
        def ask(i: int, value: int = 0, who: LocalAccount = research, purpose: str = "research"):
            call = self.c.functions.request(
                p.address, self.tokens[i % BATCH], 0, purpose_code(purpose), MONTH
            )
            return self.tx(who, call, value=value)

        plain = [self.request_id(r) for r in self.measure("request", ask)]
        rewarded = [
            self.request_id(r)
            for r in self.measure("request_with_reward", lambda i: ask(i, REWARD_WEI))
        ]
        to_decline = [self.request_id(ask(i, REWARD_WEI)) for i in range(self.reps + 1)]
        if any(self.state(r) != "pending" for r in plain + rewarded + to_decline):
            raise RuntimeError("a request was settled without the patient")

        self.measure("approve", lambda i: self.tx(p, self.c.functions.approve(plain[i], False)))
        before = self.w3.eth.get_balance(p.address)
        receipts = self.measure(
            "approve_with_reward",
            lambda i: self.tx(p, self.c.functions.approve(rewarded[i], False)),
        )
        fees = sum(_gas(r) * int(r["effectiveGasPrice"]) for r in receipts)
        paid = self.w3.eth.get_balance(p.address) - before + fees
        if paid != REWARD_WEI * len(rewarded):
            raise RuntimeError(f"approvals paid out {paid} wei, not {REWARD_WEI} each")
        before = self.w3.eth.get_balance(research.address)
        self.measure(
            "decline_with_refund",
            lambda i: self.tx(p, self.c.functions.decline(to_decline[i])),
        )
        if self.w3.eth.get_balance(research.address) - before != REWARD_WEI * len(to_decline):
            raise RuntimeError("declines did not refund every reward")
        if any(self.state(r) != "approved" for r in plain + rewarded):
            raise RuntimeError("an approval did not land")

        # Policies: the warm-up is the one research requests match; the rest are
        # for insurers, for treatment only, so an insurance request matches none.
        valid_until = self.now() + YEAR

        def policy(i: int) -> dict:
            kind, purpose = ("research", "research") if i == 0 else ("insurer", "treatment")
            call = self.c.functions.add_policy(
                KIND_CODES[kind], 0, purpose_code(purpose), YEAR, False, valid_until
            )
            return self.tx(p, call)

        self.measure("add_policy", policy)
        policies = int(self.c.functions.policy_count(p.address).call())
        auto = [self.request_id(r) for r in self.measure("request_auto_approved", ask)]
        if any(self.state(r) != "approved" for r in auto):
            raise RuntimeError("a request matching a policy was not approved at once")
        scanning = self.measure(
            "request_scanning_policies",
            lambda i: ask(i, who=insurer, purpose="insurance"),
        )
        if any(self.state(self.request_id(r)) != "pending" for r in scanning):
            raise RuntimeError("an insurance request matched a policy it should not")

        # A custodian logs key releases under the one-token grants.
        self.measure(
            "log_access",
            lambda i: self.tx(
                self.custodian,
                self.c.functions.log_access(token_grants[i], self.tokens[0]),
            ),
        )

        # For comparison: an ERC-721 transfer of one token (the last ones of the batch).
        token = self.ledger.token
        self.measure(
            "transfer",
            lambda i: self.tx(
                p,
                token.functions.transferFrom(p.address, research.address, self.tokens[-1 - i]),
            ),
        )
        if self.ledger.balance_of(research.address) != self.reps + 1:
            raise RuntimeError("the transfers did not all land")
        self.approvals()
        self.amendments()
        return {"policies_scanned": policies}

    def approvals(self) -> None:
        """ERC-721 approvals (to members only) and transfers by the approved or an operator,
        each on tokens of its own (the batch's last ones, clear of the other operations)."""
        p, research, insurer = self.patient, self.research, self.insurer
        fns = self.ledger.token.functions
        approved = self.tokens[-20 - self.reps - 1 : -20][::-1]
        by_operator = self.tokens[-40 - self.reps - 1 : -40][::-1]
        self.measure("approve_token",
                     lambda i: self.tx(p, fns.approve(research.address, approved[i])))  # fmt: skip
        self.measure("transfer_by_approved", lambda i: self.tx(
            research, fns.transferFrom(p.address, research.address, approved[i])))  # fmt: skip

        def grant_operator(_i: int) -> dict:
            receipt = self.tx(p, fns.setApprovalForAll(insurer.address, True))
            self.tx(p, fns.setApprovalForAll(insurer.address, False))
            return receipt

        self.measure("set_approval_for_all", grant_operator)
        self.tx(p, fns.setApprovalForAll(insurer.address, True))
        self.measure("transfer_by_operator", lambda i: self.tx(
            insurer, fns.transferFrom(p.address, insurer.address, by_operator[i])))  # fmt: skip
        if self.ledger.balance_of(insurer.address) != self.reps + 1:
            raise RuntimeError("the operator's transfers did not all land")

    def amendments(self) -> None:
        """A correction of one of the patient's tokens: ``amend`` (one transaction) here,
        ``mint_batch`` + ``supersede`` on the two-step baseline token."""
        ledger, p, hospital = self.ledger, self.patient, self.hospital
        token = ledger.token

        def amend(i: int) -> dict:
            old = self.tokens[i]
            self.tx(p, token.functions.approve_amendment(old, hospital.address))
            call = ledger.amend_call(old, ledger.next_token_id(), os.urandom(32))
            return self.tx(hospital, call)

        receipts = self.measure("amend", amend)
        if [old for r in receipts for old, _ in ledger.superseded_in(r)] != self.tokens[
            : self.reps + 1
        ]:
            raise RuntimeError("an amend did not supersede its token")

        old_kind = compile_contract("HealthRecordTokenTwoStep", source_dir=BENCH_CONTRACTS)
        address = ledger.deploy_contract(self.admin, old_kind.abi, old_kind.bytecode,
                                         [ledger.registry.address])  # fmt: skip
        two_step = self.w3.eth.contract(address=address, abi=old_kind.abi)
        first = self.batch_on(two_step, self.reps + 1)
        new_ids: list[int] = []

        def mint_one(_i: int) -> dict:
            new_ids.append(int(two_step.functions.next_token_id().call()))
            return self.batch_on(two_step, 1, receipt=True)

        def supersede(i: int) -> dict:
            old = first + i
            self.tx(p, two_step.functions.approve_amendment(old, hospital.address))
            return self.tx(hospital, two_step.functions.supersede(old, new_ids[i]))

        self.measure("two_step_mint_one", mint_one)
        self.measure("two_step_supersede", supersede)
        if any(int(two_step.functions.superseded_by(first + i).call()) != new
               for i, new in enumerate(new_ids)):  # fmt: skip
            raise RuntimeError("a supersede did not land on the baseline token")

    def batch_on(self, contract: Any, count: int, receipt: bool = False) -> Any:
        """Mint ``count`` records to the patient on ``contract``; the first id (or receipt)."""
        start = int(contract.functions.next_token_id().call())
        root, _ = build([leaf_hash(start + i, os.urandom(32)) for i in range(count)])
        call = contract.functions.mint_batch(self.patient.address, count, start, root)
        done = self.ledger.broadcast(self.ledger.sign(self.hospital, call, gas=MINT_GAS))
        return done if receipt else start


def run(reps: int = 5) -> dict[str, Any]:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="healthnft-consent-gas-") as tmp:
        bench = _Bench(Path(tmp) / "chain.sqlite", reps)
        bench.setup()
        info = bench.run()

    median = {k: int(statistics.median_low(v)) for k, v in bench.samples.items()}
    first = {k: g for k, g in bench.first.items() if g != median[k]}
    return {
        "gas": {k: median[k] for k in KEYS},
        "first_time": {k: first[k] for k in KEYS if k in first},
        "range": {k: [min(bench.samples[k]), max(bench.samples[k])] for k in KEYS},
        "per_token": {
            "share_tokens_marginal": round(
                (median["share_tokens_100"] - median["share_tokens_1"]) / 99, 1
            ),
        },
        "extra": {
            "amend": {
                "one_transaction": median["amend"],
                "two_step_baseline": {
                    "mint_one": median["two_step_mint_one"],
                    "supersede": median["two_step_supersede"],
                    "total": median["two_step_mint_one"] + median["two_step_supersede"],
                },
                "saved": median["two_step_mint_one"] + median["two_step_supersede"]
                - median["amend"],
            },
            "request_scanning_policies": {
                "policies": info["policies_scanned"],
                "gas": median["request_scanning_policies"],
                "first_time": bench.first["request_scanning_policies"],
            },
        },
        "reps": reps,
        "reward_wei": REWARD_WEI,
        "runtime_s": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(
            "Measure gasUsed of the consent operations (share 1/10/100 tokens, share a "
            "category, revoke, request with and without a reward, approve, decline with "
            "a refund, policy auto-approval, add_policy, log_access) and of ERC-721 "
            "transfers and approvals, on an embedded chain; prints one JSON object."
        )
    )
    parser.add_argument(
        "--reps",
        type=int,
        default=5,
        metavar="N",
        help="steady-state calls per operation, after one warm-up call (default: 5; 1..15)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.reps <= 15:
        # add_policy makes reps + 1 policies; the contract holds at most 16 per patient.
        parser.error("--reps must be between 1 and 15 (a patient holds at most 16 policies)")
    json.dump(run(args.reps), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
