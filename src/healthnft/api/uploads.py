"""Uploaded files, saved where the services can read them, without their names.

Only the kind of file is kept from a name (names often carry the patient's); the
whole upload is capped, and the folder is the caller's to delete.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi import UploadFile

from healthnft.errors import InvalidInput

MAX_UPLOAD = 64 * 2**20
SUFFIXES = frozenset({".json", ".txt", ".text", ".pdf", ".dcm"})


async def save_uploads(files: list[UploadFile]) -> Path:
    """Write ``files`` as ``upload-NNNN.<kind>`` into a new private folder; its path."""
    folder = Path(tempfile.mkdtemp(prefix="healthnft-upload-"))
    total = 0
    for i, upload in enumerate(files, 1):
        data = await upload.read(MAX_UPLOAD + 1)
        total += len(data)
        if total > MAX_UPLOAD:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
            raise InvalidInput("the upload is larger than 64 MiB")
        suffix = Path(upload.filename or "").suffix.lower()
        (folder / f"upload-{i:04d}{suffix if suffix in SUFFIXES else ''}").write_bytes(data)
    return folder
