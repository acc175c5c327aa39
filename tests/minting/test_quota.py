"""A 2 GB imaging study on a small quota: one clear error, nothing minted, nothing left."""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, _cli_env

QUOTA = 96 * 2**20  # the largest file the minting process may write
SIZE = 2 * 2**30  # the study's pixel data: 2 GiB (a sparse file: it costs no disk)


def _sparse_2gb_dicom(path: Path) -> None:
    """A valid, synthetic DICOM file whose pixel data is 2 GiB of zeros, written sparse."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    frames, rows, cols = SIZE // (512 * 512 * 2), 512, 512
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.Modality = "Synthetic^Quota", "SYN-QUOTA-1", "CT"
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.save_as(path, enforce_file_format=True)
    with path.open("r+b") as fh:  # append the pixel data element's header, then grow sparse
        fh.seek(0, os.SEEK_END)
        fh.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, SIZE))
        fh.truncate(fh.tell() + SIZE)


def _limited() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (QUOTA, QUOTA))


def _blob_count(home: Path) -> int:
    conn = sqlite3.connect(home / "vault.sqlite")
    try:
        return conn.execute("SELECT COUNT(*) FROM blobs").fetchone()[0]
    finally:
        conn.close()


@pytest.mark.slow
def test_a_2gb_study_on_a_small_quota_mints_nothing_and_leaves_nothing(
    fresh_demo_home, tmp_path: Path
) -> None:
    home, summary = fresh_demo_home
    owner = summary["patients"][0]["address"]
    big = tmp_path / "huge.dcm"
    _sparse_2gb_dicom(big)
    assert big.stat().st_size > SIZE
    blobs_before = _blob_count(home)
    listing = [sys.executable, "-m", "healthnft.cli", "--home", str(home), "wallet", "list",
               "--owner", owner, "--json"]
    before = json.loads(subprocess.run(listing, capture_output=True, text=True, check=True,
                                       env=_cli_env(home), cwd=str(REPO)).stdout)
    proc = subprocess.run(
        [sys.executable, "-m", "healthnft.cli", "--home", str(home), "mint", "--issuer",
         "demo-hospital", "--patient", owner, str(big)],
        capture_output=True, text=True, env=_cli_env(home), cwd=str(REPO), timeout=600,
        preexec_fn=_limited,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0
    assert lines[-1].startswith("error: ") and "out of space" in lines[-1], proc.stderr
    assert "Synthetic" not in proc.stderr and "huge.dcm" not in proc.stderr
    after = json.loads(subprocess.run(listing, capture_output=True, text=True, check=True,
                                      env=_cli_env(home), cwd=str(REPO)).stdout)
    assert after == before  # nothing minted, nothing lost
    # With room again, the next run removes whatever the failed one stored, then mints.
    note = tmp_path / "note.txt"
    note.write_text("Synthetic follow-up note: no change.\n")
    subprocess.run([sys.executable, "-m", "healthnft.cli", "--home", str(home), "mint",
                    "--issuer", "demo-hospital", "--patient", owner, str(note)],
                   capture_output=True, text=True, check=True, env=_cli_env(home),
                   cwd=str(REPO))  # fmt: skip
    final = json.loads(subprocess.run(listing, capture_output=True, text=True, check=True,
                                      env=_cli_env(home), cwd=str(REPO)).stdout)
    assert len(final) == len(before) + 1
    assert _blob_count(home) == blobs_before + 1  # the note's ciphertext; no orphan chunk
