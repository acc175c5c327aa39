"""Uploaded files, streamed into the home's private staging folder, without their names.

Uploads are health data in the clear. Starlette's form parsing spools every file to
the system's temporary folder before a route runs and before any size check, so a
killed server left ``/tmp/healthnft-upload-*`` full of FHIR files, and a 64 MiB
refusal was only given after 64 MiB were on disk. Here the body is streamed through
python-multipart's parser straight into ``<home>/uploads/<random>/`` (0700, inside
the home), counted as it arrives and refused (413) the moment it passes the cap,
with nothing left behind on any failure; what a killed server leaves is swept the
next time the service starts (:func:`sweep`).

Only the kind of file is kept from a name (names often carry the patient's).
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from healthnft.errors import InvalidInput, TooLarge

MAX_UPLOAD = 64 * 2**20
#: A form field (not a file) is an address or a word: a few bytes.
MAX_FIELD = 4096
SUFFIXES = frozenset({".json", ".txt", ".text", ".pdf", ".dcm"})


@dataclass
class Upload:
    """The form's fields and the staged files (``folder`` is the caller's to delete)."""

    folder: Path
    fields: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


def sweep(staging: Path) -> None:
    """Delete what earlier runs left in ``staging`` (a server killed mid-upload)."""
    if staging.is_dir():
        for leftover in staging.iterdir():
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


async def receive(request: Request, staging: Path, max_bytes: int = MAX_UPLOAD) -> Upload:
    """Stream the request's ``multipart/form-data`` body into a new folder of ``staging``."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise InvalidInput("send the files as multipart/form-data")
    limit = f"the upload is larger than {max_bytes // 2**20} MiB"
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(limit)  # refused before a byte is read
    staging.mkdir(mode=0o700, exist_ok=True)
    upload = Upload(staging / uuid.uuid4().hex)
    upload.folder.mkdir(mode=0o700)
    try:
        parts = _Parts(upload)
        parser = MultipartParser(boundary, parts.callbacks())
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes:
                raise TooLarge(limit)
            parser.write(chunk)
            parts.check()
        parser.finalize()
        parts.check()
        if not parts.finished:
            raise InvalidInput("the upload ended before its last part")
    except MultipartParseError:
        shutil.rmtree(upload.folder, ignore_errors=True)
        raise InvalidInput("the upload is not well-formed multipart/form-data") from None
    except BaseException:
        shutil.rmtree(upload.folder, ignore_errors=True)
        raise
    finally:
        parts.close()
    return upload


class _Parts:
    """python-multipart's callbacks: each part's headers, then its bytes to a file or field."""

    def __init__(self, upload: Upload) -> None:
        self.upload = upload
        self.finished = False
        self._error: InvalidInput | None = None
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name = ""
        self._file: IO[bytes] | None = None
        self._field: bytearray | None = None

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda d, s, e: self._grow("_header_name", d[s:e]),
            "on_header_value": lambda d, s, e: self._grow("_header_value", d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_done,
            "on_part_data": self._data,
            "on_part_end": self._end,
            "on_end": self._done,
        }

    def check(self) -> None:
        """Raise the first problem a callback found (callbacks cannot raise through)."""
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _fail(self, message: str) -> None:
        self._error = self._error or InvalidInput(message)

    def _grow(self, attr: str, data: bytes) -> None:
        value = getattr(self, attr) + data
        if len(value) > MAX_FIELD:
            self._fail("a part of the upload has an oversized header")
            value = b""
        setattr(self, attr, value)

    def _begin(self) -> None:
        self._headers.clear()
        self._header_name = self._header_value = b""

    def _header_end(self) -> None:
        self._headers[self._header_name.strip().lower()] = self._header_value.strip()
        self._header_name = self._header_value = b""

    def _headers_done(self) -> None:
        disposition, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name")
        if disposition != b"form-data" or name is None:
            self._fail("a part of the upload has no form field name")
            return
        self._name = name.decode("utf-8", "replace")
        filename = params.get(b"filename")
        if filename is None:
            self._field = bytearray()
            return
        suffix = Path(filename.decode("utf-8", "replace")).suffix.lower()
        number = len(self.upload.files) + 1
        path = self.upload.folder / f"upload-{number:04d}{suffix if suffix in SUFFIXES else ''}"
        self._file = open(path, "xb")  # noqa: SIM115 - closed in _end or close()
        os.chmod(path, 0o600)
        self.upload.files.append(path)

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None:
            self._file.write(data[start:end])
        elif self._field is not None:
            self._field += data[start:end]
            if len(self._field) > MAX_FIELD:
                self._fail("a form field of the upload is too long")
                self._field = bytearray()

    def _end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        elif self._field is not None:
            self.upload.fields[self._name] = self._field.decode("utf-8", "replace")
            self._field = None

    def _done(self) -> None:
        self.finished = True
