"""Key custodians as their own services: ``custodian init|serve|deliver`` and the
admin's ``participant add-custodian``. Thin over :mod:`healthnft.services.custodians`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from healthnft.cli.common import (
    JsonOpt,
    PassOpt,
    app,
    err,
    network,
    participant_app,
    say,
    state,
    warn,
    writing,
)
from healthnft.services import custodians

custodian_app = typer.Typer(
    help="Run a key custodian in its own home (its key never leaves it).", no_args_is_help=True
)
app.add_typer(custodian_app, name="custodian")


def _passphrase(explicit: str | None, confirm: bool) -> str:
    pw = explicit or os.environ.get("HEALTHNFT_PASSPHRASE")
    return pw or typer.prompt("Custodian passphrase", hide_input=True,
                              confirmation_prompt=confirm)  # fmt: skip


@custodian_app.command("init")
def custodian_init(
    network_file: Annotated[Path, typer.Option(
        "--network", metavar="FILE",
        help="The network's description: a network.json, or the config.json of a home on "
        "the same JSON-RPC node (rpc_url, chain_id, registry, token, consent; no secret).",
    )],
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Create a custodian's home: a new key, kept here only. Give the printed address and
    encryption key to the network's admin (`participant add-custodian`)."""
    pw = _passphrase(passphrase, confirm=True)
    with writing():
        made = custodians.create_custodian_home(state.home, pw, network_file)
    say(as_json, made.as_dict(),
        f"custodian {made.address} ready in {made.home}; ask the admin to run: healthnft "
        f"participant add-custodian --address {made.address} --enc-key {made.enc_key} "
        "--url http://HOST:PORT")  # fmt: skip


@custodian_app.command("serve")
def custodian_serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8700,
    passphrase: PassOpt = None,
) -> None:
    """Serve this custodian: challenges, issuers' share deliveries, releases to grantees."""
    import uvicorn

    from healthnft.api.custodian import create_custodian_app

    pw = _passphrase(passphrase, confirm=False)
    with writing():
        web = create_custodian_app(state.home, pw)
        err.print(f"healthnft custodian {web.state.node.identity.address} at "
                  f"http://{host}:{port}/")  # fmt: skip
        uvicorn.run(web, host=host, port=port, log_level="warning", access_log=False)


@custodian_app.command("status")
def custodian_status(as_json: JsonOpt = False) -> None:
    """This custodian's shares and access logs: each release's log is sent before the
    share leaves and settled on chain afterwards; exit 1 if one failed or is overdue."""
    result = custodians.custodian_status(state.home)
    logs = result["access_logs"]
    say(as_json, result, f"custodian {result['custodian']}: {result['shares']} shares; access "
        f"logs {logs['confirmed']} confirmed, {logs['pending']} pending ({logs['overdue']} "
        f"overdue), {logs['failed']} failed")  # fmt: skip
    if not as_json:
        warn([f"token {p['token_id']} grant {p['grant_id']}: {p['state']} log {p['tx_hash']}"
              f" ({p['error'] or 'not mined yet'})" for p in logs["problems"]])  # fmt: skip
    if not result["healthy"]:
        raise typer.Exit(1)


@custodian_app.command("deliver")
def custodian_deliver(passphrase: PassOpt = None, as_json: JsonOpt = False) -> None:
    """Send remote custodians the key shares of minted batches they have not received."""
    with network() as net:
        result = custodians.deliver_pending(net, passphrase)
    warn(result.pending)
    say(as_json, result.as_dict(), f"{result.delivered} batch deliveries made, "
        f"{len(result.pending)} custodian(s) still pending")  # fmt: skip
    if result.pending:
        raise typer.Exit(1)


@participant_app.command("add-custodian")
def participant_add_custodian(
    address: Annotated[str, typer.Option(help="The custodian's address (custodian init).")],
    enc_key: Annotated[str, typer.Option(
        "--enc-key", help="The custodian's X25519 encryption key, hex (custodian init).")],
    url: Annotated[str, typer.Option(help="Where its service answers (custodian serve).")],
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Register a custodian that runs in its own home: on chain, funded, and its URL kept."""
    with network() as net:
        member = custodians.add_remote_custodian(net, address, enc_key, url)
    say(as_json, member, member["address"])
