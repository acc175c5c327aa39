"""Credentials: identity credentials, attestations, presentations, SMART Health Cards."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from healthnft.cli.common import (
    JsonOpt,
    PassOpt,
    credential_app,
    emit,
    network,
    out,
    say,
    shc_app,
    verdict,
    wallet_app,
)
from healthnft.errors import HealthNFTError
from healthnft.services import credentials


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
    with network() as net:
        cred = credentials.issue_identity(net, patient, issuer, days, out_file, passphrase)
    say(as_json, cred.as_dict(), f"wrote {cred.file} ({cred.id})")


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
    with network(write=False) as net:
        if target.isdigit():
            result = credentials.verify_attestation(net, int(target), passphrase)
        else:
            result = credentials.verify_file(net, Path(target))
    verdict(as_json, result.as_dict("valid", "reason", "id", "issuer", "type"),
            f"{'valid' if result.valid else 'invalid'}: {result.reason}")


@credential_app.command("revoke")
def credential_revoke(
    target: Annotated[str, typer.Argument(help="A token id (its attestation) or a file.")],
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke, as its issuer, a record's attestation or an issued credential (on chain)."""
    with network() as net:
        cred_id = credentials.revoke(net, target, passphrase)
    say(as_json, {"revoked": cred_id}, f"revoked {cred_id}")


@credential_app.command("challenge")
def credential_challenge(
    domain: Annotated[str, typer.Option(help="Who asks (the verifier's domain).")],
    as_json: JsonOpt = False,
) -> None:
    """Issue a one-time challenge for a wallet to present credentials against."""
    with network() as net:
        challenge = credentials.new_challenge(net, domain)
    say(as_json, {"challenge": challenge, "domain": domain}, challenge)


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
    with network() as net:
        result = credentials.check_presentation(net, file, domain)
    verdict(as_json, result.as_dict("valid", "reason", "holder", "credentials"),
            f"{'valid' if result.valid else 'invalid'}: {result.reason}")


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
    with network() as net:
        vp = credentials.present(net, owner, challenge, domain, credential or [], passphrase)
    if out_file:
        out_file.write_text(vp.presentation + "\n")
    if as_json:
        emit({"holder": vp.holder, "domain": domain, "credentials": vp.credentials,
              "file": str(out_file) if out_file else None, "presentation": vp.presentation})
    elif not out_file:
        sys.stdout.write(vp.presentation + "\n")


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

    Each verdict names its card by position ("file 2 of 3"), never by file name.

    Offline unless --fetch-keys: then an issuer's published keys prove who signed, and
    the verdict names that issuer (whether to trust it is still yours to decide).
    """
    try:
        results = credentials.verify_cards(files, issuer_keys or [], fetch_keys)
    except HealthNFTError as exc:
        if not as_json:
            raise
        # Scripts read one JSON verdict whatever went wrong (unreadable input included).
        emit({"source": "", "valid": False, "reason": str(exc), "iss": "",
              "resource_types": []})  # fmt: skip
        raise typer.Exit(exc.exit_code) from None
    ok = bool(results) and all(r["valid"] for r in results)
    if as_json:
        emit(results[0] if len(results) == 1 else results)
    else:
        for r in results:
            verdict_ = "valid" if r["valid"] else "invalid"
            line = f"{r['source']}: {verdict_}: {r['reason']} (iss {r['iss']})"
            (sys.stdout if r["valid"] else sys.stderr).write(line + "\n")
    raise typer.Exit(0 if ok else 1)


@shc_app.command("export")
def shc_export(
    token_ids: Annotated[list[int], typer.Argument(help="Immunization or laboratory tokens.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the card, QR and jwks.")],
    name: Annotated[str, typer.Option(help="File name stem of the card.")] = "health-card",
    qr: Annotated[bool, typer.Option(
        "--qr/--no-qr",
        help="Also write the card's QR code (one code; a card too large for one is refused: "
        "chunked codes are deprecated). --no-qr: the .smart-health-card file only.",
    )] = True,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace a card of the same --name already in the folder.",
    )] = False,
    passphrase: PassOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export records as a SMART Health Card signed by their issuing hospital.

    Writes NAME.smart-health-card, its QR code (NAME-qr.png and NAME-qr.txt) and the
    issuer's public key (issuer/.well-known/jwks.json) in the --out folder. A card that
    does not fit one QR code is refused: export it with --no-qr, or fewer records a card.
    """  # fmt: skip
    with network() as net:
        card = credentials.health_card(net, token_ids, out_dir, name, passphrase, qr=qr,
                                       replace=force)  # fmt: skip
    info = card.as_dict()
    if as_json:
        emit(info)
        return
    out.print(f"wrote {info['card_file']} ({', '.join(info['resource_types'])})")
    out.print(f"QR: {', '.join(info['qr_png_files']) or 'none (--no-qr)'}")
    out.print(f"verify: healthnft shc verify {info['card_file']} "
              f"--issuer-keys {info['iss']}={out_dir / 'issuer'}")  # fmt: skip
