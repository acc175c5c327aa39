"""Issuing a SMART Health Card: sign a patient's resources, write the card, QR and key.

:func:`export_card` minimizes the resources (:mod:`healthnft.credentials.shc.bundle`),
validates them, signs the card (:mod:`healthnft.credentials.shc.codec`), writes the
``.smart-health-card`` file, its QR content and pictures, and publishes the issuer's
public key where :class:`~healthnft.credentials.shc.trust.FolderIssuer` reads it, so the
card verifies offline through the very same code path as any other.
"""

from __future__ import annotations

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
from healthnft.credentials.shc.qr import encode_qr, qr_code
from healthnft.credentials.shc.trust import read_trust_json
from healthnft.errors import CredentialRejected, InvalidRecord
from healthnft.records.fhir import SourceResource, validate

__all__ = ["ExportedCard", "export_card"]

_CARD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True)
class ExportedCard:
    """Where :func:`export_card` wrote a card, and what it holds (no health data)."""

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
) -> ExportedCard:
    """Issue a SMART Health Card for ``bundle_resources`` and write it under ``out_dir``.

    Writes ``<name>.smart-health-card``, the QR content ``<name>-qr.txt`` and picture
    ``<name>-qr.png`` (``-qr-<i>`` per chunk when the JWS needs several codes), and
    publishes the issuer's public key in ``out_dir/issuer/.well-known/jwks.json`` (merged
    with keys already there), so ``TrustStore.from_folders({iss: out_dir / "issuer"})``
    verifies the card offline. Resources are minimized (:func:`build_bundle`) and
    validated before signing so that no card is issued that :func:`verify_card` refuses.
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

    out_dir.mkdir(parents=True, exist_ok=True)
    card_file = out_dir / f"{name}.smart-health-card"
    card = {"verifiableCredential": [compact]}
    write_atomic(card_file, orjson.dumps(card, option=orjson.OPT_INDENT_2))
    texts, pngs = _write_qr(compact, out_dir, name)
    jwks_file = _publish_key(out_dir / "issuer", published)
    types: list[str] = []
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] not in types:
            types.append(entry["resource"]["resourceType"])
    return ExportedCard(compact, iss, kid, tuple(types), card_file, texts, pngs, jwks_file)


def _write_qr(compact: str, out_dir: Path, name: str) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """QR text and PNG per chunk (``<name>-qr`` or ``<name>-qr-<i>``)."""
    contents = encode_qr(compact)
    texts, pngs = [], []
    for i, content in enumerate(contents, 1):
        stem = f"{name}-qr" if len(contents) == 1 else f"{name}-qr-{i}"
        text_file, png_file = out_dir / f"{stem}.txt", out_dir / f"{stem}.png"
        write_atomic(text_file, (content + "\n").encode())
        qr_code(content).save(str(png_file), kind="png", scale=4, border=4)
        texts.append(text_file)
        pngs.append(png_file)
    return tuple(texts), tuple(pngs)


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
    write_atomic(path, orjson.dumps({"keys": keys}, option=orjson.OPT_INDENT_2))
    return path


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename: readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
