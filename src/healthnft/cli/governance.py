"""Governance: the founding institutions' council decides membership, k of n."""

from __future__ import annotations

from typing import Annotated

import typer

from healthnft.cli.common import JsonOpt, PassOpt, app, emit, network, out, say
from healthnft.services import governance

governance_app = typer.Typer(
    help="The founding institutions' council: k of n approve every membership change.",
    no_args_is_help=True,
)
app.add_typer(governance_app, name="governance")

MemberOpt = Annotated[str, typer.Option("--member", help="The council member acting (an "
                                        "address whose key this home holds).")]  # fmt: skip
ACTION_HELP = ("register|set-issuer|suspend|reactivate|rekey|bind-did|set-custodian|"
               "add-council|remove-council|replace-council|set-threshold|set-voting-period|"
               "hand-over|set-registrar")  # fmt: skip


@governance_app.command("install")
def governance_install(
    council: Annotated[list[str], typer.Option("--council", help="A founding institution's "
                       "address (repeat; each a registered, active participant).")],
    threshold: Annotated[int, typer.Option(help="Approvals that execute a proposal (2 to n).")],
    voting_period: Annotated[int | None, typer.Option(
        help="Seconds a proposal stays open (default 7 days).")] = None,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Hand the registry and consent manager to a council (final: no admin key after).

    The council's members must be registered, active participants."""
    with network() as net:
        view = governance.install(net, council, threshold, voting_period, passphrase)
    say(as_json, view.as_dict(), f"council {view.address}: {view.threshold} of "
        f"{len(view.council)} approve each change")  # fmt: skip


@governance_app.command("status")
def governance_status(as_json: JsonOpt = False) -> None:
    """The council, its threshold and voting period."""
    with network(write=False) as net:
        view = governance.status(net)
    if as_json:
        emit(view.as_dict())
        return
    out.print(f"council {view.address}: {view.threshold} of {len(view.council)}, "
              f"voting period {view.voting_period_s} s, {view.pending} pending")  # fmt: skip
    for member in view.council:
        out.print(f"  {member}")


@governance_app.command("propose")
def governance_propose(
    action: Annotated[str, typer.Argument(help=ACTION_HELP)],
    account: Annotated[str, typer.Argument(help="The account acted on.")],
    member: MemberOpt,
    kind: Annotated[str | None, typer.Option(help="The kind, for register.")] = None,
    key: Annotated[str | None, typer.Option(
        help="32-byte hex key: encryption key (register, rekey) or DID key (bind-did).")] = None,
    flag: Annotated[bool | None, typer.Option(
        "--grant/--withdraw", help="For set-issuer, set-custodian and set-registrar.")] = None,
    number: Annotated[int | None, typer.Option(
        help="For set-threshold and set-voting-period (seconds).")] = None,
    new_account: Annotated[str | None, typer.Option(help="For replace-council.")] = None,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Propose a membership change (counts as the proposer's approval)."""
    with network() as net:
        view = governance.propose(net, member, action, account, kind=kind, key_hex=key,
                                  flag=flag, number=number, new_account=new_account,
                                  passphrase=passphrase)  # fmt: skip
    say(as_json, view.as_dict(), view.text)


@governance_app.command("approve")
def governance_approve(
    proposal_id: Annotated[int, typer.Argument(help="The proposal's number.")],
    member: MemberOpt,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a proposal; the approval that reaches the threshold executes it."""
    with network() as net:
        view = governance.approve(net, member, proposal_id, passphrase)
    say(as_json, view.as_dict(), view.text)


@governance_app.command("list")
def governance_list(
    state: Annotated[str | None, typer.Option(
        help="pending|executed|expired|void (default: all).")] = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Proposals, newest first."""
    with network(write=False) as net:
        views = governance.list_proposals(net, state)
    if as_json:
        emit([v.as_dict() for v in views])
        return
    for v in views:
        out.print(v.text)
