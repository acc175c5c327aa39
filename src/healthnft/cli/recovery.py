"""Guardian recovery: guardians move a patient's lost account, and its records, to a new key."""

from __future__ import annotations

from typing import Annotated

import typer

from healthnft.cli.common import JsonOpt, PassOpt, app, emit, network, out, say
from healthnft.services import recovery

recovery_app = typer.Typer(
    help="Guardian recovery: a patient names guardians; if the key is lost, k of them move "
    "the account and every record to a new key, after a delay in which the old key may "
    "cancel.",
    no_args_is_help=True,
)
app.add_typer(recovery_app, name="recovery")

IdArg = Annotated[int, typer.Argument(help="The recovery's number (see `recovery status`).")]
AsGuardian = Annotated[str, typer.Option(
    "--as", help="The guardian acting (address or name; its key is in this home).")]


@recovery_app.command("guardians")
def recovery_guardians(
    patient: Annotated[str, typer.Argument(help="The patient (address or name; its key "
                                           "in this home signs).")],
    guardian: Annotated[list[str] | None, typer.Option(
        "--guardian", help="A guardian: a registered member's address or name (repeat, "
        "1 to 8). Without any, show the guardians in force.")] = None,
    threshold: Annotated[int | None, typer.Option(
        help="How many guardians must agree to a recovery.")] = None,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Name a patient's guardians and how many must agree (or show them).

    The first set applies at once; a later change waits the recovery delay (so a thief
    holding the key cannot swap the guardians under a recovery)."""
    if not guardian:
        if threshold is not None:
            from healthnft.errors import InvalidInput

            raise InvalidInput("--threshold goes with --guardian")
        with network(write=False) as net:
            view = recovery.guardians(net, patient)
    else:
        if threshold is None:
            from healthnft.errors import InvalidInput

            raise InvalidInput("give --threshold: how many of the guardians must agree")
        with network() as net:
            view = recovery.set_guardians(net, patient, guardian, threshold, passphrase)
    say(as_json, view.as_dict(), view.text)


@recovery_app.command("new-key")
def recovery_new_key(
    name: Annotated[str, typer.Option(help="What this home calls the new key (stays here).")],
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make the new key of a patient who lost theirs (on the new device).

    Registered nowhere until a recovery executes; give its address and public keys to a
    guardian, who proposes the recovery."""
    with network() as net:
        key = recovery.new_key(net, name, passphrase)
    if as_json:
        emit(key.as_dict())
        return
    out.print(f"new key {key.name}: {key.address}")
    out.print(f"  encryption key {key.encryption_key}")
    out.print(f"  DID key        {key.did_key}")
    out.print("give these to a guardian: healthnft recovery propose OLD "
              f"{key.address} --as GUARDIAN --enc-key … --did-key …")


@recovery_app.command("propose")
def recovery_propose(
    old: Annotated[str, typer.Argument(help="The patient whose key is lost (address or name).")],
    new: Annotated[str, typer.Argument(help="The patient's new address (or name), not "
                                       "registered yet.")],
    guardian: AsGuardian,
    enc_key: Annotated[str | None, typer.Option(
        help="The new X25519 encryption key (hex); default: read from NEW's key in this "
        "home.")] = None,
    did_key: Annotated[str | None, typer.Option(
        help="The new Ed25519 DID key (hex), with --enc-key: custodians know the new key "
        "by it.")] = None,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Propose moving a patient's account to a new address (a guardian; counts as its approval).

    Proposing a recovery that is already open approves it instead: nothing opens twice."""
    with network() as net:
        view = recovery.propose(net, guardian, old, new, enc_key=enc_key, did_key=did_key,
                                passphrase=passphrase)  # fmt: skip
    say(as_json, view.as_dict(), view.text)


@recovery_app.command("approve")
def recovery_approve(
    recovery_id: IdArg, guardian: AsGuardian, passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Approve a recovery as a guardian (the approval reaching the threshold starts the delay)."""
    with network() as net:
        view = recovery.approve(net, guardian, recovery_id, passphrase)
    say(as_json, view.as_dict(), view.text)


@recovery_app.command("cancel")
def recovery_cancel(recovery_id: IdArg, passphrase: PassOpt = None,
                    as_json: JsonOpt = False) -> None:  # fmt: skip
    """Stop a recovery of your own account (the old key, before it executes).

    Refused once every guardian approved it (with more guardians than the threshold)."""
    with network() as net:
        view = recovery.cancel(net, recovery_id, passphrase)
    say(as_json, view.as_dict(), view.text)


@recovery_app.command("execute")
def recovery_execute(
    recovery_id: IdArg,
    sender: Annotated[str | None, typer.Option(
        "--as", help="Who sends it (anyone may; default: a guardian, the admin or the new "
        "key held here).")] = None,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Carry out an approved recovery after its delay, then re-key the records for the new key.

    The new address becomes the patient, owns every token and keeps every grant and
    policy; each record's key comes back through the custodians and is re-sealed for
    the new key. Running it again only finishes what is left."""
    with network() as net:
        view = recovery.execute(net, recovery_id, sender, passphrase)
    say(as_json, view.as_dict(), view.text)


@recovery_app.command("status")
def recovery_status(
    recovery_id: Annotated[int | None, typer.Argument(
        help="One recovery; default: every recovery, newest first.")] = None,
    patient: Annotated[str | None, typer.Option(
        help="Only this patient's recoveries (old or new address, or name).")] = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Where recoveries stand: approvals, when each may execute, executed or cancelled."""
    with network(write=False) as net:
        if recovery_id is not None:
            view = recovery.status(net, recovery_id)
            say(as_json, view.as_dict(), view.text)
            return
        views = recovery.recoveries(net, patient)
    if as_json:
        emit([v.as_dict() for v in views])
        return
    if not views:
        out.print("no recoveries")
    for v in views:
        out.print(v.text)
