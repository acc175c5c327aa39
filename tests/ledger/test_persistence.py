"""The embedded chain survives a restart, and re-opening it does not replay history.

Acceptance: "after a restart every token, owner and root is still there, and
start-up time does not grow with the number of blocks". Checks run in a new
process, so nothing can come from memory of the process that wrote the chain.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from eth_account import Account

from conftest import REPO, run_cli
from healthnft.ledger.client import Ledger
from healthnft.ledger.embedded import embedded_web3

# Runs in a fresh interpreter: reopen the chain, report what it holds, optionally mint
# one more batch (proving the reopened chain still takes transactions).
_INSPECT = textwrap.dedent(
    """
    import json, sys
    from eth_account import Account
    from healthnft.ledger.client import Ledger
    from healthnft.ledger.embedded import embedded_web3

    args = json.loads(sys.stdin.read())
    w3 = embedded_web3(__import__("pathlib").Path(args["db"]))
    ledger = Ledger(w3, args["registry"], args["token"])
    nxt = ledger.next_token_id()
    out = {
        "block_number": w3.eth.block_number,
        "head_hash": bytes(w3.eth.get_block("latest")["hash"]).hex(),
        "next_token_id": nxt,
        "owners": {str(t): ledger.owner_of(t) for t in range(1, nxt)},
        "batches": [
            [b.owner, b.start, b.end, b.root.hex()]
            for b in map(ledger.batch, range(ledger.batch_count()))
        ],
        "balances": {a: ledger.balance_of(a) for a in args["holders"]},
        "members": {a: ledger.is_member(a) for a in args["holders"]},
        "issuer": ledger.is_issuer(args["issuer"]),
    }
    if args.get("mint"):
        hospital = Account.from_key(bytes.fromhex(args["mint"]["key"]))
        root = bytes.fromhex(args["mint"]["root"])
        call = ledger.mint_call(args["mint"]["to"], args["mint"]["count"], nxt, root)
        out["minted_status"] = ledger.transact(hospital, call)["status"]
    w3.provider.ethereum_tester.backend.db.close()
    print(json.dumps(out))
    """
)

# Times re-opening the chain up to a first read (after imports): the best of a few opens.
_TIME_OPEN = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from healthnft.ledger.embedded import embedded_web3

    best, number = None, None
    for _ in range(5):
        t0 = time.perf_counter()
        w3 = embedded_web3(Path(sys.argv[1]))
        number = w3.eth.block_number
        w3.eth.get_block("latest")  # the head block and
        w3.eth.get_balance(w3.eth.default_account)  # its state are readable
        elapsed = time.perf_counter() - t0
        w3.provider.ethereum_tester.backend.db.close()
        best = elapsed if best is None else min(best, elapsed)
    print(json.dumps({"seconds": best, "block_number": number}))
    """
)


def _python(script: str, *argv: str, stdin: str = "") -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", script, *argv],
        input=stdin, capture_output=True, text=True, cwd=str(REPO), timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _close(w3) -> None:
    w3.provider.ethereum_tester.backend.db.close()


