"""Give a record back as a file a person can open: a note as text, a PDF as the PDF.

``healthnft wallet show TOKEN --out FILE`` chooses by FILE's suffix: ``.txt``
writes a note's text, ``.pdf`` the original PDF that was minted, ``.png`` an
attached picture, ``.json`` the FHIR resource itself. Only data inside the
decrypted record is written (an attachment's URL is never fetched), and the
file is created with owner-only permissions, because it is health data.

An imaging study (:func:`write_study`) gives ``.png`` (its first image, windowed for
display), a folder (the original DICOM files, each checked against the manifest's
SHA-256), ``.dcm`` (a single-instance study's one file) or ``.json`` (its manifest).
The payload is streamed from the vault into a private (0700) folder beside the
target and moved into place only once verified; for a PNG only the first instance is
decrypted to disk, and the folder is deleted after rendering.
"""

from __future__ import annotations

import base64
import binascii
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from healthnft.errors import InvalidInput, Tampered
from healthnft.records import exact_json

if TYPE_CHECKING:
    from healthnft.keys import Identity
    from healthnft.wallet.wallet import Wallet

_CHOICES = ".txt (a note's text), .pdf (the original PDF), .png (a picture) or .json"


def _attachments(resource: dict[str, Any]) -> list[dict[str, Any]]:
    from healthnft.records.notes import attachments_of

    return [a for a in attachments_of(resource) if isinstance(a.get("data"), str)]


def _data(att: dict[str, Any]) -> bytes:
    try:
        return base64.b64decode(att["data"], validate=True)
    except (binascii.Error, ValueError):
        raise Tampered("the record's attachment is not valid base64") from None


def _media(att: dict[str, Any]) -> str:
    return str(att.get("contentType") or "").split(";")[0].strip().lower()


def note_text(resource: dict[str, Any]) -> str | None:
    """The note's readable text: its extracted-text attachment, else its text attachment."""
    texts = [a for a in _attachments(resource) if _media(a).startswith("text/")]
    if not texts:
        return None
    extracted = [a for a in texts if a.get("title") == "extracted text"]
    return _data((extracted or texts)[0]).decode("utf-8", errors="replace")


