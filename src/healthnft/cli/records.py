"""Records: mint, list, show, open, verify, transfer, burn, de-identify, amend."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.highlighter import JSONHighlighter
from rich.markup import escape
from rich.table import Table

from healthnft.cli.common import (
    JsonOpt,
    PassOpt,
    app,
    emit,
    network,
    out,
    progress_bar,
    say,
    verdict,
    wallet_app,
    warn,
)
from healthnft.errors import InvalidInput
from healthnft.services import amending, describe, own_records, records
from healthnft.services.minting import MintProgress, mint_files

OutOpt = Annotated[
    Path | None,
    typer.Option("--out", help="Write it as a file: .txt (a note), .pdf, .png or .json; "
                 "an imaging study as .png (its first image), a folder (its DICOM "
                 "files) or .dcm (a single-instance study)."),
]  # fmt: skip


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
    bar = progress_bar(as_json)  # drawn once the input is read and validated
    task = bar.add_task("minting", total=None)
    sealing: list[int] = []

    def totals(n: int, imaging: int) -> None:
        bar.update(task, total=n)
        if imaging:
            sealing.append(bar.add_task("encrypting imaging (bytes)", total=imaging))
        bar.start()

    watch = MintProgress(on_total=totals, on_records=lambda n: bar.advance(task, n),
                         on_bytes=lambda n: bar.advance(sealing[0], n) if sealing else None,
                         on_warnings=None if as_json else warn)  # in the JSON result too
    try:
        with network() as net:
            res = mint_files(net, issuer, patient, files, passphrase, watch)
    finally:
        if bar.live.is_started:
            bar.stop()
    say(as_json, res.as_dict(),
        f"minted {res.records_minted} records into {res.patient} in {res.batches} batch(es)"
        + (f"; {res.already_minted} were already minted" if res.already_minted else ""))


@wallet_app.command("list")
def wallet_list(
    owner: Annotated[str | None, typer.Option(
        help="Wallet address (default: the member of a joined home, such as a patient's own).",
        show_default=False)] = None,
    fetch: Annotated[bool, typer.Option(
        "--fetch/--no-fetch", help="Open a record held at its hospital's node once, on this "
        "device, to show its type and date (then kept in this home's cache).")] = True,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """The records a wallet owns (confirmed on chain).

    In a patient's own home the records stay at the node of the hospital that minted
    them: each is listed from the chain, and its type and date come from opening it here
    (ciphertext, wrapped key and proof fetched, checked and decrypted on this device).
    """
    with network(write=False) as net:
        rows = own_records.list_own(net, owner, passphrase, fetch=fetch)
    if as_json:
        emit([{k: r.as_dict()[k] for k in ("token_id", "category", "resource_type", "status",
                                           "effective_date")} for r in rows])  # fmt: skip
        return
    table = Table(title=f"{len(rows)} records of {owner or 'this wallet'}")
    for col in ("token", "category", "type", "date", "status"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r.token_id), r.category, r.resource_type, r.effective_date or "",
                      r.status)  # fmt: skip
    out.print(table)


def _show(token_id: int, reader: str | None, out_file: Path | None, passphrase: str | None,
          as_json: bool) -> None:  # fmt: skip
    """Open a record (as ``reader``, default its owner) and print it, or write it as a file.

    The owner's ``--json`` keeps the issuer's attestation (to verify or present it);
    another reader's does not.
    """
    with network() as net:
        if out_file is not None:
            saved = records.save_record(net, reader, token_id, out_file, passphrase)
            say(as_json, saved.as_dict(), f"wrote token {token_id} to {out_file}")
            return
        rec = records.open_record(net, reader, token_id, passphrase)
    meta = rec.meta if reader is None else {k: v for k, v in rec.meta.items()
                                            if k != "attestation"}  # fmt: skip
    if as_json:  # decimals as the hospital sent them (5.60), not through a float
        doc = {"token_id": rec.token_id, "meta": meta, "resource": rec.resource}
        sys.stdout.write(describe.json_bytes(doc, indent=True).decode() + "\n")
        return
    when = rec.meta.get("effective_date") or "no date"
    out.print(f"token {rec.token_id}: {rec.meta['resource_type']} "
              f"({rec.meta['category']}, {when})")  # fmt: skip
    if not rec.is_study:  # the exact text, highlighted (rich's JSON would re-read it as floats)
        out.print(JSONHighlighter()(rec.resource_json().decode()))
        return
    headline, series = records.describe_study(rec)
    out.print(escape(headline))
    table = Table()
    for col in ("series", "modality", "description", "instances"):
        table.add_column(col)
    for row in series:
        table.add_row(*map(escape, row))
    out.print(table)


@wallet_app.command("show")
def wallet_show(
    token_id: Annotated[int, typer.Argument(help="Token id.")],
    out_file: OutOpt = None,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Decrypt and show a record (as its owner), or write it as a file with --out.

    In a patient's own home the record is fetched from the node of the hospital that
    minted it (ciphertext, wrapped key, proof) and checked and decrypted here; anything
    altered on the way is refused as tampered, and nothing is shown.
    """
    _show(token_id, None, out_file, passphrase, as_json)


@app.command("open")
def open_record(
    token_id: Annotated[int, typer.Argument(help="Token id.")],
    as_address: Annotated[str, typer.Option("--as", help="Who opens it.")],
    out_file: OutOpt = None,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Open a record as a participant: its owner, or a grantee through the custodians.

    A burned record is reported as burned only to its last owner and to grantees
    who could open it then; anyone else gets the refusal a stranger gets.
    """
    _show(token_id, as_address, out_file, passphrase, as_json)


@app.command()
def verify(
    token_id: Annotated[int, typer.Argument(help="Token id.")],
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a record against the chain: commitment, Merkle proof, root and owner.

    For an imaging study, every encrypted chunk and instance too.
    """
    with network(write=False) as net:
        result = records.verify_record(net, token_id, passphrase)
    verdict(as_json, {"valid": result.valid, "reason": result.reason},
            ("valid: " if result.valid else "invalid: ") + result.reason)


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
    with network() as net:
        done = records.transfer(net, owner, token_id, to, passphrase)
    say(as_json, done.as_dict(), f"token {token_id} now belongs to {done.owner} ({done.note})")


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
    if not yes:
        raise InvalidInput("burning is irreversible: add --yes to confirm")
    with network() as net:
        records.burn(net, owner, token_id, passphrase, confirm=yes)
    say(as_json, {"token_id": token_id, "burned": True},
        f"token {token_id} burned; its record is unrecoverable")


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
    with network() as net:
        copy = records.deidentify(net, token_id, passphrase)
    say(as_json, {"token_id": copy.token_id, "derived_from": token_id, "method": copy.method},
        f"token {copy.token_id}: de-identified copy of token {token_id} ({copy.method})")


@app.command("approve-amendment")
def approve_amendment(
    token_id: Annotated[int, typer.Argument(help="Your record to be corrected.")],
    owner: Annotated[str, typer.Option(help="The patient.")],
    issuer: Annotated[str, typer.Option(help="The hospital allowed to correct it.")],
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Allow a hospital to supersede one of your records with a corrected version."""
    with network() as net:
        done = amending.approve_amendment(net, owner, token_id, issuer, passphrase)
    say(as_json, done.as_dict(), f"{issuer} may now correct token {token_id}")


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
    with network() as net:
        res = amending.amend(net, token_id, file, issuer, passphrase)
    say(as_json, res.as_dict(), f"token {res.token_id} corrects token {token_id}")