def test_tokens_owners_and_roots_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "chain.sqlite"
    admin, hospital, alice, bob = (Account.create() for _ in range(4))
    w3 = embedded_web3(db, {admin.address: 10**27})
    ledger = Ledger.deploy(w3, admin)
    ledger.register(admin, hospital.address, "hospital", os.urandom(32))
    ledger.set_issuer(admin, hospital.address)
    ledger.fund(admin, hospital.address, 10**20)
    ledger.fund(admin, alice.address, 10**20)
    for patient in (alice, bob):
        ledger.register(admin, patient.address, "patient", os.urandom(32))
    expected_batches = []
    for size, owner in ((5, alice), (17, bob), (1, alice), (40, bob), (3, alice)):
        start, root = ledger.next_token_id(), os.urandom(32)
        ledger.transact(hospital, ledger.mint_call(owner.address, size, start, root))
        expected_batches.append([owner.address, start, start + size, root.hex()])
    # One token leaves its batch: its own owner must survive too.
    ledger.transact(alice, ledger.token.functions.transferFrom(alice.address, bob.address, 2))
    expected_owners = {
        str(t): ledger.owner_of(t) for t in range(1, ledger.next_token_id())
    }
    assert expected_owners["2"] == bob.address
    before = {
        "block_number": w3.eth.block_number,
        "head_hash": bytes(w3.eth.get_block("latest")["hash"]).hex(),
        "balances": {a.address: ledger.balance_of(a.address) for a in (alice, bob)},
    }
    assert before["balances"] == {alice.address: 8, bob.address: 58}
    registry, token = ledger.registry.address, ledger.token.address
    _close(w3)
    del w3, ledger

    args = {
        "db": str(db),
        "registry": registry,
        "token": token,
        "holders": [alice.address, bob.address],
        "issuer": hospital.address,
        "mint": {"key": hospital.key.hex().removeprefix("0x"), "to": alice.address,
                 "count": 4, "root": "ab" * 32},
    }  # fmt: skip
    after = _python(_INSPECT, stdin=json.dumps(args))
    assert after["block_number"] == before["block_number"]
    assert after["head_hash"] == before["head_hash"]
    assert after["next_token_id"] == 67
    assert after["owners"] == expected_owners
    assert after["batches"] == expected_batches
    assert after["balances"] == before["balances"]
    assert after["members"] == {alice.address: True, bob.address: True}
    assert after["issuer"] is True
    assert after["minted_status"] == 1

    # What the second process wrote is there for a third.
    args.pop("mint")
    again = _python(_INSPECT, stdin=json.dumps(args))
    assert again["block_number"] == before["block_number"] + 1
    assert again["next_token_id"] == 71
    assert again["batches"] == [*expected_batches, [alice.address, 67, 71, "ab" * 32]]
    assert again["balances"] == {alice.address: 12, bob.address: 58}
    assert {t: again["owners"][t] for t in expected_owners} == expected_owners


def test_start_up_time_does_not_grow_with_history(tmp_path: Path) -> None:
    db = tmp_path / "chain.sqlite"
    admin, hospital, patient = (Account.create() for _ in range(3))
    w3 = embedded_web3(db, {admin.address: 10**27})
    ledger = Ledger.deploy(w3, admin)
    ledger.register(admin, hospital.address, "hospital", os.urandom(32))
    ledger.set_issuer(admin, hospital.address)
    ledger.register(admin, patient.address, "patient", os.urandom(32))
    ledger.fund(admin, hospital.address, 10**20)
    for size in (3, 9, 27):
        call = ledger.mint_call(patient.address, size, ledger.next_token_id(), os.urandom(32))
        ledger.transact(hospital, call)
    early_blocks = w3.eth.block_number
    _close(w3)
    early = _python(_TIME_OPEN, str(db))
    assert early["block_number"] == early_blocks

    w3 = embedded_web3(db)
    ledger = Ledger(w3, ledger.registry.address, ledger.token.address)
    for _ in range(400):  # one block each
        ledger.fund(admin, patient.address, 1)
    late_blocks = w3.eth.block_number
    assert late_blocks >= early_blocks + 400
    _close(w3)
    late = _python(_TIME_OPEN, str(db))
    assert late["block_number"] == late_blocks

    print(
        f"\nopen time: {early['seconds'] * 1000:.1f} ms at {early_blocks} blocks, "
        f"{late['seconds'] * 1000:.1f} ms at {late_blocks} blocks"
    )
    assert late["seconds"] < 3 * early["seconds"] + 0.05

    # And the long history is intact after the restart.
    w3 = embedded_web3(db)
    try:
        ledger = Ledger(w3, ledger.registry.address, ledger.token.address)
        assert ledger.next_token_id() == 40
        assert ledger.balance_of(patient.address) == 39
        assert w3.eth.get_balance(patient.address) == 400
        assert len(w3.eth.get_block(early_blocks + 1)["transactions"]) == 1
    finally:
        _close(w3)


