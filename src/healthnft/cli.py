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
policy_app = typer.Typer(help="Consent policies that approve matching requests.",
                         no_args_is_help=True)  # fmt: skip
app.add_typer(policy_app, name="policy")
shc_app = typer.Typer(help="SMART Health Cards: verify (and export) cards.", no_args_is_help=True)
app.add_typer(shc_app, name="shc")
credential_app = typer.Typer(
    help="Verifiable credentials: record attestations, patient identity, presentations.",
    no_args_is_help=True,
)
app.add_typer(credential_app, name="credential")

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

    say = ((lambda m: err.print(f"[dim]{m}[/dim]", soft_wrap=True)) if as_json
           else (lambda m: out.print(m)))  # fmt: skip
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
    files: Annotated[
        list[Path],
        typer.Argument(help="FHIR JSON, notes (.txt, .pdf) or DICOM files, or folders of them."),
    ],
    issuer: Annotated[str, typer.Option(help="Name of the registered hospital minting.")],
    patient: Annotated[str, typer.Option(help="Wallet address of the patient.")],
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate records (FHIR, notes, DICOM studies) and mint them into a patient's wallet.

    One transaction per batch; one record per imaging study.
    """
    from healthnft.ingest import ingest, single_patient

    with _network() as net:
        hospital = net.issuer_by_name(issuer)
        owner = net.patient(patient)
        records = single_patient(ingest(files))
        if not records:
            raise HealthNFTError("no patient records in the input (only reference data)")
        ident = net.identity(hospital.address, passphrase)
        imaging = sum(r.manifest.payload_size for r in records if hasattr(r, "manifest"))
        with _progress(as_json) as progress:
            task = progress.add_task("minting", total=len(records))
            sealing = (progress.add_task("encrypting imaging (bytes)", total=imaging)
                       if imaging else None)  # fmt: skip
            res = net.minter().mint(
                ident, owner.address, owner.enc_key, records,
                progress=lambda n: progress.advance(task, n),
                on_bytes=(lambda n: progress.advance(sealing, n)) if sealing is not None
                else None,
            )  # fmt: skip
    summary = {
        "records_minted": res.minted,
        "already_minted": res.skipped,
        "attestations_verified": res.attested,
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
    from healthnft import operations as ops

    with _network() as net:
        rows = ops.list_records(net, owner)
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
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="Write it as a file: .txt (a note), .pdf, .png or .json; "
                     "an imaging study as .png (its first image), a folder (its DICOM "
                     "files) or .dcm (a single-instance study)."),
    ] = None,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Decrypt and show a record (as its owner), or write it as a file with --out."""
    from healthnft import operations as ops

    with _network() as net:
        owner = ops.current_owner(net, token_id)
        ident = net.identity(owner, passphrase)
        wallet = net.wallet()
        rec = wallet.open(token_id, ident)
        if rec.is_study:
            if out_file is not None:
                from healthnft.wallet.files import write_study

                info = {"token_id": token_id, **write_study(wallet, token_id, ident, out_file,
                                                            rec.resource)}  # fmt: skip
                _emit(info) if as_json else out.print(f"wrote token {token_id} to {out_file}")
                return
            wallet.check_stream(token_id, ident)  # nothing is shown of a tampered study
    if rec.is_study and not as_json:
        from rich.markup import escape

        from healthnft.wallet.files import study_listing

        when = rec.meta.get("effective_date") or "no date"
        out.print(f"token {rec.token_id}: {rec.meta['resource_type']} "
                  f"({rec.meta['category']}, {when})")  # fmt: skip
        headline, series = study_listing(rec.meta)
        out.print(escape(headline))
        table = Table()
        for col in ("series", "modality", "description", "instances"):
            table.add_column(col)
        for row in series:
            table.add_row(*map(escape, row))
        out.print(table)
        return
    if out_file is not None:
        from healthnft.wallet.files import record_file, write_private

        data = record_file(rec.resource, out_file.suffix)
        write_private(out_file, data)
        info = {"token_id": token_id, "out": str(out_file), "bytes": len(data)}
        _emit(info) if as_json else out.print(f"wrote token {token_id} to {out_file}")
        return
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
    """Check a record against the chain: commitment, Merkle proof, root and owner.

    For an imaging study, every encrypted chunk and instance too.
    """
    from healthnft import operations as ops

    with _network() as net:
        result = ops.verify_record(net, token_id, passphrase)
    if as_json:
        _emit({"valid": result.valid, "reason": result.reason})
    else:
        (out if result.valid else err).print(("valid: " if result.valid else "invalid: ")
                                             + result.reason)  # fmt: skip
    raise typer.Exit(0 if result.valid else 1)


