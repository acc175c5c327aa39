"""Guardian recovery end to end in the CLI, on the embedded chain (issue 14, point 4).

A demo patient with records names three guardians (a relative, a doctor, a recovery
service), two of whom must agree. Two colluding guardians try to take the account and
the old key cancels them inside the delay. Later the patient loses the key: guardians
propose and approve, the delay passes, the recovery executes, the custodians release
every record's key to the new key (checking the executed recovery on chain), and the
new key opens every record while the old one opens none. Executing too early or without
enough approvals is refused with one clear line.

One home for the module (a copy of the session's demo home); the tests run in order.
Time moves on the home's own chain file between commands, as the tests of the contract
move it (``time_travel``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import host_demo_patients, one_error_line, run_cli, run_cli_json
from healthnft.errors import (
    AccessDenied,
    Conflict,
    CredentialRejected,
    InvalidInput,
    NotFound,
    UnknownParticipant,
)
from healthnft.home import Home
from healthnft.ledger.recovery import DEFAULT_DELAY_S

DELAY = DEFAULT_DELAY_S  # what `healthnft init` installs: 48 h


def travel(home: Path, seconds: int) -> None:
    """Move the home's chain ``seconds`` ahead (no command runs meanwhile); its latest
    block then carries that time (``time_travel`` lands one second short)."""
    from healthnft.ledger.embedded import embedded_web3

    w3 = embedded_web3(home / "chain.sqlite", create=False)
    try:
        now = int(w3.eth.get_block("latest")["timestamp"])
        w3.provider.ethereum_tester.time_travel(now + seconds + 1)
    finally:
        w3.provider.ethereum_tester.backend.db.close()


@pytest.fixture(scope="module")
def cast(demo_home: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> dict:
    src, summary = demo_home
    home = tmp_path_factory.mktemp("recovery") / "home"
    shutil.copytree(src, home)
    # A key that can be lost: the demo's patients' keys come from its public seed, so
    # here they are hosted in the home instead (its keystore folder stands for alice's
    # phone, and the CLI derives none).
    files = Home(home)
    files.write_config({k: v for k, v in files.read_config().items()
                        if k != "demo_patient_keys"})  # fmt: skip
    host_demo_patients(home)
    by_size = sorted(summary["patients"], key=lambda p: p["records"])
    alice = by_size[0]["address"]
    people = {"alice": alice, "bob": by_size[1]["address"], "home": home}
    for name, kind in [("relative", "patient"), ("dr-lee", "hospital"),
                       ("recovery-service", "research")]:  # fmt: skip
        people[name] = run_cli_json(home, "participant", "add", "--kind", kind,
                                    "--name", name)["address"]  # fmt: skip
    view = run_cli_json(home, "recovery", "guardians", alice, "--guardian", "relative",
                        "--guardian", "dr-lee", "--guardian", "recovery-service",
                        "--threshold", "2")  # fmt: skip
    assert view["change"] == "applied" and view["threshold"] == 2
    assert [g["name"] for g in view["guardians"]] == ["relative", "dr-lee", "recovery-service"]
    again = run_cli_json(home, "recovery", "guardians", alice, "--guardian", "relative",
                         "--guardian", "dr-lee", "--guardian", "recovery-service",
                         "--threshold", "2")  # fmt: skip
    assert again["change"] == "unchanged"  # retry-safe: nothing sent twice
    people["records"] = sorted(r["token_id"] for r in run_cli_json(
        home, "wallet", "list", "--owner", alice))  # fmt: skip
    assert people["records"]
    return people


@pytest.mark.parametrize("args, error, says", [
    (["guardians", "{alice}", "--guardian", "nobody", "--threshold", "1"], InvalidInput,
     "--guardian must be a 0x… address or the name of a participant of this home"),
    (["guardians", "{alice}", "--guardian", "relative", "--threshold", "2"], InvalidInput,
     "--threshold must be from 1 to 1 (the guardians named)"),
    (["guardians", "{alice}", "--guardian", "relative", "--guardian", "relative",
      "--threshold", "1"], InvalidInput, "a guardian is named twice"),
    (["guardians", "{alice}", "--guardian", "relative"], InvalidInput,
     "give --threshold: how many of the guardians must agree"),
    (["guardians", "relative", "--guardian", "{alice}", "--threshold", "1", "--passphrase",
      "wrong"], CredentialRejected, "wrong passphrase for the keystore of "),
    (["guardians", "dr-lee", "--guardian", "relative", "--threshold", "1"], InvalidInput,
     "only a patient names guardians"),
    (["propose", "{alice}", "dr-lee", "--as", "relative"], Conflict, "is already registered"),
    (["propose", "{alice}", "0x" + "ab" * 20, "--as", "relative"], InvalidInput,
     "the new address's public keys are not known in this home"),
    (["propose", "{alice}", "0x" + "ab" * 20, "--as", "relative", "--enc-key", "12"],
     InvalidInput, "give --enc-key and --did-key together"),
    (["propose", "{alice}", "0x" + "ab" * 20, "--as", "relative", "--enc-key", "zz",
      "--did-key", "00" * 32], InvalidInput, "--enc-key must be a 32-byte public key"),
    (["approve", "0", "--as", "relative"], NotFound, "no recovery #0"),
    (["approve", "one", "--as", "relative"], InvalidInput, "invalid value for"),
    (["execute", "77"], NotFound, "no recovery #77"),
])  # fmt: skip
def test_bad_input_is_one_clear_line(cast: dict, args: list[str], error: type,
                                     says: str) -> None:  # fmt: skip
    argv = [a.format(alice=cast["alice"]) for a in args]
    line = one_error_line(run_cli(cast["home"], "recovery", *argv), error)
    assert says in line and "Traceback" not in line


def test_colluding_guardians_are_stopped_by_the_old_keys_cancel(cast: dict) -> None:
    home, alice = cast["home"], cast["alice"]
    thief = run_cli_json(home, "recovery", "new-key", "--name", "thief-phone")["address"]
    rid = run_cli_json(home, "recovery", "propose", alice, thief, "--as", "relative")
    assert rid["state"] == "open" and rid["approvals"] == 1 and rid["done"] == "proposed"
    rid = run_cli_json(home, "recovery", "approve", str(rid["recovery_id"]), "--as",
                       "recovery-service")  # fmt: skip
    assert rid["executable_at"] > 0 and [p["name"] for p in rid["approved_by"]] == [
        "relative", "recovery-service"]  # fmt: skip
    travel(home, DELAY // 2)
    line = run_cli(home, "recovery", "status", str(rid["recovery_id"]), check=True).stdout
    assert "may execute from" in line and "the old key may cancel it" in line
    cancelled = run_cli_json(home, "recovery", "cancel", str(rid["recovery_id"]))
    assert cancelled["state"] == "cancelled" and cancelled["done"] == "cancelled"
    assert run_cli_json(home, "recovery", "cancel", str(rid["recovery_id"]))["done"] == "unchanged"
    travel(home, DELAY)
    refused = run_cli(home, "recovery", "execute", str(rid["recovery_id"]))
    assert one_error_line(refused, Conflict) == (
        f"error: recovery #{rid['recovery_id']} is cancelled: nothing more can be done with it")
    rows = run_cli_json(home, "wallet", "list", "--owner", alice)
    assert sorted(r["token_id"] for r in rows) == cast["records"]


def test_execute_needs_enough_guardians_and_the_delay(cast: dict) -> None:
    home, alice = cast["home"], cast["alice"]
    new = run_cli_json(home, "recovery", "new-key", "--name", "alice-phone")["address"]
    cast["new"] = new
    rid = run_cli_json(home, "recovery", "propose", alice, "alice-phone", "--as", "relative")
    n = rid["recovery_id"]
    cast["rid"] = n
    # A retried proposal by the same guardian opens nothing new.
    again = run_cli_json(home, "recovery", "propose", alice, new, "--as", "relative")
    assert again["recovery_id"] == n and again["done"] == "unchanged"
    travel(home, DELAY * 3)
    refused = run_cli(home, "recovery", "execute", str(n))
    assert one_error_line(refused, Conflict) == (
        f"error: recovery #{n} has 1 of the 2 guardian approvals it needs: it cannot execute")
    stranger = run_cli(home, "recovery", "approve", str(n), "--as", new)
    assert "is not a guardian of" in one_error_line(stranger, AccessDenied)
    run_cli_json(home, "recovery", "approve", str(n), "--as", "dr-lee")
    early = run_cli(home, "recovery", "execute", str(n))
    line = one_error_line(early, Conflict)
    assert line.startswith(f"error: recovery #{n} is still in its delay: it may execute from ")
    assert line.endswith("until then the old key may cancel it")
    missing = run_cli(home, "recovery", "status", "999")
    assert one_error_line(missing, NotFound) == "error: no recovery #999"
    listed = run_cli_json(home, "recovery", "status", "--patient", alice)
    assert [v["state"] for v in listed] == ["open", "cancelled"]


def test_lost_key_recovered_and_every_record_opens_with_the_new_key(
    cast: dict, tmp_path: Path
) -> None:
    home, alice, new, n = cast["home"], cast["alice"], cast["new"], cast["rid"]
    # Alice loses her phone: her key is gone from the home (kept aside to try it later).
    lost = next((home / "keystore").glob(f"{alice}.json"))
    aside = tmp_path / lost.name
    shutil.move(lost, aside)
    travel(home, DELAY)
    done = run_cli_json(home, "recovery", "execute", str(n), timeout=600)
    assert done["state"] == "executed" and done["done"] == "executed"
    assert sorted(done["records_rekeyed"]) == cast["records"] and done["records_pending"] == []
    # Retry-safe: running it again finds everything done.
    again = run_cli_json(home, "recovery", "execute", str(n))
    assert again["done"] == "unchanged" and again["records_rekeyed"] == []
    # The new key lists every record, and opens every one (through the CLI for a few,
    # the same service for all).
    rows = run_cli_json(home, "wallet", "list", "--owner", new)
    assert sorted(r["token_id"] for r in rows) == cast["records"]
    for token in cast["records"][:3]:
        shown = run_cli_json(home, "wallet", "show", str(token))
        assert shown["token_id"] == token and shown["resource"]["resourceType"]
    checked = run_cli(home, "verify", str(cast["records"][0]), check=True)
    assert checked.stdout.startswith("valid: authentic")
    doctor = run_cli(home, "doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    # The old key, found again, opens nothing and cancels nothing.
    shutil.move(aside, lost)
    _opens_all(home, new, alice, cast["records"])
    _custodians_release_only_to_the_recovered_owner(home, new, alice, cast["bob"],
                                                    cast["records"][0])
    refused = run_cli(home, "open", str(cast["records"][0]), "--as", alice)
    assert "is not a registered participant" in one_error_line(refused, UnknownParticipant)
    late = run_cli(home, "recovery", "cancel", str(n))
    assert one_error_line(late, Conflict) == (
        f"error: recovery #{n} is executed: it can no longer be cancelled")


def _opens_all(home: Path, new: str, old: str, tokens: list[int]) -> None:
    """Every record opens with the new key; the old key holds no key to any of them
    (asked of the wallet itself, below the registry's refusal)."""
    from healthnft.network import Network
    from healthnft.services import records

    net = Network.open(home)
    net.remember_keys = True
    try:
        old_key = net.identity(old)
        # The chain alone (tokens minted to the old address, OwnerRecovered) gives them to
        # the new one: what a home that does not hold the records lists.
        assert records._owned_on_chain(net, new) == tokens
        for token in tokens:
            assert records.open_record(net, new, token).token_id == token
            row = net.catalog.catalogue.record(token)
            assert row.owner == new
            with pytest.raises(AccessDenied, match="holds no key"):
                net.wallet().decrypt_row(row, old_key)
    finally:
        net.close()


def _custodians_release_only_to_the_recovered_owner(home: Path, new: str, old: str, bob: str,
                                                    token: int) -> None:  # fmt: skip
    """A custodian asked under no grant (RECOVERED_OWNER) releases to the account a
    recovery made and that owns the token now; not to an owner never recovered, not to
    anyone for a token they do not own, not to the old key."""
    from healthnft.consent.custodian import RECOVERED_OWNER
    from healthnft.credentials.presentation import create_presentation
    from healthnft.network import Network

    net = Network.open(home)
    try:
        custodian = net.custodian_services()[0]

        def ask(address: str, token_id: int) -> bytes:
            who = net.identity(address)
            vp = create_presentation(who.did_private, who.did, [],
                                     challenge=custodian.challenge(), domain=custodian.domain)
            return custodian.release(token_id, RECOVERED_OWNER, who.address, vp)

        assert ask(new, token)
        bobs = net.catalog.catalogue.records_of(bob)[0].token_id
        for who, token_id in [(bob, bobs), (bob, token), (old, token)]:
            with pytest.raises(AccessDenied, match="is not its recovered owner"):
                ask(who, token_id)
    finally:
        net.close()