def test_a_new_cli_process_lists_every_demo_record(fresh_demo_home: tuple[Path, dict]) -> None:
    home, summary = fresh_demo_home
    assert summary["patients"], "the demo minted nothing"
    seen: list[int] = []
    for patient in summary["patients"]:
        proc = run_cli(home, "wallet", "list", "--owner", patient["address"], "--json",
                       check=True)  # fmt: skip
        rows = json.loads(proc.stdout)
        assert len(rows) == patient["records"] > 0
        seen.extend(r["token_id"] for r in rows)
    assert sorted(seen) == list(range(1, summary["records_minted"] + 1))
    # Re-running the demo on the restarted home mints nothing and reports the same.
    again = json.loads(run_cli(home, "demo", "--data", summary["data"], "--json",
                               check=True).stdout)  # fmt: skip
    assert again["new_this_run"] == 0
    assert again["records_minted"] == summary["records_minted"]
    assert again["patients"] == summary["patients"]


# -- a home whose chain is gone is refused, never given a new empty chain (issue #12) ------

# Each with what it used to do once chain.sqlite was deleted: every read answered
# "internal error (BadFunctionCallOutput)" and a fresh genesis was written in its place.
_LOST_CHAIN_COMMANDS = (
    ("wallet", "list", "--owner", "{patient}"),
    ("verify", "1"),
    ("participant", "list"),
    ("demo", "--data", "{data}", "--json"),  # would have deployed a second network
)


def _refused_as_chain_missing(proc: subprocess.CompletedProcess, why: str) -> None:
    from healthnft.errors import ChainMissing

    lines = proc.stderr.splitlines()
    assert proc.returncode == ChainMissing.exit_code == 12, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "chain.sqlite" in lines[0] and why in lines[0] and "restore" in lines[0], lines[0]
    assert "internal error" not in proc.stderr


def test_a_home_whose_chain_file_was_deleted_is_refused(fresh_demo_home) -> None:
    home, summary = fresh_demo_home
    for leftover in home.glob("chain.sqlite*"):
        leftover.unlink()
    values = {"patient": summary["patients"][0]["address"], "data": summary["data"]}
    for command in _LOST_CHAIN_COMMANDS:
        proc = run_cli(home, *(arg.format(**values) for arg in command))
        _refused_as_chain_missing(proc, "is missing")
        assert not list(home.glob("chain.sqlite*")), f"{command[0]} wrote a new chain"


def test_a_home_whose_chain_holds_no_contracts_is_refused(fresh_demo_home) -> None:
    """A chain file replaced by another (here: a new, empty chain) is not this home's."""
    home, summary = fresh_demo_home
    for leftover in home.glob("chain.sqlite*"):
        leftover.unlink()
    w3 = embedded_web3(home / "chain.sqlite", {})
    _close(w3)
    proc = run_cli(home, "wallet", "list", "--owner", summary["patients"][0]["address"])
    _refused_as_chain_missing(proc, "no code at the contract addresses")
    # And an empty file is not a chain either (nothing is minted into it).
    for leftover in home.glob("chain.sqlite*"):
        leftover.unlink()
    (home / "chain.sqlite").touch()
    proc = run_cli(home, "demo", "--data", summary["data"], "--json")
    _refused_as_chain_missing(proc, "holds no chain")


def test_a_home_deployed_by_other_contracts_is_refused(fresh_demo_home) -> None:
    """Contracts changed since the home was made (one-transaction amend; approvals to
    members only): its config's fingerprint no longer matches, and it is refused."""
    from healthnft.errors import Conflict
    from healthnft.home import Home

    home, summary = fresh_demo_home
    Home(home).update_config(contracts="0123456789abcdef")  # what an older healthnft wrote
    proc = run_cli(home, "wallet", "list", "--owner", summary["patients"][0]["address"])
    assert proc.returncode == Conflict.exit_code, proc.stderr
    assert proc.stderr.startswith("error: ") and len(proc.stderr.splitlines()) == 1
    assert "deployed by another version of healthnft's contracts" in proc.stderr
