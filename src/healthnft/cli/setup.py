"""Setting up a node: init, demo, participants, the chain export, and serving the web."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from healthnft.cli.common import (
    JsonOpt,
    PassOpt,
    app,
    chain_app,
    emit,
    err,
    network,
    out,
    participant_app,
    progress_bar,
    say,
    state,
    warn,
    writing,
)
from healthnft.services import chain, participants


@app.command()
def init(
    passphrase: PassOpt = None,
    rpc: Annotated[str | None, typer.Option(
        "--rpc", metavar="URL",
        help="Use a running EVM node's chain (JSON-RPC URL) instead of the embedded one.",
    )] = None,
    admin_key_file: Annotated[Path | None, typer.Option(
        "--admin-key-file", metavar="FILE",
        help="With --rpc: a file holding the private key (hex) of an account funded there.",
    )] = None,
    confirmations: Annotated[int, typer.Option(
        help="With --rpc: blocks a transaction waits for before it counts as done.",
    )] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Create a network in the home: admin key, chain (embedded, or a node's), contracts."""
    pw = passphrase or os.environ.get("HEALTHNFT_PASSPHRASE")
    if not pw:
        pw = typer.prompt("Admin passphrase", hide_input=True, confirmation_prompt=True)
    with writing():
        info = participants.create_network(state.home, pw, rpc_url=rpc,
                                           admin_key_file=admin_key_file,
                                           confirmations=confirmations)  # fmt: skip
    where = f"chain {info.chain_id} at {info.rpc_url}" if info.rpc_url else "embedded chain"
    say(as_json, info.as_dict(), f"network ready in {state.home} ({where}, admin {info.admin})")


