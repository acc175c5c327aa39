"""Issuing a SMART Health Card: sign a patient's resources, write the card, QR and key.

:func:`export_card` minimizes the resources (:mod:`healthnft.credentials.shc.bundle`),
validates them, signs the card (:mod:`healthnft.credentials.shc.codec`), writes the
``.smart-health-card`` file, its one QR code (content and picture), and publishes the
issuer's public key where :class:`~healthnft.credentials.shc.trust.FolderIssuer` reads
it, so the card verifies offline through the very same code path as any other.

Nothing is lost to an export: every check (the folder, a card of the same name already
there, a card too large for one QR code) is made before the first byte is written, and
a card already there is replaced only when the caller says so. The card and its QR code
carry health data, so they are written readable by their owner only.
"""

from __future__ import annotations

import io
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from joserfc.jwk import ECKey

from healthnft.credentials.shc.bundle import build_bundle
from healthnft.credentials.shc.codec import FHIR_VERSION, HEALTH_CARD_TYPE, public_jwk, sign_card
from healthnft.credentials.shc.qr import QR_SINGLE_MAX_CHARS, encode_qr, qr_code
from healthnft.credentials.shc.trust import read_trust_json
from healthnft.errors import Conflict, CredentialRejected, InvalidInput, InvalidRecord
from healthnft.records.fhir import SourceResource, validate

__all__ = ["ExportedCard", "export_card"]

_CARD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
#: QR chunk files an earlier version wrote beside a card (``<name>-qr-<i>.txt|png``).
_OLD_CHUNK = re.compile(r"-qr-[0-9]+\.(txt|png)")


