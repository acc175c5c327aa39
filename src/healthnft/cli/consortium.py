"""Joining a network, admitting members, and a local consortium (``consortium up``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from healthnft.cli.common import (
    JsonOpt,
    PassOpt,
    app,
    emit,
    err,
    network,
    out,
    participant_app,
    say,
    state,
    wallet_app,
    writing,
)
from healthnft.services import consortium

consortium_app = typer.Typer(
    help="A local demo consortium: validators, an admin home and one node per founding "
    "institution, each its own process (loopback only; secrets kept 0600 in DIR).",
    no_args_is_help=True,
)
app.add_typer(consortium_app, name="consortium")


@app.command()
def join(
    network_file: Annotated[Path, typer.Argument(
        metavar="NETWORK_JSON", help="The network file (network.json) of a running network.")],
    kind: Annotated[str, typer.Option(
        help="hospital|research|pharma|insurer|government|custodian|manufacturer|pharmacy|"
             "patient")],
    name: Annotated[str, typer.Option(
        help="What this home calls its member (stays here: the chain never gets names).")],
    rpc: Annotated[str | None, typer.Option(
        "--rpc", metavar="URL",
        help="This institution's own node (default: the network file's first RPC URL).",
    )] = None,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Create a home attached to a running network, and its membership application.

    The home gets its own key (no admin key), the network's chain and contracts, all
    checked first (node reachable, same chain id, contracts of this version with code).
    The application (address, kind, public keys; signed, name-free) is written to
    HOME/application.json: send it to the network's admin, who runs `participant admit`."""
    pw = passphrase or os.environ.get("HEALTHNFT_PASSPHRASE")
    if not pw:
        pw = typer.prompt("Passphrase for the new home", hide_input=True,
                          confirmation_prompt=True)  # fmt: skip
    with writing():
        joined = consortium.join(state.home, pw, network_file, kind, name, rpc_url=rpc)
    if as_json:
        emit(joined.as_dict())
        return
    out.print(f"joined chain {joined.chain_id} at {joined.rpc_url} as {joined.address} "
              f"({joined.kind}); application written to {joined.application}",
              markup=False, highlight=False)  # fmt: skip
    out.print("next: send it to the network's admin, who runs `healthnft --home ADMIN "
              f"participant admit {Path(joined.application).name}`; once admitted this "
              "home mints, shares and opens like the founders", markup=False)  # fmt: skip