#: Said on every transfer: re-encryption protects the future, not the past.
TRANSFER_NOTE = "transfer stops future access; it cannot take back what was already read"


@app.command()
def transfer(
    token_id: Annotated[int, typer.Argument(help="Token id.")],
    owner: Annotated[str, typer.Option(help="The current owner's address.")],
    to: Annotated[str, typer.Option(help="A registered participant's address.")],
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Give a record to another registered participant, re-encrypted for them.

    The old owner's keys open nothing afterwards. What they already saw cannot be
    taken back.
    """
    from healthnft import operations as ops

    with _network() as net:
        new_owner = ops.transfer(net, owner, token_id, to, passphrase)
    info = {"token_id": token_id, "owner": new_owner, "note": TRANSFER_NOTE}
    _emit(info) if as_json else out.print(
        f"token {token_id} now belongs to {new_owner} ({TRANSFER_NOTE})"
    )


@app.command()
def burn(
    token_id: Annotated[int, typer.Argument(help="Token id.")],
    owner: Annotated[str, typer.Option(help="The owner's address.")],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: burning is irreversible.")] = False,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Destroy a record for good: burn the token and crypto-shred its data.

    Irreversible: nobody (you, the hospital, any grantee) can recover it afterwards.
    It cannot take back what a reader already saw.
    """
    from healthnft import operations as ops

    if not yes:
        raise HealthNFTError("burning is irreversible: add --yes to confirm")
    with _network() as net:
        ops.burn(net, owner, token_id, passphrase)
    info = {"token_id": token_id, "burned": True}
    _emit(info) if as_json else out.print(f"token {token_id} burned; its record is unrecoverable")


@app.command()
def share(
    token_ids: Annotated[list[int] | None, typer.Argument(help="Tokens to share.")] = None,
    owner: Annotated[str, typer.Option(help="The patient's address.")] = "",
    to: Annotated[str, typer.Option(help="The grantee's address.")] = "",
    purpose: Annotated[str, typer.Option(help="treatment|research|insurance|public-health")] = "",
    days: Annotated[int, typer.Option(help="How long the grant lasts.")] = 30,
    category: Annotated[str | None, typer.Option(help="Share a whole category instead.")] = None,
    deidentified_only: Annotated[bool, typer.Option(help="De-identified data only.")] = False,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Grant a participant read access to records, or to a category, for a purpose.

    Revoking later stops new access; it cannot take back what the grantee already saw.
    """
    from healthnft import operations as ops

    if not owner or not to or not purpose:
        raise HealthNFTError("--owner, --to and --purpose are required")
    if bool(token_ids) == bool(category):
        raise HealthNFTError("give token ids or --category, not both")
    with _network() as net:
        g = ops.share(net, owner, to, purpose, days, token_ids=list(token_ids or []) or None,
                      category=category, deidentified_only=deidentified_only,
                      passphrase=passphrase)  # fmt: skip
    what = f"all {category} records" if category else f"{len(token_ids or [])} record(s)"
    if as_json:
        _emit({k: g[k] for k in ("grant_id", "grantee", "purpose", "expires")})
    else:
        out.print(f"grant {g['grant_id']}: {g['grantee_kind']} {g['grantee']} may read {what} "
                  f"for {purpose} for {days} days (revoking later cannot take back what was "
                  "already read)")  # fmt: skip


@app.command()
def revoke(
    grant_id: Annotated[int, typer.Argument(help="The grant to end.")],
    owner: Annotated[str, typer.Option(help="The patient's address.")],
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """End a grant now: no key is released under it afterwards."""
    from healthnft import operations as ops

    with _network() as net:
        ops.revoke(net, owner, grant_id, passphrase)
    _emit({"grant_id": grant_id, "revoked": True}) if as_json else out.print(
        f"grant {grant_id} revoked"
    )


@app.command("open")
def open_record(
    token_id: Annotated[int, typer.Argument(help="Token id.")],
    as_address: Annotated[str, typer.Option("--as", help="Who opens it.")],
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="Write it as a file, as `wallet show --out` does "
                     "(a shared study as .png or its DICOM files)."),
    ] = None,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Open a record as a participant: its owner, or a grantee through the custodians.

    A burned record is reported as burned only to its last owner and to grantees
    who could open it then; anyone else gets the refusal a stranger gets.
    """
    from healthnft import operations as ops
    from healthnft.errors import AccessDenied, CredentialRejected
    from healthnft.wallet.wallet import BURNED

    with _network() as net:
        try:
            if out_file is not None:
                info = ops.write_record_file(net, as_address, token_id, out_file, passphrase)
                _emit(info) if as_json else out.print(f"wrote token {token_id} to {out_file}")
                return
            rec = ops.open_record(net, as_address, token_id, passphrase)
        except HealthNFTError as exc:
            # Reached only after the reader's keystore opened: they are who they claim.
            if isinstance(exc, CredentialRejected | UnknownParticipant):
                raise
            if net.wallet().could_see_burned(token_id, net.participant(as_address).address):
                raise AccessDenied(f"token {token_id}: {BURNED}") from None
            raise
    if as_json:
        _emit({"token_id": rec.token_id, "meta": {k: v for k, v in rec.meta.items()
                                                   if k != "attestation"},
               "resource": rec.resource})  # fmt: skip
    else:
        out.print(f"token {rec.token_id}: {rec.meta['resource_type']} ({rec.meta['category']})")
        out.print_json(data=rec.resource)


@app.command()
def request(
    owner: Annotated[str, typer.Option(help="The patient asked.")],
    as_address: Annotated[str, typer.Option("--as", help="Who asks (a registered member).")],
    purpose: Annotated[str, typer.Option(help="treatment|research|insurance|public-health")],
    token_id: Annotated[int | None, typer.Option(help="One token...")] = None,
    category: Annotated[str | None, typer.Option(help="...or a whole category.")] = None,
    days: Annotated[int, typer.Option(help="How long access would last.")] = 30,
    reward_wei: Annotated[int, typer.Option(help="Reward held in escrow for the patient.")] = 0,
    reason: Annotated[str, typer.Option(help="Why (kept off chain, in this home).")] = "",
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask a patient for access; a matching consent policy grants it at once."""
    from healthnft import operations as ops

    if (token_id is None) == (category is None):
        raise HealthNFTError("give --token-id or --category")
    with _network() as net:
        info = ops.request_access(net, as_address, owner, purpose, days=days, token_id=token_id,
                                  category=category, reward_wei=reward_wei, reason=reason,
                                  passphrase=passphrase)  # fmt: skip
    if as_json:
        _emit(info)
    else:
        out.print(f"request {info['request_id']}: {info['state']}"
                  + (f" (grant {info['grant_id']})" if info["grant_id"] else ""))  # fmt: skip


@app.command("requests")
def list_requests(
    owner: Annotated[str, typer.Option(help="The patient.")], as_json: JsonOpt = False
) -> None:
    """Requests made to a patient, with their state."""
    from healthnft import operations as ops

    with _network() as net:
        rows = ops.requests_for(net, owner)
    if as_json:
        _emit(rows)
        return
    for r in rows:
        what = f"token {r['token_id']}" if r["token_id"] else f"all {r['category']} records"
        out.print(f"#{r['request_id']} {r['state']}: {r['requester']} asks {what} for "
                  f"{r['purpose']}, {r['days']} days, reward {r['reward_wei']} wei"
                  + (f" — {r['reason']}" if r["reason"] else ""))  # fmt: skip


@app.command()
def approve(
    request_id: Annotated[int, typer.Argument(help="A pending request.")],
    owner: Annotated[str, typer.Option(help="The patient.")],
    deidentified_only: Annotated[bool, typer.Option(help="De-identified data only.")] = False,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Grant a pending request (its reward, if any, is paid to you)."""
    from healthnft import operations as ops

    with _network() as net:
        gid = ops.approve(net, owner, request_id, deidentified_only, passphrase)
    _emit({"request_id": request_id, "grant_id": gid}) if as_json else out.print(
        f"request {request_id} approved: grant {gid}"
    )


@app.command()
def decline(
    request_id: Annotated[int, typer.Argument(help="A pending request.")],
    owner: Annotated[str, typer.Option(help="The patient.")],
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Decline a pending request (its reward is refunded to the requester)."""
    from healthnft import operations as ops

    with _network() as net:
        ops.decline(net, owner, request_id, passphrase)
    _emit({"request_id": request_id, "declined": True}) if as_json else out.print(
        f"request {request_id} declined"
    )


@policy_app.command("add")
def policy_add(
    owner: Annotated[str, typer.Option(help="The patient.")],
    kind: Annotated[str, typer.Option(help="Who: pharma|research|insurer|government|hospital")],
    purpose: Annotated[str, typer.Option(help="treatment|research|insurance|public-health")],
    category: Annotated[str | None, typer.Option(help="Which category (none: any token).")] = None,
    days: Annotated[int, typer.Option(help="Longest access a request may get.")] = 365,
    valid_days: Annotated[int, typer.Option(help="How long the policy applies.")] = 365,
    deidentified_only: Annotated[bool, typer.Option(help="De-identified data only.")] = False,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve matching requests automatically, with no human in the loop."""
    import time

    from healthnft.ledger.consent import Consent

    with _network() as net:
        ident = net.identity(net.participant(owner).address, passphrase)
        idx = Consent(net.ledger).add_policy(
            ident.account, grantee_kind=kind, purpose=purpose, duration=days * 86400,
            valid_until=int(time.time()) + valid_days * 86400, category=category,
            deidentified_only=deidentified_only,
        )  # fmt: skip
    _emit({"policy": idx}) if as_json else out.print(
        f"policy {idx}: {kind} requests for {category or 'single records'} for {purpose} "
        f"are approved automatically for {valid_days} days"
    )


@policy_app.command("list")
def policy_list(
    owner: Annotated[str, typer.Option(help="The patient.")], as_json: JsonOpt = False
) -> None:
    """The patient's consent policies."""
    from healthnft.ledger.client import KIND_NAMES
    from healthnft.ledger.consent import CATEGORY_NAMES, PURPOSE_NAMES, Consent

    with _network() as net:
        consent = Consent(net.ledger)
        who = net.participant(owner).address
        count = int(consent.contract.functions.policy_count(who).call())
        rows = []
        for i in range(count):
            kind, cat, purpose, duration, deid, until, active = (
                consent.contract.functions.policies(who, i).call()
            )
            rows.append({"policy": i + 1, "kind": KIND_NAMES.get(kind),
                         "category": CATEGORY_NAMES.get(cat), "purpose": PURPOSE_NAMES.get(purpose),
                         "days": duration // 86400, "deidentified_only": deid,
                         "valid_until": until, "active": active})  # fmt: skip
    if as_json:
        _emit(rows)
        return
    for r in rows:
        state_word = "active" if r["active"] else "removed"
        what = r["category"] or "single records"
        out.print(f"#{r['policy']} {state_word}: {r['kind']} / {what} / {r['purpose']} / "
                  f"{r['days']} days")  # fmt: skip


@policy_app.command("remove")
def policy_remove(
    index: Annotated[int, typer.Argument(help="The policy number.")],
    owner: Annotated[str, typer.Option(help="The patient.")],
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Turn a policy off (grants it made stay until revoked)."""
    from healthnft.ledger.consent import Consent

    with _network() as net:
        ident = net.identity(net.participant(owner).address, passphrase)
        Consent(net.ledger).remove_policy(ident.account, index)
    _emit({"policy": index, "removed": True}) if as_json else out.print(
        f"policy {index} removed"
    )


@app.command("approve-amendment")
def approve_amendment(
    token_id: Annotated[int, typer.Argument(help="Your record to be corrected.")],
    owner: Annotated[str, typer.Option(help="The patient.")],
    issuer: Annotated[str, typer.Option(help="The hospital allowed to correct it.")],
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Allow a hospital to supersede one of your records with a corrected version."""
    from healthnft.services import amending

    with _network() as net:
        done = amending.approve_amendment(net, owner, token_id, issuer, passphrase)
    info = {"token_id": done.token_id, "issuer": done.issuer, "approved": done.approved}
    _emit(info) if as_json else out.print(f"{issuer} may now correct token {token_id}")


@app.command()
def amend(
    token_id: Annotated[int, typer.Argument(help="The record to correct.")],
    file: Annotated[Path, typer.Argument(help="The corrected FHIR resource (JSON).")],
    issuer: Annotated[str, typer.Option(help="The hospital correcting its record.")],
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Mint a corrected version of a record, with the owner's approval.

    The old one is marked superseded and points to the new one, in the same
    transaction; after a crash, running it again finishes the same correction.
    """
    from healthnft.services import amending

    with _network() as net:
        done = amending.amend(net, token_id, file, issuer, passphrase)
    info = {"token_id": done.token_id, "supersedes": done.supersedes}
    _emit(info) if as_json else out.print(f"token {done.token_id} corrects token {token_id}")


@app.command("access-log")
def access_log(
    owner: Annotated[str, typer.Option(help="The patient's address.")],
    as_json: JsonOpt = False,
) -> None:
    """Every key release for the owner's records: who, which token, purpose, when."""
    from datetime import UTC, datetime

    from healthnft import operations as ops

    with _network() as net:
        rows = ops.access_log(net, owner)
    if as_json:
        _emit(rows)
        return
    table = Table(title=f"{len(rows)} key releases for {owner}")
    for col in ("when", "token", "grantee", "purpose", "custodian"):
        table.add_column(col)
    for r in rows:
        when = datetime.fromtimestamp(r["time"], UTC).strftime("%Y-%m-%d %H:%M")
        table.add_row(when, str(r["token_id"]), r["grantee"], r["purpose"], r["custodian"])
    out.print(table)


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
    fetch_keys: Annotated[
        bool,
        typer.Option(
            "--fetch-keys",
            help="For an issuer in no --issuer-keys folder, fetch ISS/.well-known/jwks.json "
            "(and its CRL) over HTTPS. Off by default: verification is offline.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Verify SMART Health Cards: signature, issuer, revocation, FHIR content.

    Offline unless --fetch-keys: then an issuer's published keys prove who signed, and
    the verdict names that issuer (whether to trust it is still yours to decide).
    """
    from healthnft.credentials import HttpIssuer, TrustStore, read_card_inputs, verify_card

    try:
        trust = TrustStore.from_pairs(issuer_keys or [], fetch=HttpIssuer if fetch_keys else None)
        cards = read_card_inputs(files)
    except HealthNFTError as exc:
        if not as_json:
            raise
        # Scripts read one JSON verdict whatever went wrong (unreadable input included).
        _emit({"valid": False, "reason": str(exc), "iss": "", "resource_types": []})
        raise typer.Exit(exc.exit_code) from None
    results = [verify_card(jws, trust).as_dict() for jws in cards]
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
    from healthnft import operations as ops

    with _network() as net:
        card = ops.health_card(net, token_ids, out_dir, name, passphrase)
    info = card.as_dict()
    if as_json:
        _emit(info)
        return
    out.print(f"wrote {info['card_file']} ({', '.join(info['resource_types'])})")
    out.print(f"QR: {', '.join(info['qr_png_files'])}")
    out.print(f"verify: healthnft shc verify {info['card_file']} "
              f"--issuer-keys {info['iss']}={out_dir / 'issuer'}")  # fmt: skip


def _identity_file(home: Path, address: str) -> Path:
    return home / "credentials" / f"{address.lower()}.identity.jwt"


def _read_jws(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        raise HealthNFTError(f"{path.name}: cannot be read") from None


@credential_app.command("issue")
def credential_issue(
    patient: Annotated[str, typer.Option(help="The patient's wallet address.")],
    issuer: Annotated[str, typer.Option(help="Name of the hospital issuing.")],
    days: Annotated[int, typer.Option(help="Validity in days.")] = 365,
    out_file: Annotated[Path | None, typer.Option("--out", help="Where to write the JWS.")] = None,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue the patient a credential binding their DID to their wallet (no name, no data)."""
    import uuid
    from datetime import UTC, datetime, timedelta

    from healthnft.credentials.vc import issue_identity
    from healthnft.minting.attestation import bound_did

    with _network() as net:
        hospital = net.issuer_by_name(issuer)
        owner = net.patient(patient)
        subject_did = bound_did(net.ledger, owner.address)
        if subject_did is None:
            raise HealthNFTError(f"{owner.address} has no DID bound on chain")
        ident = net.identity(hospital.address, passphrase)
        now = datetime.now(UTC)
        cred_id = f"urn:uuid:{uuid.uuid4()}"
        until = now + timedelta(days=days)
        jws = issue_identity(ident.did_private, ident.did, subject_did=subject_did,
                             wallet=owner.address, valid_from=now, valid_until=until,
                             credential_id=cred_id)  # fmt: skip
        path = out_file or _identity_file(net.home, owner.address)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(jws + "\n")
    info = {"id": cred_id, "file": str(path), "holder": subject_did, "issuer": ident.did}
    _emit(info) if as_json else out.print(f"wrote {path} ({cred_id})")


@credential_app.command("verify")
def credential_verify(
    target: Annotated[str, typer.Argument(help="A token id (its issuer attestation) or a file.")],
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify a record's issuer attestation, or a credential file, against the chain.

    A file (identity credential or record attestation) is checked as ``verify TOKEN_ID``
    checks a record's: signature and validity, then the issuer's DID bound on chain to
    a registered hospital, no on-chain revocation, and the patient DID bound to the
    wallet it names.
    """
    from healthnft.credentials.vc import verify_credential
    from healthnft.minting.attestation import ChainTrust

    result: dict[str, Any]
    with _network() as net:
        if target.isdigit():
            token_id = int(target)
            row = net.catalog.record(token_id)
            owner = net.ledger.owner_of(token_id)
            if row is None or owner is None:
                raise UnknownParticipant(f"token {token_id} is not in this home's catalogue")
            rec = net.wallet().open(token_id, net.identity(owner, passphrase))
            problem = net.wallet().attestation_problem(row, rec.meta)
            vc = rec.meta.get("attestation")
            cred = verify_credential(vc) if isinstance(vc, str) and not problem else {}
            result = {"valid": problem is None, "reason": problem or "valid",
                      "id": cred.get("id"), "issuer": cred.get("issuer"),
                      "type": cred.get("type")}  # fmt: skip
        else:
            jws = _read_jws(Path(target))
            try:
                cred = ChainTrust(net.ledger).verify(jws)
                result = {"valid": True, "reason": "valid", "id": cred.get("id"),
                          "issuer": cred.get("issuer"), "type": cred.get("type")}  # fmt: skip
            except HealthNFTError as exc:
                result = {"valid": False, "reason": str(exc), "id": None, "issuer": None,
                          "type": None}  # fmt: skip
    if as_json:
        _emit(result)
    else:
        (sys.stdout if result["valid"] else sys.stderr).write(
            f"{'valid' if result['valid'] else 'invalid'}: {result['reason']}\n"
        )
    raise typer.Exit(0 if result["valid"] else 1)


@credential_app.command("revoke")
def credential_revoke(
    target: Annotated[str, typer.Argument(help="A token id (its attestation) or a file.")],
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke, as its issuer, a record's attestation or an issued credential (on chain)."""
    from healthnft.credentials.vc import credential_hash, verify_credential
    from healthnft.minting.attestation import attestation_id, did_address

    with _network() as net:
        if target.isdigit():
            row = net.catalog.record(int(target))
            if row is None:
                raise UnknownParticipant(f"token {target} is not in this home's catalogue")
            issuer = net.identity(row.issuer, passphrase)
            rec = net.wallet().open(int(target), issuer)  # the issuer holds the batch key too
            cred_id = attestation_id(str(rec.meta.get("attestation", "")))
        else:
            cred = verify_credential(_read_jws(Path(target)))
            address = did_address(net.ledger, str(cred.get("issuer")))
            if address is None or not net.has_key(address):
                raise HealthNFTError("only the credential's issuer can revoke it")
            issuer = net.identity(address, passphrase)
            cred_id = cred.get("id")
        if not cred_id:
            raise HealthNFTError("the credential has no id to revoke")
        net.ledger.revoke_credential(issuer.account, credential_hash(cred_id))
    _emit({"revoked": cred_id}) if as_json else out.print(f"revoked {cred_id}")


@credential_app.command("challenge")
def credential_challenge(
    domain: Annotated[str, typer.Option(help="Who asks (the verifier's domain).")],
    as_json: JsonOpt = False,
) -> None:
    """Issue a one-time challenge for a wallet to present credentials against."""
    from healthnft.credentials.vc import ChallengeStore

    with ChallengeStore(state.home / "challenges.sqlite") as store:
        challenge = store.issue(domain)
    _emit({"challenge": challenge, "domain": domain}) if as_json else out.print(challenge)


@credential_app.command("check-presentation")
def credential_check_presentation(
    file: Annotated[Path, typer.Argument(help="The presentation (vp+jwt) file.")],
    domain: Annotated[str, typer.Option(help="The domain the challenge was issued for.")],
    as_json: JsonOpt = False,
) -> None:
    """Verify a presentation against a challenge issued here; a replay is refused.

    Signatures are not enough (anyone can make a did:key): every credential's issuer
    must be a hospital with the issuer role on chain, none may be revoked or expired,
    and an identity credential's holder must be the DID bound to the wallet it names.
    """
    import base64

    import orjson

    from healthnft.credentials.vc import ChallengeStore
    from healthnft.minting.attestation import ChainTrust

    jws = _read_jws(file)
    try:
        part = jws.split(".")[1]
        nonce = orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))["nonce"]
    except (IndexError, KeyError, ValueError, TypeError, orjson.JSONDecodeError):
        raise HealthNFTError(f"{file.name}: not a presentation") from None
    try:
        with _network() as net, ChallengeStore(state.home / "challenges.sqlite") as store:
            vp = ChainTrust(net.ledger).verify_presentation(
                jws, challenge=str(nonce), domain=domain, challenges=store
            )
        result = {"valid": True, "reason": "valid", "holder": vp.holder,
                  "credentials": len(vp.credentials)}  # fmt: skip
    except HealthNFTError as exc:
        result = {"valid": False, "reason": str(exc), "holder": None, "credentials": 0}
    if as_json:
        _emit(result)
    else:
        (sys.stdout if result["valid"] else sys.stderr).write(
            f"{'valid' if result['valid'] else 'invalid'}: {result['reason']}\n"
        )
    raise typer.Exit(0 if result["valid"] else 1)


@wallet_app.command("present")
def wallet_present(
    owner: Annotated[str, typer.Option(help="The wallet presenting.")],
    challenge: Annotated[str, typer.Option(help="The verifier's challenge.")],
    domain: Annotated[str, typer.Option(help="The verifier's domain.")],
    credential: Annotated[
        list[Path] | None,
        typer.Option(help="Credential files (default: the wallet's identity credential)."),
    ] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the VP here.")] = None,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign a Verifiable Presentation of the wallet's credentials for one challenge.

    With --json, one JSON document carries the presentation itself as well as who
    presents what, so a script need not parse the JWS to route it.
    """
    from healthnft.credentials.vc import create_presentation

    with _network() as net:
        holder = net.identity(net.participant(owner).address, passphrase)
        files = credential or [_identity_file(net.home, holder.address)]
        creds = [_read_jws(f) for f in files]
        vp = create_presentation(holder.did_private, holder.did, creds, challenge=challenge,
                                 domain=domain)  # fmt: skip
    if out_file:
        out_file.write_text(vp + "\n")
    if as_json:
        _emit({"holder": holder.did, "domain": domain, "credentials": len(creds),
               "file": str(out_file) if out_file else None, "presentation": vp})  # fmt: skip
    elif not out_file:
        sys.stdout.write(vp + "\n")


@app.command()
def deidentify(
    token_id: Annotated[int, typer.Argument(help="The record to copy without identifiers.")],
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Mint a de-identified copy of a record (HIPAA Safe Harbor), linked to the original.

    The copy is a token of its own in the same wallet, for research sharing: a grant
    or policy limited to de-identified data releases copies only.
    """
    from healthnft import operations as ops

    with _network() as net:
        info = ops.deidentify(net, token_id, passphrase)
    if as_json:
        _emit({"token_id": info["token_id"], "derived_from": token_id, "method": info["method"]})
    else:
        out.print(f"token {info['token_id']}: de-identified copy of token {token_id} "
                  f"({info['method']})")  # fmt: skip


# -- the web wallet and network service ----------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    session_minutes: Annotated[int, typer.Option(help="How long a sign-in lasts.")] = 30,
    passphrase: PassOpt = None,
) -> None:
    """Serve the web health wallet and its API (OpenAPI at /openapi.json, docs at /docs)."""
    import uvicorn

    from healthnft.api import create_app

    web = create_app(state.home, passphrase=passphrase, session_ttl_s=session_minutes * 60)
    net = web.state.home.net
    url = f"http://{host}:{port}/"
    err.print(f"healthnft web wallet for {state.home} at {url} (API docs: {url}docs)")
    if net.is_demo:
        patients = [p for p in net.catalog.participants() if p.kind == "patient"]
        if patients:
            err.print(f"demo: open {url}, choose a demo wallet (e.g. {patients[0].address}) "
                      "and sign in; demo keystores are unlocked in the browser with the "
                      "documented passphrase 'healthnft-demo'")  # fmt: skip
    # A long-lived server with a large, stable heap (contracts, chain state): move what
    # start-up built out of the collector's sight and collect young objects less often,
    # so collections stay short while requests are served.
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    uvicorn.run(web, host=host, port=port, log_level="warning", access_log=False)


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
