"""Imaging benchmark: a ~1 GB DICOM study characterized, manifested, stream-encrypted into
the SQLite blob store and stream-decrypted back, in flat memory.

Before the clock: a synthetic study is written to disk one instance at a time (so
generation itself stays light): ``--size-mb`` MB (10^6 bytes) of 512×512 16-bit CT
instances in four series, each instance's pixels distinct, patient "Synthetic^Bench".

Then, each timed on its own (``time.perf_counter``), on the same bytes:

- ``characterize``: :func:`healthnft.records.dicom.read_studies` on the folder (headers
  only; its MB/s is the study size over the time, a rate of *described* bytes);
- ``manifest``: :func:`~healthnft.records.dicom.prepare_study`, which SHA-256-hashes every
  instance and builds the canonical manifest (what the commitment is over);
- ``encrypt``: :func:`healthnft.vault.stream.seal_stream` of the payload (re-hashed
  against the manifest while read) into a :class:`~healthnft.vault.SqliteBlobStore`;
- ``decrypt_verify``: :func:`~healthnft.vault.stream.open_stream` into a
  :class:`~healthnft.records.dicom.StudyWriter`, which writes the instance files back
  and checks every one's size and SHA-256 against the manifest.

Baselines in the same run, on the same instance files: ``copyfileobj`` (plain
``shutil.copyfileobj`` of every instance into one file: what moving the bytes costs
without any crypto, hashing or database), ``aes_gcm_only`` (1 MiB reads and
AES-256-GCM seals, results discarded: the cipher's own cost) and ``blob_store_only``
(the plaintext's 1 MiB chunks put into a fresh SqliteBlobStore, no crypto: the store's
own cost, which bounds ``encrypt``). The files were just
written, so reads come from the page cache: these are CPU and write figures, not a cold
disk's.

Memory: ``peak_rss_mib`` is the whole process's peak resident set, interpreter and
libraries included: its high-water mark ``VmHWM`` (``/proc/self/status``; not
``ru_maxrss``, which on Linux inherits the parent's peak across fork+exec), and
``peak_rss_sampled_mib`` the highest RSS psutil saw every 20 ms; the target is
``peak_rss_mib < 300`` whatever ``--size-mb``.

Prints one JSON object on stdout (progress goes to stderr). ``--out DIR`` keeps the
study, the vault and the decrypted files there instead of a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from healthnft.records import commit, new_salt
from healthnft.records.dicom import StudyManifest, StudyWriter, prepare_study, read_studies
from healthnft.vault import SqliteBlobStore, open_stream, seal_stream
from healthnft.vault.stream import CHUNK_SIZE

ROWS = COLUMNS = 512
SERIES = 4
TARGET_PEAK_RSS_MIB = 300


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def generate_study(folder: Path, size_bytes: int) -> tuple[int, int]:
    """Write instances until ``size_bytes``; returns (instances, bytes written)."""
    folder.mkdir(parents=True, exist_ok=True)
    per_instance = ROWS * COLUMNS * 2
    count = max(SERIES, math.ceil(size_bytes / per_instance))
    rng = np.random.default_rng(7)
    body = (rng.normal(1024 + 40, 60, (ROWS, COLUMNS))).clip(0, 4095).astype("<u2")
    study_uid = "2.25.4242"
    written = 0
    for i in range(count):
        series = i % SERIES
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = f"{study_uid}.{series + 1}.{i + 1}"
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = f"{study_uid}.{series + 1}"
        ds.PatientName, ds.PatientID = "Synthetic^Bench", "SYNTHETIC-BENCH"
        ds.StudyDate, ds.Modality, ds.BodyPartExamined = "20250101", "CT", "ABDOMEN"
        ds.InstanceNumber = i // SERIES + 1
        ds.Rows, ds.Columns, ds.SamplesPerPixel = ROWS, COLUMNS, 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        frame = np.roll(body, i, axis=0)  # every instance's pixels distinct, cheaply
        frame[0, :8] = np.frombuffer(i.to_bytes(16, "little"), dtype="<u2")
        ds.PixelData = frame.tobytes()
        path = folder / f"SE{series + 1:02d}" / f"IM{i + 1:06d}.dcm"
        path.parent.mkdir(exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        written += path.stat().st_size
    return count, written


class RssSampler:
    """The highest RSS of this process seen every ``interval`` seconds (psutil)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._proc = psutil.Process()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def _high_water_mark() -> int:
    """This process's peak RSS in bytes (VmHWM), or 0 where /proc does not say."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _rate(nbytes: int, seconds: float) -> dict[str, float]:
    return {"s": round(seconds, 3), "mb_s": round(nbytes / 1e6 / seconds, 1) if seconds else 0.0}


def run(size_mb: int, work: Path) -> dict[str, Any]:
    study_dir, vault_path, opened = work / "study", work / "vault.sqlite", work / "opened"
    for stale in (vault_path, Path(f"{vault_path}-wal"), Path(f"{vault_path}-shm")):
        stale.unlink(missing_ok=True)
    shutil.rmtree(opened, ignore_errors=True)
    shutil.rmtree(study_dir, ignore_errors=True)
    stages: dict[str, dict[str, float]] = {}

    _log(f"generating a {size_mb} MB synthetic study in {study_dir} ...")
    t = time.perf_counter()
    count, size = generate_study(study_dir, size_mb * 10**6)
    stages["generate"] = _rate(size, time.perf_counter() - t)

    with RssSampler() as sampler:
        _log("characterizing ...")
        t = time.perf_counter()
        [study] = read_studies([study_dir])
        elapsed = time.perf_counter() - t
        stages["characterize"] = {
            **_rate(study.size, elapsed),
            "files_per_s": round(count / elapsed, 1),
        }

        _log("manifest (hashing every instance) ...")
        t = time.perf_counter()
        record = prepare_study(study)
        stages["manifest"] = _rate(study.size, time.perf_counter() - t)
        commitment = commit(record.canonical, new_salt())

        _log("stream-encrypting into the SQLite blob store ...")
        store = SqliteBlobStore(vault_path)
        t = time.perf_counter()
        with record.open_payload() as payload:
            index = seal_stream(payload, commitment, store)
        stages["encrypt"] = _rate(study.size, time.perf_counter() - t)

        _log("stream-decrypting and verifying every instance ...")
        manifest = StudyManifest.from_canonical(record.canonical)  # as a reader would
        t = time.perf_counter()
        with StudyWriter(manifest, opened) as writer:
            open_stream(index, commitment, store, writer)
        stages["decrypt_verify"] = _rate(study.size, time.perf_counter() - t)
        verified = len(writer.paths)
        store.close()

        _log("baselines ...")
        baseline = _baselines(study, work / "baseline.bin")
    peak_mib = round(max(_high_water_mark(), sampler.peak) / 2**20, 1)
    return {
        "size_mb_requested": size_mb,
        "study_bytes": study.size,
        "instances": count,
        "series": len(study.series()),
        "frame": [ROWS, COLUMNS, 16],
        "manifest_bytes": len(record.canonical),
        "chunk_size": CHUNK_SIZE,
        "chunks": len(index.chunks),
        "ciphertext_overhead_bytes": index.ciphertext_size - index.plaintext_size,
        "stream_index_bytes": len(json.dumps(index.to_meta())),
        "verified_instances": verified,
        "stages": stages,
        "baseline": baseline,
        "ratio": {
            "encrypt_vs_copyfileobj": round(
                stages["encrypt"]["mb_s"] / baseline["copyfileobj"]["mb_s"], 2
            ),
            "encrypt_vs_aes_gcm_only": round(
                stages["encrypt"]["mb_s"] / baseline["aes_gcm_only"]["mb_s"], 2
            ),
            "encrypt_vs_blob_store_only": round(
                stages["encrypt"]["mb_s"] / baseline["blob_store_only"]["mb_s"], 2
            ),
            "decrypt_verify_vs_copyfileobj": round(
                stages["decrypt_verify"]["mb_s"] / baseline["copyfileobj"]["mb_s"], 2
            ),
        },
        "peak_rss_mib": peak_mib,
        "peak_rss_sampled_mib": round(sampler.peak / 2**20, 1),
        "target": {"peak_rss_mib_lt": TARGET_PEAK_RSS_MIB, "met": peak_mib < TARGET_PEAK_RSS_MIB},
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }


def _baselines(study: Any, scratch: Path) -> dict[str, dict[str, float]]:
    t = time.perf_counter()
    with scratch.open("wb") as out:
        for inst in study.instances:
            with inst.path.open("rb") as f:
                shutil.copyfileobj(f, out, CHUNK_SIZE)
    copy = _rate(study.size, time.perf_counter() - t)
    scratch.unlink()
    aead = AESGCM(os.urandom(32))
    nonce = os.urandom(12)  # one nonce for every chunk: a throughput probe, never storage
    t = time.perf_counter()
    for inst in study.instances:
        with inst.path.open("rb") as f:
            while block := f.read(CHUNK_SIZE):
                aead.encrypt(nonce, block, b"")
    gcm = _rate(study.size, time.perf_counter() - t)
    store_path = scratch.with_suffix(".sqlite")
    store = SqliteBlobStore(store_path)
    t = time.perf_counter()
    for inst in study.instances:
        with inst.path.open("rb") as f:
            while block := f.read(CHUNK_SIZE):
                store.put_many([block])
    blobs = _rate(study.size, time.perf_counter() - t)
    store.close()
    for path in (store_path, Path(f"{store_path}-wal"), Path(f"{store_path}-shm")):
        path.unlink(missing_ok=True)
    return {"copyfileobj": copy, "aes_gcm_only": gcm, "blob_store_only": blobs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="study size in MB (10^6 B)")
    parser.add_argument("--out", type=Path, help="keep the study, vault and output here")
    args = parser.parse_args()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        report = run(args.size_mb, args.out)
    else:
        with tempfile.TemporaryDirectory(prefix="dicom-stream-") as tmp:
            report = run(args.size_mb, Path(tmp))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
