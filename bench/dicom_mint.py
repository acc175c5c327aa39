"""Imaging mint benchmark: a ~1 GB DICOM study minted end to end through a real home
(``Network`` and its ``Minter``: ingest, attestation, stream sealing with every chunk
journaled, the batch's one mint transaction on the embedded chain), then opened back
by the patient's wallet and verified, in flat memory.

Before the clock: a synthetic study (patient "Synthetic^Bench") is written by
``bench/dicom_stream.py``'s generator, and a demo-keyed home gets a hospital and a
patient.

Timed, each on its own (``time.perf_counter``), on the same bytes:

- ``ingest``: :func:`healthnft.ingest.ingest` on the folder — headers read and
  validated, the study grouped, every instance SHA-256-hashed into the manifest;
- ``mint``: :meth:`healthnft.minting.Minter.mint` — attestation, the payload
  stream-sealed into ``HOME/vault.sqlite`` (each chunk's digest journaled in
  ``HOME/index.sqlite`` first), the record sealed, one transaction mined;
- ``open_verify``: the wallet streams the payload back into a folder
  (:func:`healthnft.wallet.files.write_study`: every chunk authenticated, every
  instance checked against the manifest);
- ``verify``: :meth:`healthnft.wallet.Wallet.verify` with the owner's key (chain,
  attestation, and every chunk and instance again, written nowhere).

``end_to_end`` is ingest + mint: what ``healthnft mint FOLDER`` costs a hospital.
Baselines in the same run, on the same instance files (``dicom_stream._baselines``):
``copyfileobj`` (moving the bytes without crypto, hashing or database),
``aes_gcm_only`` and ``blob_store_only``. The files were just written, so reads come
from the page cache: these are CPU and write figures, not a cold disk's.

Memory: ``peak_rss_mib`` is the process's high-water mark (``VmHWM``), interpreter,
web3 and the embedded chain included; the target is < 300 MiB whatever ``--size-mb``.
Prints one JSON object on stdout (progress on stderr).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from healthnft.ingest import ingest, single_patient
from healthnft.network import DEMO_PASSPHRASE, Network
from healthnft.vault.stream import CHUNK_SIZE
from healthnft.wallet.files import write_study

# The sibling benchmark's study generator, memory probes and baselines (bench/ is not a
# package: load it by path).
_spec = importlib.util.spec_from_file_location(
    "dicom_stream", Path(__file__).resolve().with_name("dicom_stream.py")
)
assert _spec is not None and _spec.loader is not None
dicom_stream = importlib.util.module_from_spec(_spec)
sys.modules["dicom_stream"] = dicom_stream
_spec.loader.exec_module(dicom_stream)

TARGET_PEAK_RSS_MIB = 300


def _rate(nbytes: int, seconds: float) -> dict[str, float]:
    return {"s": round(seconds, 3), "mb_s": round(nbytes / 1e6 / seconds, 1) if seconds else 0.0}


def run(size_mb: int, work: Path) -> dict[str, Any]:
    study_dir, home, opened = work / "study", work / "home", work / "opened"
    for stale in (study_dir, home, opened):
        shutil.rmtree(stale, ignore_errors=True)
    dicom_stream._log(f"generating a {size_mb} MB synthetic study in {study_dir} ...")
    count, size = dicom_stream.generate_study(study_dir, size_mb * 10**6)
    net = Network.create(home, DEMO_PASSPHRASE, demo=True)
    stages: dict[str, dict[str, float]] = {}
    try:
        hospital = net.add_participant("hospital", "bench-hospital")
        patient = net.add_participant("patient", "bench-patient")
        issuer = net.identity(hospital.address)
        owner = net.identity(patient.address)
        with dicom_stream.RssSampler() as sampler:
            dicom_stream._log("ingest (headers, grouping, manifest hashing) ...")
            t = time.perf_counter()
            [record] = single_patient(ingest([study_dir]))
            stages["ingest"] = _rate(size, time.perf_counter() - t)

            dicom_stream._log("mint (attest, stream-seal with journaled chunks, one tx) ...")
            t = time.perf_counter()
            result = net.minter().mint(issuer, patient.address, patient.enc_key, [record])
            stages["mint"] = _rate(size, time.perf_counter() - t)
            [token_id] = result.token_ids
            stages["end_to_end"] = _rate(size, stages["ingest"]["s"] + stages["mint"]["s"])

            dicom_stream._log("open: stream the payload back into DICOM files ...")
            wallet = net.wallet()
            t = time.perf_counter()
            opened_record = wallet.open(token_id, owner)
            written = write_study(wallet, token_id, owner, opened, opened_record.resource)
            stages["open_verify"] = _rate(size, time.perf_counter() - t)

            dicom_stream._log("verify (chain, attestation, every chunk and instance) ...")
            t = time.perf_counter()
            verdict = wallet.verify(token_id, owner)
            stages["verify"] = _rate(size, time.perf_counter() - t)
            chunks = net.catalog.record_blobs(token_id)

            dicom_stream._log("baselines ...")
            baseline = dicom_stream._baselines(record.study, work / "baseline.bin")
        peak_mib = round(max(dicom_stream._high_water_mark(), sampler.peak) / 2**20, 1)
    finally:
        net.close()
    copy = baseline["copyfileobj"]["mb_s"]
    return {
        "size_mb_requested": size_mb,
        "study_bytes": size,
        "instances": count,
        "token_id": token_id,
        "gas_used": result.gas_used,
        "chunk_size": CHUNK_SIZE,
        "journaled_blobs": len(chunks),
        "files_written_back": written["files"],
        "verified": verdict.valid,
        "stages": stages,
        "baseline": baseline,
        "ratio": {
            "end_to_end_vs_copyfileobj": round(stages["end_to_end"]["mb_s"] / copy, 2),
            "mint_vs_copyfileobj": round(stages["mint"]["mb_s"] / copy, 2),
            "mint_vs_blob_store_only": round(
                stages["mint"]["mb_s"] / baseline["blob_store_only"]["mb_s"], 2
            ),
            "open_verify_vs_copyfileobj": round(stages["open_verify"]["mb_s"] / copy, 2),
        },
        "peak_rss_mib": peak_mib,
        "peak_rss_sampled_mib": round(sampler.peak / 2**20, 1),
        "target": {"peak_rss_mib_lt": TARGET_PEAK_RSS_MIB, "met": peak_mib < TARGET_PEAK_RSS_MIB},
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="study size in MB (10^6 B)")
    parser.add_argument("--out", type=Path, help="keep the study, home and output here")
    args = parser.parse_args()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        report = run(args.size_mb, args.out)
    else:
        with tempfile.TemporaryDirectory(prefix="dicom-mint-") as tmp:
            report = run(args.size_mb, Path(tmp))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
