"""``healthnft drug …``: medicine packs against counterfeits (issue 15).

Thin over :mod:`healthnft.services.drugs`: members are named as this home names them
(``participant list``), never by hex; codes are typed as a scanner gives them (element
string, ``(01)…(21)…`` or a Digital Link URI) or read from a photo (``--image``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from healthnft.cli.common import JsonOpt, PassOpt, app, emit, network, out, say
from healthnft.services import drugs

drug_app = typer.Typer(
    help="Medicine packs: commission batches, verify and dispense packs, recall, quarantine.",
    no_args_is_help=True,
)
app.add_typer(drug_app, name="drug")

CODE_HELP = ("The pack's code as a scanner gives it: GS1 element string (]d2 01…21…<GS>10…), "
             "human-readable (01)…(21)…(10)…(17)…, or a GS1 Digital Link URI.")  # fmt: skip
CodeArg = Annotated[str | None, typer.Argument(metavar="CODE", help=CODE_HELP,
                                               show_default=False)]  # fmt: skip
ImageOpt = Annotated[Path | None, typer.Option(
    "--image", metavar="FILE", help="A photo of the pack's DataMatrix (PNG, JPEG…) instead "
    "of CODE.", show_default=False)]  # fmt: skip
GtinOpt = Annotated[str, typer.Option("--gtin", help="The product's GTIN (8 to 14 digits).")]
LotOpt = Annotated[str, typer.Option("--lot", help="The batch/lot number.")]
ByOpt = Annotated[str, typer.Option("--by", metavar="NAME",
                                    help="The pharmacy or hospital, by its name in this home.")]


def _input(code: str | None, image: Path | None) -> tuple[str | None, bytes | None]:
    from healthnft.errors import InvalidInput

    if (code is None) == (image is None):
        raise InvalidInput("give a pack CODE or --image FILE (one of them)")
    return code, None if image is None else drugs.load_image(image)


ProductNameOpt = Annotated[str | None, typer.Option(
    "--product-name", metavar="TEXT", help="Issue the manufacturer's product credential for "
    "the GTIN with this name first (if it does not hold one saying so).",
    show_default=False)]  # fmt: skip


@drug_app.command("product")
def product(
    manufacturer: Annotated[str, typer.Option(
        "--manufacturer", metavar="NAME", help="The manufacturer, by its name in this home.")],
    gtin: GtinOpt,
    name: Annotated[str, typer.Option(
        "--name", metavar="TEXT", help="The product, e.g. 'Amoxicillin 500 mg capsules'.")],
    form: Annotated[str | None, typer.Option(
        "--form", metavar="TEXT", help="Dose form, e.g. capsule.", show_default=False)] = None,
    strength: Annotated[str | None, typer.Option(
        "--strength", metavar="TEXT", help="Strength, e.g. '500 mg'.",
        show_default=False)] = None,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Issue the manufacturer's product credential (a W3C VC) for a GTIN, kept in this home.

    Needed before commissioning the GTIN; a pack reads genuine only when its batch was
    commissioned by the manufacturer this credential names."""
    with network() as net:
        done = drugs.product(net, manufacturer, gtin, name, form=form, strength=strength,
                             passphrase=passphrase)  # fmt: skip
    again = " (already issued: nothing signed)" if done.already else ""
    say(as_json, done.as_dict(), f"product credential for GTIN {done.gtin} ({done.name}) "
        f"issued by {done.manufacturer}{again}")


