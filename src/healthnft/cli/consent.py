"""Consent: share, revoke, requests and their answers, policies, the access log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from healthnft.cli.common import (
    PURPOSE_HELP,
    JsonOpt,
    PassOpt,
    app,
    emit,
    network,
    out,
    policy_app,
    say,
)
from healthnft.errors import InvalidInput
from healthnft.services import sharing

DeidOpt = Annotated[bool, typer.Option(help="De-identified data only.")]
RequestIdOpt = Annotated[str | None, typer.Option(
    help="Your id for this request (e.g. a UUID): running the command again with the same "
    "id, after a crash or a timeout, does it once, not twice.")]


@app.command()
def share(
    token_ids: Annotated[list[int] | None, typer.Argument(help="Tokens to share.")] = None,
    owner: Annotated[str, typer.Option(help="The patient's address.")] = "",
    to: Annotated[str, typer.Option(help="The grantee's address.")] = "",
    purpose: Annotated[str, typer.Option(help=PURPOSE_HELP)] = "",
    days: Annotated[int, typer.Option(help="How long the grant lasts.")] = 30,
    category: Annotated[str | None, typer.Option(help="Share a whole category instead.")] = None,
    deidentified_only: DeidOpt = False,
    request_id: RequestIdOpt = None,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Grant a participant read access to records, or to a category, for a purpose.

    Revoking later stops new access; it cannot take back what the grantee already saw.
    """
    if not owner or not to or not purpose:
        raise InvalidInput("--owner, --to and --purpose are required")
    with network() as net:
        g = sharing.share(net, owner, to, purpose, days, token_ids=list(token_ids or []) or None,
                          category=category, deidentified_only=deidentified_only,
                          passphrase=passphrase, request_id=request_id)  # fmt: skip
    what = f"all {category} records" if category else f"{len(token_ids or [])} record(s)"
    say(as_json, {k: g.as_dict()[k] for k in ("grant_id", "grantee", "purpose", "expires")},
        f"grant {g.grant_id}: {g.grantee_kind} {g.grantee} may read {what} for {purpose} "
        f"for {days} days (revoking later cannot take back what was already read)")


@app.command()
def revoke(
    grant_id: Annotated[int, typer.Argument(help="The grant to end.")],
    owner: Annotated[str, typer.Option(help="The patient's address.")],
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """End a grant now: no key is released under it afterwards."""
    with network() as net:
        sharing.revoke(net, owner, grant_id, passphrase)
    say(as_json, {"grant_id": grant_id, "revoked": True}, f"grant {grant_id} revoked")


@app.command()
def grants(
    owner: Annotated[str, typer.Option(help="The patient's address.")],
    as_json: JsonOpt = False,
) -> None:
    """The grants a patient made, newest first, and whether each still holds."""
    with network(write=False) as net:
        rows = sharing.grants_of(net, owner)
    if as_json:
        emit(rows)
        return
    for g in rows:
        what = f"all {g['category']} records" if g["category"] else (
            "tokens " + ", ".join(map(str, g["token_ids"])))
        until = datetime.fromtimestamp(g["expires"], UTC).strftime("%Y-%m-%d")
        out.print(f"#{g['grant_id']} {g['state']}: {g['grantee_name'] or g['grantee']} "
                  f"({g['grantee_kind']}) may read {what} for {g['purpose']} until {until}")


@app.command()
def shared(
    as_address: Annotated[str, typer.Option("--as", help="The grantee (an institution).")],
    as_json: JsonOpt = False,
) -> None:
    """Records shared with a participant that a live grant lets it open now."""
    with network(write=False) as net:
        rows = sharing.shared_with(net, as_address)
    if as_json:
        emit(rows)
        return
    table = Table(title=f"{len(rows)} records shared with {as_address}")
    for col in ("token", "category", "type", "date", "grant", "purpose"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["token_id"]), r["category"], r["resource_type"],
                      r["effective_date"] or "", str(r["grant_id"]), r["purpose"])
    out.print(table)


