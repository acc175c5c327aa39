"""``healthnft``: the command line over a home directory.

Every command accepts ``--home`` (before the command name; default
``$HEALTHNFT_HOME`` or ``~/.healthnft``) and most take ``--json``. A
:class:`~healthnft.errors.HealthNFTError` becomes one ``error:`` line on stderr
and a non-zero exit code; any other exception prints its type only (never its
message, which could quote input) unless ``HEALTHNFT_DEBUG=1``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from healthnft.errors import HealthNFTError, UnknownParticipant

if TYPE_CHECKING:
    from healthnft.network import Network


def default_home() -> Path:
    """$HEALTHNFT_HOME, else ~/.healthnft (kept here so --help needs no web3 import)."""
    return Path(os.environ.get("HEALTHNFT_HOME") or Path.home() / ".healthnft")


app = typer.Typer(
    help="Patient-owned health records as NFTs on a permissioned EVM ledger.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
wallet_app = typer.Typer(help="A patient's wallet: list and open records.", no_args_is_help=True)
chain_app = typer.Typer(help="Inspect the ledger.", no_args_is_help=True)
participant_app = typer.Typer(help="Network participants.", no_args_is_help=True)
app.add_typer(wallet_app, name="wallet")
app.add_typer(chain_app, name="chain")
app.add_typer(participant_app, name="participant")
shc_app = typer.Typer(help="SMART Health Cards: verify (and export) cards.", no_args_is_help=True)
app.add_typer(shc_app, name="shc")

out = Console(soft_wrap=True)  # long addresses stay on one line
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document (for scripts).")]
PassOpt = Annotated[
    str | None,
    typer.Option(
        "--passphrase",
        help="Keystore passphrase (else $HEALTHNFT_PASSPHRASE; demo homes use the demo's).",
        show_default=False,
    ),
]


class _State:
    home: Path = default_home()


state = _State()


@app.callback()
def _main(
    home: Annotated[
        Path | None,
        typer.Option(
            "--home", help="Node directory (default: $HEALTHNFT_HOME or ~/.healthnft).",
            show_default=False,
        ),
    ] = None,
) -> None:  # fmt: skip
    """Patient-owned health records as NFTs on a permissioned EVM ledger."""
    state.home = (home or default_home()).expanduser()


def _emit(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@contextmanager
def _network() -> Iterator[Network]:
    from healthnft.network import Network

    net = Network.open(state.home)
    try:
        yield net
    finally:
        net.close()


def _progress(json_mode: bool) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=json_mode,
        disable=json_mode and not err.is_terminal,
    )


# -- set-up -------------------------------------------------------------------


@app.command()
def init(passphrase: PassOpt = None, as_json: JsonOpt = False) -> None:
    """Create a network in the home: admin key, embedded chain, contracts."""
    pw = passphrase or os.environ.get("HEALTHNFT_PASSPHRASE")
    if not pw:
        pw = typer.prompt("Admin passphrase", hide_input=True, confirmation_prompt=True)
    from healthnft.network import Network

    net = Network.create(state.home, pw)
    info = {"home": str(state.home), **{k: net.config[k] for k in ("admin", "registry", "token")}}
    net.close()
    _emit(info) if as_json else out.print(f"network ready in {state.home} (admin {info['admin']})")


@app.command()
def demo(
    data: Annotated[
        Path | None,
        typer.Option(help="FHIR folder (default: ../shared/data/synthea, else a built-in sample)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a hospital and patients, mint all their FHIR records, summarize."""
    from healthnft.demo import run_demo

    say = (lambda m: err.print(f"[dim]{m}[/dim]")) if as_json else (lambda m: out.print(m))
    with _progress(as_json) as progress:
        task = progress.add_task("validating", total=None)
        mint_task = progress.add_task("minting", total=None, visible=False)
        summary = run_demo(
            state.home,
            data,
            on_resource=lambda: progress.advance(task),
            on_total=lambda n: (progress.update(task, total=progress.tasks[task].completed),
                                progress.update(mint_task, total=n, visible=True)),
            on_minted=lambda n: progress.advance(mint_task, n),
            say=say,
        )  # fmt: skip
    if as_json:
        _emit(summary)
        return
    table = Table(title=f"Minted by {summary['issuer']['name']} ({summary['issuer']['address']})")
    table.add_column("patient wallet")
    table.add_column("records", justify="right")
    for p in summary["patients"]:
        table.add_row(p["address"], str(p["records"]))
    out.print(table)
    out.print(
        f"{summary['records_minted']} records in {len(summary['patients'])} wallets, "
        f"{summary['batches']} batches, {summary['gas_per_record']} gas per record "
        f"({summary['new_this_run']} minted by this run)"
    )
    first = summary["patients"][0]["address"] if summary["patients"] else "ADDRESS"
    out.print(f"next: healthnft --home {state.home} wallet list --owner {first}")