@drug_app.command("product-revoke")
def product_revoke(
    manufacturer: Annotated[str, typer.Option(
        "--manufacturer", metavar="NAME", help="The manufacturer, by its name in this home.")],
    gtin: GtinOpt,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Revoke the manufacturer's product credential for a GTIN (on chain) and forget it.

    Every home then reads the product's packs unknown until `drug product` issues a new
    one."""
    with network() as net:
        done = drugs.revoke_product(net, manufacturer, gtin, passphrase)
    say(as_json, {**done.as_dict(), "revoked": True}, f"product credential for GTIN "
        f"{done.gtin} ({done.name}) revoked by {done.manufacturer}")


@drug_app.command("commission")
def commission(
    manufacturer: Annotated[str, typer.Option(
        "--manufacturer", metavar="NAME", help="The manufacturer, by its name in this home.")],
    gtin: GtinOpt,
    lot: LotOpt,
    expiry: Annotated[str, typer.Option(
        "--expiry", metavar="YYMMDD", help="Expiry as printed (GS1 AI 17; DD 00 = month end).")],
    serials: Annotated[Path, typer.Option(
        "--serials", metavar="FILE", help="One serial number a line.")],
    product_name: ProductNameOpt = None,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Commission a batch: one Merkle root on chain, the salts kept in this home.

    The manufacturer must hold the GTIN's product credential (``drug product``, or give
    --product-name). Serials never go on chain in clear, nor does the batch size.
    Running it again with the same batch answers the first result and sends nothing."""
    with network() as net:
        done = drugs.commission(net, manufacturer, gtin, lot, expiry, serials, passphrase,
                                product_name=product_name)  # fmt: skip
    again = " (already commissioned: nothing sent)" if done.already else ""
    say(as_json, done.as_dict(), f"commissioned {done.packs} packs of GTIN {done.gtin} lot "
        f"{done.lot}, expiry {done.expiry}, by {done.manufacturer}{again}")


@drug_app.command("verify")
def verify(code: CodeArg = None, image: ImageOpt = None, as_json: JsonOpt = False) -> None:
    """Verify a pack: active, unknown, mismatch, expired, recalled, quarantined or dispensed.

    Exits 0 when the pack may be handed out (active), 1 otherwise. Never says who
    dispensed a pack."""
    text, picture = _input(code, image)
    with network(write=False) as net:
        checked = drugs.verify(net, text, image=picture)
    data = checked.as_dict()
    if as_json:
        emit(data)
    else:
        out.print(f"[bold]{data['status'].upper()}[/bold]  {data['reason']}", highlight=False)
        if "product" in data:
            out.print(f"{data['product']['name']}  by {data['product']['manufacturer']}",
                      markup=False, highlight=False)  # fmt: skip
        out.print(f"GTIN {data['gtin']}  lot {data['lot']}  expiry {data['expiry']}  "
                  f"serial {data['serial']}", markup=False, highlight=False)  # fmt: skip
    raise typer.Exit(0 if data["status"] == "active" else 1)


@drug_app.command("dispense")
def dispense(
    code: CodeArg = None,
    by: ByOpt = ...,  # type: ignore[assignment]
    patient: Annotated[str | None, typer.Option(
        "--patient", metavar="ADDRESS", help="Also mint a FHIR MedicationDispense into this "
        "patient's wallet (the dispenser must hold the issuer role: a hospital or a "
        "pharmacy).",
        show_default=False)] = None,
    image: ImageOpt = None,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Dispense (decommission) a pack.

    Refused with its status, nothing changed, unless the pack is active. A pack already
    dispensed is recorded as an ALERT for its manufacturer and the regulator (exit 1)."""
    text, picture = _input(code, image)
    with network() as net:
        done = drugs.dispense(net, text, by, patient, image=picture, passphrase=passphrase)
    line = done.message
    if done.token_id is not None:
        line += f" MedicationDispense minted as token {done.token_id} for {done.patient}."
    say(as_json, done.as_dict(), line)
    raise typer.Exit(1 if done.alert else 0)


@drug_app.command("undo")
def undo(code: CodeArg = None, by: ByOpt = ..., image: ImageOpt = None,  # type: ignore[assignment]
         passphrase: PassOpt = None, as_json: JsonOpt = False) -> None:  # fmt: skip
    """Undo one's own dispense of a pack, within 10 days (EU FMD)."""
    text, picture = _input(code, image)
    with network() as net:
        done = drugs.undo(net, text, by, image=picture, passphrase=passphrase)
    say(as_json, done.as_dict(), f"undone: pack {done.serial} is active again")


@drug_app.command("recall")
def recall(
    manufacturer: Annotated[str, typer.Option(
        "--manufacturer", metavar="NAME", help="The lot's manufacturer, by its name.")],
    gtin: GtinOpt, lot: LotOpt, passphrase: PassOpt = None, as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Recall a lot (only the manufacturer that commissioned it): every pack reads recalled."""
    with network() as net:
        done = drugs.recall(net, manufacturer, gtin, lot, passphrase)
    say(as_json, done.as_dict(), f"recalled lot {done.lot} of GTIN {done.gtin}")


RegulatorOpt = Annotated[str, typer.Option(
    "--by", metavar="NAME", help="The regulator (a government member), by its name.")]


@drug_app.command("quarantine")
def quarantine(by: RegulatorOpt, gtin: GtinOpt, lot: LotOpt, passphrase: PassOpt = None,
               as_json: JsonOpt = False) -> None:  # fmt: skip
    """Quarantine a lot (a regulator): its packs read quarantined until released."""
    with network() as net:
        done = drugs.quarantine(net, by, gtin, lot, passphrase)
    say(as_json, done.as_dict(), f"quarantined lot {done.lot} of GTIN {done.gtin}")


@drug_app.command("release")
def release(by: RegulatorOpt, gtin: GtinOpt, lot: LotOpt, passphrase: PassOpt = None,
            as_json: JsonOpt = False) -> None:  # fmt: skip
    """Lift a lot's quarantine (a regulator)."""
    with network() as net:
        done = drugs.release(net, by, gtin, lot, passphrase)
    say(as_json, done.as_dict(), f"released lot {done.lot} of GTIN {done.gtin}")


@drug_app.command("alerts")
def alerts(
    gtin: GtinOpt, lot: LotOpt,
    by: Annotated[str, typer.Option("--by", metavar="NAME", help="The lot's manufacturer or a "
                                    "regulator, by its name.")],
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Second-dispense alerts of a lot (its manufacturer, or a regulator). Never who."""
    with network(write=False) as net:
        rows = drugs.alerts(net, gtin, lot, by)
    if as_json:
        emit(rows)
        return
    if not rows:
        out.print("no alerts")
    for row in rows:
        out.print(f"{row['time']}  pack {row.get('serial', row['pack'])} dispensed again "
                  f"(first: {row['first_dispensed']})", markup=False, highlight=False)


@drug_app.command("events")
def events(
    gtin: GtinOpt, lot: LotOpt,
    epcis: Annotated[Path, typer.Option("--epcis", metavar="FILE",
                                        help="Write the EPCIS 2.0 JSON-LD document here.")],
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Export a lot's history (commission, dispense, undo, recall, quarantine) as EPCIS 2.0.

    The manufacturer's export: this home must hold the lot's salts."""
    with network(write=False) as net:
        doc = drugs.export_events(net, gtin, lot, epcis)
    count = len(doc["epcisBody"]["eventList"])
    say(as_json, {"file": str(epcis), "events": count}, f"{count} EPCIS events written to {epcis}")