@app.command()
def request(
    owner: Annotated[str, typer.Option(help="The patient asked.")],
    as_address: Annotated[str, typer.Option("--as", help="Who asks (a registered member).")],
    purpose: Annotated[str, typer.Option(help=PURPOSE_HELP)],
    token_id: Annotated[int | None, typer.Option(help="One token...")] = None,
    category: Annotated[str | None, typer.Option(help="...or a whole category.")] = None,
    days: Annotated[int, typer.Option(help="How long access would last.")] = 30,
    reward_wei: Annotated[int, typer.Option(help="Reward held in escrow for the patient.")] = 0,
    reason: Annotated[str, typer.Option(help="Why (kept off chain, in this home).")] = "",
    request_id: RequestIdOpt = None,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask a patient for access; a matching consent policy grants it at once."""
    if (token_id is None) == (category is None):
        raise InvalidInput("give --token-id or --category")
    with network() as net:
        info = sharing.request_access(net, as_address, owner, purpose, days=days,
                                      token_id=token_id, category=category,
                                      reward_wei=reward_wei, reason=reason,
                                      passphrase=passphrase, request_id=request_id)  # fmt: skip
    data = info.as_dict()
    data.pop("reason")
    say(as_json, data, f"request {info.request_id}: {info.state}"
        + (f" (grant {info.grant_id})" if info.grant_id else ""))


@app.command("requests")
def list_requests(
    owner: Annotated[str, typer.Option(help="The patient.")], as_json: JsonOpt = False
) -> None:
    """Requests made to a patient, with their state."""
    with network(write=False) as net:
        rows = sharing.requests_for(net, owner)
    if as_json:
        emit([r.as_dict() for r in rows])
        return
    for r in rows:
        what = f"token {r.token_id}" if r.token_id else f"all {r.category} records"
        out.print(f"#{r.request_id} {r.state}: {r.requester} asks {what} for "
                  f"{r.purpose}, {r.days} days, reward {r.reward_wei} wei"
                  + (f" — {r.reason}" if r.reason else ""))  # fmt: skip


@app.command()
def approve(
    request_id: Annotated[int, typer.Argument(help="A pending request.")],
    owner: Annotated[str, typer.Option(help="The patient.")],
    deidentified_only: DeidOpt = False,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Grant a pending request (its reward, if any, is paid to you)."""
    with network() as net:
        gid = sharing.approve(net, owner, request_id, deidentified_only, passphrase)
    say(as_json, {"request_id": request_id, "grant_id": gid},
        f"request {request_id} approved: grant {gid}")


@app.command()
def decline(
    request_id: Annotated[int, typer.Argument(help="A pending request.")],
    owner: Annotated[str, typer.Option(help="The patient.")],
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Decline a pending request (its reward is refunded to the requester)."""
    with network() as net:
        sharing.decline(net, owner, request_id, passphrase)
    say(as_json, {"request_id": request_id, "declined": True}, f"request {request_id} declined")


@policy_app.command("add")
def policy_add(
    owner: Annotated[str, typer.Option(help="The patient.")],
    kind: Annotated[str, typer.Option(help="Who: pharma|research|insurer|government|hospital")],
    purpose: Annotated[str, typer.Option(help=PURPOSE_HELP)],
    category: Annotated[str | None, typer.Option(help="Which category (none: any token).")] = None,
    days: Annotated[int, typer.Option(help="Longest access a request may get.")] = 365,
    valid_days: Annotated[int, typer.Option(help="How long the policy applies.")] = 365,
    deidentified_only: DeidOpt = False,
    request_id: RequestIdOpt = None,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve matching requests automatically, with no human in the loop."""
    with network() as net:
        idx = sharing.add_policy(net, owner, kind=kind, purpose=purpose, category=category,
                                 days=days, valid_days=valid_days,
                                 deidentified_only=deidentified_only,
                                 passphrase=passphrase, request_id=request_id)  # fmt: skip
    say(as_json, {"policy": idx},
        f"policy {idx}: {kind} requests for {category or 'single records'} for {purpose} "
        f"are approved automatically for {valid_days} days")


@policy_app.command("list")
def policy_list(
    owner: Annotated[str, typer.Option(help="The patient.")], as_json: JsonOpt = False
) -> None:
    """The patient's consent policies."""
    with network(write=False) as net:
        rows = sharing.policies(net, owner)
    if as_json:
        emit([r.as_dict() for r in rows])
        return
    for r in rows:
        state_word = "active" if r.active else "removed"
        out.print(f"#{r.policy} {state_word}: {r.kind} / {r.category or 'single records'} / "
                  f"{r.purpose} / {r.days} days")  # fmt: skip


@policy_app.command("remove")
def policy_remove(
    index: Annotated[int, typer.Argument(help="The policy number.")],
    owner: Annotated[str, typer.Option(help="The patient.")],
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Turn a policy off (grants it made stay until revoked)."""
    with network() as net:
        sharing.remove_policy(net, owner, index, passphrase)
    say(as_json, {"policy": index, "removed": True}, f"policy {index} removed")


@app.command("access-log")
def access_log(
    owner: Annotated[str, typer.Option(help="The patient's address.")],
    as_json: JsonOpt = False,
) -> None:
    """Every key release for the owner's records: who, which token, purpose, when."""
    with network(write=False) as net:
        rows = sharing.access_log(net, owner)
    if as_json:
        emit(rows)
        return
    table = Table(title=f"{len(rows)} key releases for {owner}")
    for col in ("when", "token", "grantee", "purpose", "custodian"):
        table.add_column(col)
    for r in rows:
        when = datetime.fromtimestamp(r["time"], UTC).strftime("%Y-%m-%d %H:%M")
        table.add_row(when, str(r["token_id"]), r["grantee_name"] or r["grantee"], r["purpose"],
                      r["custodian"])  # fmt: skip
    out.print(table)