@participant_app.command("add")
def participant_add(
    kind: Annotated[str, typer.Option(help="patient|hospital|pharma|research|insurer|government")],
    name: Annotated[str, typer.Option(help="A label local to this home (not stored on chain).")],
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Create a participant's key and register it on the network."""
    with _network() as net:
        p = net.add_participant(kind, name, passphrase)
    _emit({"address": p.address, "kind": p.kind}) if as_json else out.print(p.address)


@participant_app.command("list")
def participant_list(as_json: JsonOpt = False) -> None:
    """Participants with keys in this home."""
    with _network() as net:
        rows = [{"address": p.address, "kind": p.kind, "name": p.label}
                for p in net.catalog.participants()]  # fmt: skip
    if as_json:
        _emit(rows)
        return
    for r in rows:
        out.print(f"{r['address']}  {r['kind']:<10} {r['name']}")


# -- minting ------------------------------------------------------------------


@app.command()
def mint(
    files: Annotated[list[Path], typer.Argument(help="FHIR JSON files or folders.")],
    issuer: Annotated[str, typer.Option(help="Name of the registered hospital minting.")],
    patient: Annotated[str, typer.Option(help="Wallet address of the patient.")],
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate FHIR records and mint them into a patient's wallet (one tx per batch)."""
    from healthnft.ingest import ingest, single_patient

    with _network() as net:
        hospital = net.issuer_by_name(issuer)
        owner = net.patient(patient)
        records = single_patient(ingest(files))
        if not records:
            raise HealthNFTError("no patient records in the input (only reference data)")
        ident = net.identity(hospital.address, passphrase)
        with _progress(as_json) as progress:
            task = progress.add_task("minting", total=len(records))
            res = net.minter().mint(ident, owner.address, owner.enc_key, records,
                                    progress=lambda n: progress.advance(task, n))  # fmt: skip
    summary = {
        "records_minted": res.minted,
        "already_minted": res.skipped,
        "batches": res.batches,
        "token_ids": res.token_ids,
        "gas_per_record": round(res.gas_used / res.minted, 1) if res.minted else 0,
        "patient": owner.address,
    }
    if as_json:
        _emit(summary)
    else:
        out.print(f"minted {res.minted} records into {owner.address} in {res.batches} batch(es)"
                  + (f"; {res.skipped} were already minted" if res.skipped else ""))  # fmt: skip


# -- wallet -------------------------------------------------------------------


@wallet_app.command("list")
def wallet_list(
    owner: Annotated[str, typer.Option(help="Wallet address.")], as_json: JsonOpt = False
) -> None:
    """The records a wallet owns (confirmed on chain)."""
    with _network() as net:
        net.participant(owner)
        rows = net.wallet().list(owner)
    if as_json:
        _emit([{k: r[k] for k in ("token_id", "category", "resource_type", "status")}
               for r in rows])  # fmt: skip
        return
    table = Table(title=f"{len(rows)} records of {owner}")
    for col in ("token", "category", "type", "date", "status"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["token_id"]), r["category"], r["resource_type"],
                      r["effective_date"] or "", r["status"])  # fmt: skip
    out.print(table)


@wallet_app.command("show")
def wallet_show(
    token_id: Annotated[int, typer.Argument(help="Token id.")],
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Decrypt and show a record (as its owner)."""
    with _network() as net:
        owner = net.ledger.owner_of(token_id)
        if owner is None:
            raise UnknownParticipant(f"token {token_id} does not exist")
        rec = net.wallet().open(token_id, net.identity(owner, passphrase))
    if as_json:
        _emit({"token_id": rec.token_id, "meta": rec.meta, "resource": rec.resource})
    else:
        meta = rec.meta
        when = meta.get("effective_date") or "no date"
        out.print(f"token {rec.token_id}: {meta['resource_type']} ({meta['category']}, {when})")
        out.print_json(data=rec.resource)


@app.command()
def verify(
    token_id: Annotated[int, typer.Argument(help="Token id.")],
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a record against the chain: commitment, Merkle proof, root and owner."""
    with _network() as net:
        owner = net.ledger.owner_of(token_id)
        reader = None
        if owner is not None and net.has_key(owner):
            try:
                reader = net.identity(owner, passphrase)
            except HealthNFTError:
                reader = None
        result = net.wallet().verify(token_id, reader)
    if as_json:
        _emit({"valid": result.valid, "reason": result.reason})
    else:
        (out if result.valid else err).print(("valid: " if result.valid else "invalid: ")
                                             + result.reason)  # fmt: skip
    raise typer.Exit(0 if result.valid else 1)


@chain_app.command("export")
def chain_export(
    file: Annotated[Path, typer.Argument(help="Where to write the JSON export.")],
    as_json: JsonOpt = False,
) -> None:
    """Export every block, transaction, receipt, log and contract storage as JSON."""
    from healthnft.ledger.export import export_chain

    with _network() as net:
        summary = export_chain(net.ledger.w3, file)
    _emit(summary) if as_json else out.print(f"wrote {file}: {summary}")


@shc_app.command("verify")
def shc_verify(
    files: Annotated[
        list[Path],
        typer.Argument(help=".smart-health-card files, compact JWS files, or shc:/ QR chunks."),
    ],
    issuer_keys: Annotated[
        list[str] | None,
        typer.Option(
            "--issuer-keys",
            help="ISS=FOLDER: trust issuer ISS with FOLDER/.well-known/jwks.json (and crl/).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify SMART Health Cards offline: signature, issuer, revocation, FHIR content."""
    from healthnft.credentials import TrustStore, read_card_inputs, verify_card

    trust = TrustStore.from_pairs(issuer_keys or [])
    results = [verify_card(jws, trust).as_dict() for jws in read_card_inputs(files)]
    ok = bool(results) and all(r["valid"] for r in results)
    if as_json:
        _emit(results[0] if len(results) == 1 else results)
    else:
        for r in results:
            line = f"{'valid' if r['valid'] else 'invalid'}: {r['reason']} (iss {r['iss']})"
            (sys.stdout if r["valid"] else sys.stderr).write(line + "\n")
    raise typer.Exit(0 if ok else 1)


@shc_app.command("export")
def shc_export(
    token_ids: Annotated[list[int], typer.Argument(help="Immunization or laboratory tokens.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the card, QR and jwks.")],
    name: Annotated[str, typer.Option(help="File name stem of the card.")] = "health-card",
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export records as a SMART Health Card signed by their issuing hospital."""
    from healthnft.wallet.cards import export_health_card

    with _network() as net:
        owner = net.ledger.owner_of(token_ids[0])
        if owner is None:
            raise UnknownParticipant(f"token {token_ids[0]} does not exist")
        row = net.catalog.record(token_ids[0])
        if row is None:
            raise UnknownParticipant(f"token {token_ids[0]} is not in this home's catalogue")
        card = export_health_card(net.wallet(), net.identity(owner, passphrase),
                                  net.identity(row.issuer, passphrase), token_ids, out_dir,
                                  name)  # fmt: skip
    info = card.as_dict()
    if as_json:
        _emit(info)
        return
    out.print(f"wrote {info['card_file']} ({', '.join(info['resource_types'])})")
    out.print(f"QR: {', '.join(info['qr_png_files'])}")
    out.print(f"verify: healthnft shc verify {info['card_file']} "
              f"--issuer-keys {info['iss']}={out_dir / 'issuer'}")  # fmt: skip


def main() -> None:
    """Entry point: run the app and turn errors into one clear line."""
    try:
        app()
    except HealthNFTError as exc:
        sys.stderr.write(f"error: {exc}\n")  # one line, never wrapped
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - last line of defence, see module doc
        if os.environ.get("HEALTHNFT_DEBUG"):
            raise
        sys.stderr.write(
            f"error: internal error ({type(exc).__name__}); rerun with HEALTHNFT_DEBUG=1\n"
        )
        sys.exit(70)


if __name__ == "__main__":
    main()