def record_file(resource: dict[str, Any], suffix: str) -> bytes:
    """The bytes of the file ``suffix`` asks for, or a clear error saying what exists."""
    suffix = suffix.lower()
    if suffix == ".json":
        return exact_json.dumps(resource, indent=True)  # 5.60 stays 5.60
    if suffix == ".txt":
        text = note_text(resource)
        if text is None:
            raise InvalidInput("this record holds no note text; try .json")
        return text.encode()
    wanted = {".pdf": ("application/pdf",), ".png": ("image/png",)}.get(suffix)
    if wanted is None:
        raise InvalidInput(f"--out must end in {_CHOICES}")
    for att in _attachments(resource):
        if _media(att) in wanted:
            return _data(att)
    raise InvalidInput(f"this record holds no {suffix[1:].upper()}; try .txt or .json")


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only (atomically)."""
    tmp = path.with_name(path.name + ".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    tmp.replace(path)


# -- imaging studies ----------------------------------------------------------------

_STUDY_CHOICES = (".png (the first image), .dcm (a single-instance study), .json (the "
                  "manifest), or a folder (the original DICOM files)")  # fmt: skip


def study_listing(meta: dict[str, Any]) -> tuple[str, list[tuple[str, str, str, str]]]:
    """What ``wallet show`` prints of a study: one line of characterization, and per
    series (number, modality, description, instance count). No identifiers: the
    record holds none of the DICOM files' patient, study or date identifiers beyond
    the study date the header line already shows."""
    info = meta.get("imaging") or {}
    what = [", ".join(info[k]) for k in ("modalities", "body_parts") if info.get(k)]
    size = int(info.get("size") or 0)
    counts = (f"{info.get('series_count', 0)} series, {info.get('instance_count', 0)} "
              f"instances, {info.get('frame_count', 0)} frames, "
              + (f"{size / 1e6:.1f} MB" if size >= 10**6 else f"{size / 1e3:.0f} kB"))  # fmt: skip
    rows = []
    for row in info.get("series") or []:
        number = row.get("number")
        rows.append((
            str(number if number is not None else int(row.get("position", 0)) + 1),
            str(row.get("modality") or ""),
            str(row.get("description") or ""),
            str(row.get("instance_count", 0)),
        ))  # fmt: skip
    return " · ".join([*what, counts]), rows


class _FirstInstanceOnly(Exception):
    """Raised by the sink once the first instance is written and verified."""


def write_study(wallet: Wallet, token_id: int, reader: Identity | Any, out: Path,
                manifest_doc: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """Write a study as ``out`` asks (see the module docstring); what was written.

    ``reader``: the owner's identity, or a grantee's released ``(row, plaintext)``.
    """
    suffix = out.suffix.lower()
    if suffix == ".json":
        data = exact_json.dumps(manifest_doc, indent=True)
        write_private(out, data)
        return {"out": str(out), "bytes": len(data)}
    if suffix == ".png":
        return _write_png(wallet, token_id, reader, out)
    if suffix == ".dcm":
        count = len(manifest_doc.get("instances") or [])
        if count != 1:
            raise InvalidInput(f"this study has {count} instances: give --out a folder")
        with _private_folder(out.parent) as tmp:
            [path] = _decrypt_study(wallet, token_id, reader, tmp)
            os.chmod(path, 0o600)
            os.replace(path, out)
        return {"out": str(out), "files": 1, "bytes": out.stat().st_size}
    if suffix and not out.is_dir():
        raise InvalidInput(f"--out for an imaging study must be {_STUDY_CHOICES}")
    if out.exists() and not out.is_dir():
        raise InvalidInput("--out names a file that exists; give a new or existing folder")
    created = not out.exists()
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        with _private_folder(out) as tmp:
            paths = _decrypt_study(wallet, token_id, reader, tmp)
            clashes = sum((out / p.name).exists() for p in paths)
            if clashes:
                raise InvalidInput(f"--out folder already holds {clashes} of the study's "
                                     "files (000000.dcm, ...): give an empty folder")  # fmt: skip
            for path in paths:
                os.chmod(path, 0o600)
                os.replace(path, out / path.name)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    total = sum((out / p.name).stat().st_size for p in paths)
    return {"out": str(out), "files": len(paths), "bytes": total}


def _write_png(wallet: Wallet, token_id: int, reader: Identity | Any,
               out: Path) -> dict[str, Any]:  # fmt: skip
    from healthnft.records.dicom_image import render_png

    with _private_folder(out.parent) as tmp:
        [first] = _decrypt_study(wallet, token_id, reader, tmp, first_only=True)
        png = render_png(first, label="instance 1 of the study")
    write_private(out, png)
    return {"out": str(out), "bytes": len(png)}


def _decrypt_study(wallet: Wallet, token_id: int, reader: Identity | Any, folder: Path,
                   first_only: bool = False) -> list[Path]:  # fmt: skip
    """Stream the payload into verified instance files in ``folder``.

    ``reader`` is the owner's identity, or, for a grantee, the ``(row, plaintext)``
    the custodians released (see :func:`write_shared_study`).
    """
    from healthnft.records.dicom import StudyWriter

    writers: list[StudyWriter] = []

    class FirstOnly(StudyWriter):
        def write(self, data: bytes) -> int:
            n = super().write(data)
            if self.paths:  # verified: the rest of the study is not needed for a picture
                raise _FirstInstanceOnly
            return n

    def make_sink(manifest: Any) -> StudyWriter:
        writers.append((FirstOnly if first_only else StudyWriter)(manifest, folder))
        return writers[-1]

    try:
        if isinstance(reader, tuple):
            wallet.stream_row(reader[0], reader[1], make_sink)
        else:
            wallet.stream_payload(token_id, reader, make_sink)
    except _FirstInstanceOnly:
        return writers[0].paths[:1]
    return writers[0].finish()


class _private_folder:  # noqa: N801 - used as a context manager, like tempfile's
    """A fresh owner-only folder inside ``parent``, removed with whatever it holds."""

    def __init__(self, parent: Path) -> None:
        if not parent.is_dir():
            raise InvalidInput("the folder --out would be written in does not exist")
        self.path = Path(tempfile.mkdtemp(prefix=".healthnft-", dir=parent))

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *_: Any) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