@wallet_app.command("card")
def wallet_card(
    qr: Annotated[Path | None, typer.Option(
        "--qr", metavar="FILE", help="Also draw the link as a QR code (.png or .svg).")] = None,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """This wallet's card: the healthnft: link (or QR code) a hospital or enrolment office
    registers it from. Public values only (address, kind, chain, public keys, signed by
    this wallet's key): never a secret."""
    with network(write=False) as net:
        shown = consortium.card(net, passphrase)
    if qr is not None:
        consortium.draw_link(shown.link, qr)
    if as_json:
        emit({**shown.as_dict(), **({"qr": str(qr)} if qr is not None else {})})
        return
    out.print(shown.link, markup=False, highlight=False, soft_wrap=True)
    err.print(f"{shown.kind} {shown.address} on chain {shown.chain_id}: give this link (or "
              "its QR code) to the enrolment office; it holds no secret", markup=False,
              highlight=False)  # fmt: skip


def _admitted(done: consortium.Admitted) -> str:
    rights = ", ".join(r for r, on in (("issuer", done.issuer), ("custodian", done.custodian))
                       if on) or "member"  # fmt: skip
    return f"admitted {done.address} ({done.kind}; {rights})"


@participant_app.command("admit")
def participant_admit(
    application: Annotated[str, typer.Argument(
        metavar="APPLICATION", help="A membership application written by `join`, or the "
        "healthnft: link its wallet shows (`wallet card`).")],
    issuer: Annotated[bool | None, typer.Option(
        "--issuer/--no-issuer", help="Allow it to mint (default: hospitals and pharmacies).",
        show_default=False)] = None,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Register an applicant on chain (the admin's home): kind, keys, gas, rights."""
    with network() as net:
        done = consortium.admit(net, application, issuer=issuer, passphrase=passphrase)
    say(as_json, done.as_dict(), _admitted(done))


@consortium_app.command("network-file")
def network_file(
    to: Annotated[Path | None, typer.Option(
        "--out", metavar="FILE", help="Write it here (default: print it).")] = None,
) -> None:  # fmt: skip
    """The network file of the admin's home (--home): what `join` needs, no secret."""
    import json

    with network(write=False) as net:
        doc = consortium.network_document(net)
    if to is None:
        emit(doc)
        return
    to.write_text(json.dumps(doc, indent=2) + "\n")
    err.print(f"wrote {to}", markup=False, highlight=False)


DirOpt = Annotated[Path, typer.Option(
    "--dir", metavar="DIR", help="The consortium's folder (chain, homes, secrets, network.json).",
)]  # fmt: skip


@consortium_app.command("up")
def consortium_up(
    where: DirOpt = Path("consortium"),
    validators: Annotated[int, typer.Option(help="Validators (geth Clique signers).")] = 3,
    custodians: Annotated[int, typer.Option(help="Key custodians (k-of-n).")] = 3,
    chain_id: Annotated[int | None, typer.Option(
        "--chain-id", help="Chain id of a new chain (default 1337).", show_default=False)] = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Start a local consortium, or what of it is not running (the chain is kept).

    Validators (geth Clique, on loopback), the admin's home (deploys the contracts; its key
    in DIR/admin/admin.key, 0600), one home per founding institution (a hospital, a research
    institute, an insurer, a government body), joined and admitted, each served by its own
    `healthnft serve` process. A LOCAL DEMO NETWORK: each home's passphrase is generated and
    kept 0600 in DIR/secrets/. DIR/network.json (no secret) is what another institution
    needs to `join`. Progress goes to stderr."""
    result = consortium.up(where, validators=validators, custodians=custodians,
                           chain_id=chain_id,
                           say=lambda m: err.print(m, markup=False, highlight=False))  # fmt: skip
    if as_json:
        emit(result)
        return
    for v in result["validators"]:
        out.print(f"validator {v['rpc']} (pid {v['pid']})", markup=False, highlight=False)
    for name, n in result["nodes"].items():
        out.print(f"{name} ({n['kind']}): {n['url']} home {n['home']} (pid {n['pid']})",
                  markup=False, highlight=False)  # fmt: skip
    out.print(f"network file: {result['network']}; stop with `healthnft consortium down "
              f"--dir {where}`", markup=False, highlight=False)  # fmt: skip


@consortium_app.command("admit")
def consortium_admit(
    application: Annotated[str, typer.Argument(
        metavar="APPLICATION", help="The applicant's application.json (written by `healthnft "
        "join`), or the healthnft: link its wallet shows (`wallet card`).")],
    where: DirOpt = Path("consortium"),
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Admit a member to the local consortium: an institution by three of the founders'
    council (each step a proposal their keys approve), a patient by the admin home (the
    patients' enrolment office). Running it again finishes an interrupted admission."""
    done = consortium.admit_local(where, application,
                                  say=lambda m: err.print(m, markup=False, highlight=False))
    say(as_json, done.as_dict(), _admitted(done))


@consortium_app.command("status")
def consortium_status(where: DirOpt = Path("consortium"), as_json: JsonOpt = False) -> None:
    """Whether each process runs, each validator's head block, each node answering.
    Exit 0 when all is healthy, 1 when not."""
    result = consortium.status(where)
    if as_json:
        emit(result)
    else:
        for v in result["validators"]:
            state_ = f"head {v['head']}" if v["alive"] else "DOWN"
            out.print(f"validator {v['rpc']} pid {v['pid']}: {state_}", markup=False,
                      highlight=False)  # fmt: skip
        for name, n in result["nodes"].items():
            state_ = "answering" if n["answering"] else ("not answering" if n["alive"] else "DOWN")
            out.print(f"{name} {n['url']} pid {n['pid']}: {state_}", markup=False,
                      highlight=False)  # fmt: skip
        out.print("healthy" if result["healthy"] else "NOT healthy")
    if not result["healthy"]:
        raise typer.Exit(1)


@consortium_app.command("down")
def consortium_down(where: DirOpt = Path("consortium"), as_json: JsonOpt = False) -> None:
    """Stop every process `up` started (SIGTERM, then SIGKILL); the chain and homes stay."""
    result = consortium.down(where)
    say(as_json, result, f"stopped {result['stopped']} process(es)")