@app.command()
def demo(
    data: Annotated[
        Path | None,
        typer.Option(help="FHIR folder (default: ../shared/data/synthea, else a built-in sample)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a hospital and patients, mint all their FHIR records, summarize."""
    from healthnft.services.demo import run_demo  # the chain and pipeline: not for --help

    tell = ((lambda m: err.print(f"[dim]{m}[/dim]", soft_wrap=True)) if as_json
            else (lambda m: out.print(m)))  # fmt: skip
    with writing(), progress_bar(as_json) as progress:
        task = progress.add_task("validating", total=None)
        mint_task = progress.add_task("minting", total=None, visible=False)
        summary = run_demo(
            state.home,
            data,
            on_resource=lambda: progress.advance(task),
            on_total=lambda n: (progress.update(task, total=progress.tasks[task].completed),
                                progress.update(mint_task, total=n, visible=True)),
            on_minted=lambda n: progress.advance(mint_task, n),
            say=tell,
        )  # fmt: skip
    if as_json:
        emit(summary)
        return
    table = Table(title=f"Minted by {summary['issuer']['name']} ({summary['issuer']['address']})")
    table.add_column("patient wallet")
    table.add_column("demo patient")
    table.add_column("records", justify="right")
    for p in summary["patients"]:
        table.add_row(p["address"], p["name"], str(p["records"]))
    out.print(table)
    if summary["attestations_verified"]:
        out.print(
            f"{summary['attestations_verified']} issuer attestations (W3C VC, VC-JOSE EdDSA, "
            "signed by the hospital's did:key bound on chain) verified before minting"
        )
    out.print(
        f"{summary['records_minted']} records in {len(summary['patients'])} wallets, "
        f"{summary['batches']} batches, {summary['gas_per_record']} gas per record "
        f"({summary['new_this_run']} minted by this run)"
    )
    warn(summary["warnings"])
    first = summary["patients"][0]["address"] if summary["patients"] else "ADDRESS"
    out.print(f"demo patients' keys: {summary['patient_keys']}", highlight=False)
    out.print(f"next: healthnft --home {state.home} wallet list --owner {first}")
    out.print(f"  as that patient: healthnft --home {state.home} wallet show TOKEN; "
              f"healthnft --home {state.home} share TOKEN --owner {first} --to ADDRESS "
              "--purpose research", highlight=False)  # fmt: skip
    medicines = summary.get("drugs")
    if medicines:
        out.print(f"medicine packs ({len(medicines['batches'])} demo batches commissioned):",
                  highlight=False)
        for label, key in (("a real pack", "real_code"), ("an invented one", "invented_code")):
            out.print(f"  {label}: healthnft --home {state.home} drug verify "
                      f"'{medicines[key]}'", markup=False, highlight=False)


@participant_app.command("add")
def participant_add(
    kind: Annotated[
        str, typer.Option(help="patient|hospital|pharma|research|insurer|government|custodian|"
                           "manufacturer|pharmacy")
    ],
    name: Annotated[str, typer.Option(help="A label local to this home (not stored on chain).")],
    same_person: Annotated[bool, typer.Option(
        "--same-person", help="The name is already registered and this is that participant: "
        "print their address instead of refusing.")] = False,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Create a participant's key and register it on the network.

    A name is a label, not an identity: a name already used for the kind is refused
    unless --same-person says it is them (two people may share a name).

    --kind patient makes a hosted wallet: this home keeps the patient's key (for trials on
    one machine and tests). A real patient makes their wallet on their own device (the web
    page, or `healthnft --home ~/patient join NETWORK --kind patient`) and shows its
    healthnft: link; the network's admin registers it with `participant admit LINK`."""
    with network() as net:
        p = participants.add_participant(net, kind, name, passphrase, same_person=same_person)
    say(as_json, {"address": p.address, "kind": p.kind}, p.address)


@participant_app.command("list")
def participant_list(as_json: JsonOpt = False) -> None:
    """Participants with keys in this home."""
    with network(write=False) as net:
        rows = [m.as_dict() for m in participants.members(net)]
    if as_json:
        emit(rows)
        return
    for r in rows:
        out.print(f"{r['address']}  {r['kind']:<10} {r['name']}")


@chain_app.command("export")
def chain_export(
    file: Annotated[Path, typer.Argument(help="Where to write the JSON export.")],
    as_json: JsonOpt = False,
) -> None:
    """Export every block, transaction, receipt, log and contract storage as JSON."""
    with network(write=False) as net:
        summary = chain.export_chain(net, file)
    say(as_json, summary, f"wrote {file}: {summary}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    session_minutes: Annotated[int, typer.Option(help="How long a sign-in lasts.")] = 30,
    origin: Annotated[str | None, typer.Option(
        help="The address people open, e.g. https://wallet.example.org behind a TLS proxy "
        "(sign-in messages name it; requests for other hosts are refused). "
        "Default: http://HOST:PORT.")] = None,
    passphrase: PassOpt = None,
) -> None:
    """Serve the web health wallet and its API (OpenAPI at /openapi.json, docs at /docs)."""
    import gc

    import uvicorn

    from healthnft.api import create_app
    from healthnft.api.site import default_origin

    origin = origin or default_origin(host, port)
    web = create_app(state.home, origin=origin, passphrase=passphrase,
                     session_ttl_s=session_minutes * 60)  # fmt: skip
    url = web.state.site.origin + "/"
    err.print(f"healthnft web wallet for {state.home} at {url} (API docs: {url}docs)")
    net = web.state.service.net
    if net.is_demo:
        patients = participants.members(net, ("patient",))
        if patients:
            err.print(f"demo: open {url}, choose a demo wallet (e.g. {patients[0].address}) "
                      "and sign in; demo keystores are unlocked in the browser with the "
                      "documented passphrase 'healthnft-demo'")  # fmt: skip
    # A long-lived server with a large, stable heap (contracts, chain state): move what
    # start-up built out of the collector's sight and collect young objects less often,
    # so collections stay short while requests are served.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    uvicorn.run(web, host=host, port=port, log_level="warning", access_log=False)


@app.command()
def doctor(
    repair: Annotated[bool, typer.Option(
        "--repair", help="Rebuild what the chain and the vault can settle (holds the "
        "home's writer lock); without it, nothing is changed.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check the home's index against its chain and vault; --repair rebuilds it.

    An index.sqlite restored from an older backup names records' earlier owners and
    misses their current keys: every other command refuses such a home until this one
    has repaired it. Exit 0 when the home is healthy (after repairing), 1 when it is not.
    """
    from healthnft.services.doctor import checkup

    with network(write=repair, check_index=False) as net:
        result = checkup(net, repair=repair)
    if as_json:
        emit(result.as_dict())
    else:
        for f in result.findings:
            mark = "repaired" if f.repaired else (
                "repairable" if f.repairable else "NOT repairable")
            out.print(f"token {f.token_id}: {f.detail} ({mark})", markup=False, highlight=False)
        verdict = "healthy" if result.healthy else (
            "needs `healthnft doctor --repair`" if all(f.repairable for f in result.findings)
            else "has records the chain and the vault cannot restore: restore vault.sqlite "
                 "from a backup, then run `healthnft doctor --repair`")  # fmt: skip
        out.print(f"{result.records} records, {result.cards} key cards: {verdict}",
                  markup=False, highlight=False)  # fmt: skip
    if not result.healthy:
        raise typer.Exit(1)