@dataclass(frozen=True)
class ExportedCard:
    """Where :func:`export_card` wrote a card, and what it holds (no health data).

    ``qr_text_files`` and ``qr_png_files`` hold the one QR code's files, or nothing when
    the card was exported without a QR code."""

    jws: str = field(repr=False)
    iss: str
    kid: str
    resource_types: tuple[str, ...]
    card_file: Path
    qr_text_files: tuple[Path, ...]
    qr_png_files: tuple[Path, ...]
    jwks_file: Path

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary for a CLI."""
        return {
            "iss": self.iss,
            "kid": self.kid,
            "resource_types": list(self.resource_types),
            "card_file": str(self.card_file),
            "qr_text_files": [str(p) for p in self.qr_text_files],
            "qr_png_files": [str(p) for p in self.qr_png_files],
            "jwks_file": str(self.jwks_file),
        }


def export_card(
    bundle_resources: Sequence[Mapping[str, Any]],
    issuer_key: ECKey,
    iss: str,
    out_dir: Path,
    name: str,
    *,
    nbf: float | None = None,
    qr: bool = True,
    replace: bool = False,
) -> ExportedCard:
    """Issue a SMART Health Card for ``bundle_resources`` and write it under ``out_dir``.

    Writes ``<name>.smart-health-card``, with ``qr`` its QR content ``<name>-qr.txt`` and
    picture ``<name>-qr.png`` (one code, version 22 at most: a card too large for it is
    refused with :class:`InvalidInput`, never chunked), and publishes the issuer's public
    key in ``out_dir/issuer/.well-known/jwks.json`` (merged with keys already there), so
    ``TrustStore.from_folders({iss: out_dir / "issuer"})`` verifies the card offline.
    Resources are minimized (:func:`build_bundle`) and validated before signing so that
    no card is issued that :func:`verify_card` refuses. A card of the same name already
    in ``out_dir`` is :class:`Conflict` unless ``replace``; ``out_dir`` naming a file is
    :class:`InvalidInput`; in both cases nothing is written.
    """
    if not _CARD_NAME.fullmatch(name):
        raise InvalidRecord("card name must be a plain file name (letters, digits, . _ -)")
    if not re.fullmatch(r"https://[^\s/]+(/[^\s]*)?", iss) or iss.endswith("/"):
        raise InvalidRecord("issuer URL must be https:// and must not end with '/'")
    if not isinstance(issuer_key, ECKey) or not issuer_key.is_private:
        raise CredentialRejected("issuer key must be a private EC P-256 JWK")
    published = public_jwk(issuer_key)
    kid = published["kid"]
    if not bundle_resources:
        raise InvalidRecord("a card needs at least one resource")

    bundle = build_bundle(bundle_resources)
    for n, entry in enumerate(bundle["entry"]):
        validate(SourceResource(entry["resource"], f"resource {n}"))
    claims = {
        "iss": iss,
        "nbf": int(time.time()) if nbf is None else nbf,
        "vc": {
            "type": [HEALTH_CARD_TYPE],
            "credentialSubject": {"fhirVersion": FHIR_VERSION, "fhirBundle": bundle},
        },
    }
    compact = sign_card(claims, issuer_key)
    if qr and len(compact) > QR_SINGLE_MAX_CHARS:
        raise InvalidInput(
            f"the card is too large for one QR code ({len(compact)} characters; one version "
            f"22 code holds {QR_SINGLE_MAX_CHARS}) and chunked QR codes are deprecated: "
            "export the .smart-health-card file without a QR code (shc export --no-qr; "
            '"qr": false in the web API), or put fewer records on each card'
        )
    qr_content = encode_qr(compact) if qr else None

    card_file = out_dir / f"{name}.smart-health-card"
    qr_files = (out_dir / f"{name}-qr.txt", out_dir / f"{name}-qr.png")
    old_chunks = _prepare_folder(out_dir, name, [card_file, *qr_files], replace)
    card = {"verifiableCredential": [compact]}
    write_atomic(card_file, orjson.dumps(card, option=orjson.OPT_INDENT_2))
    for stale in old_chunks:  # an earlier version's chunks of the card just replaced
        stale.unlink(missing_ok=True)
    texts: tuple[Path, ...] = ()
    pngs: tuple[Path, ...] = ()
    if qr_content is not None:
        picture = io.BytesIO()
        qr_code(qr_content).save(picture, kind="png", scale=4, border=4)
        write_atomic(qr_files[0], (qr_content + "\n").encode())
        write_atomic(qr_files[1], picture.getvalue())
        texts, pngs = qr_files[:1], qr_files[1:]
    else:
        for stale in qr_files:  # the QR code of the card just replaced is not this card's
            stale.unlink(missing_ok=True)
    jwks_file = _publish_key(out_dir / "issuer", published)
    types: list[str] = []
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] not in types:
            types.append(entry["resource"]["resourceType"])
    return ExportedCard(compact, iss, kid, tuple(types), card_file, texts, pngs, jwks_file)


def _prepare_folder(out_dir: Path, name: str, files: Sequence[Path],
                    replace: bool) -> list[Path]:  # fmt: skip
    """Make ``out_dir`` (a folder) ready for a card's ``files``; the chunk files of an
    earlier card of this name, to delete once the new card is written.

    Refuses, before anything is written: a file where the folder should be, and unless
    ``replace``, a card of this name already there. Messages never name the folder or
    the card: either may carry the patient's name."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidInput(
            "--out names a file, not a folder: give a new or an existing folder for the "
            "card, its QR code and the issuer's key (the file is left as it was)"
        )
    old_chunks = []
    if out_dir.is_dir():
        old_chunks = [p for p in out_dir.glob(f"{name}-qr-*")
                      if _OLD_CHUNK.fullmatch(p.name[len(name):])]  # fmt: skip
        if not replace and (old_chunks or any(p.exists() for p in files)):
            raise Conflict(
                "the --out folder already holds a card of this name: choose another --name "
                "or folder, or pass --force to replace it"
            )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InvalidInput("--out is inside a file, not a folder: give a folder") from None
    except OSError as exc:
        raise InvalidInput(f"cannot create the --out folder ({exc.strerror})") from None
    return old_chunks


def _publish_key(issuer_dir: Path, published: Mapping[str, str]) -> Path:
    path = issuer_dir / ".well-known" / "jwks.json"
    keys: list[Any] = []
    if path.exists():
        existing = read_trust_json(path)
        if not isinstance(existing.get("keys"), list):
            raise CredentialRejected(f"{path}: exists but is not a JWK set")
        keys = [
            k
            for k in existing["keys"]
            if not (isinstance(k, dict) and k.get("kid") == published["kid"])
        ]
    keys.append(dict(published))
    path.parent.mkdir(parents=True, exist_ok=True)
    # A public key, to be published: readable by others, unlike the card.
    write_atomic(path, orjson.dumps({"keys": keys}, option=orjson.OPT_INDENT_2), mode=0o644)
    return path


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write via a temporary file and rename: readers never see half a file. The file
    is created with ``mode`` (default: its owner only; the umask may narrow it)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # a crashed write's leftover: created afresh with ``mode``
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    tmp.replace(path)
