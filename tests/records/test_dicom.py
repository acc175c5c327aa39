"""records.dicom and records.dicom_image on real files: pydicom's bundled test data, studies
written here with pydicom (synthetic patients only), and broken input cut from real files."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tracemalloc
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage

from healthnft.errors import InputNotFound, InvalidRecord, Tampered
from healthnft.records import commit, jcs, new_salt
from healthnft.records.dicom import (
    CATEGORY,
    MANIFEST_FORMAT,
    StudyManifest,
    StudyWriter,
    build_manifest,
    expand_inputs,
    iter_instance_streams,
    prepare_study,
    read_instance,
    read_instances,
    read_studies,
)
from healthnft.records.dicom_image import CT_DEFAULT_WINDOW, display_array, render_png
from healthnft.vault import SqliteBlobStore, open_stream, seal_stream

REPO = Path(__file__).resolve().parents[2]


def bundled(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom test file {name} is not bundled"
    return Path(path)


# -- synthetic instances (clearly synthetic patients) ---------------------------------


def write_instance(
    path: Path,
    *,
    study: str,
    series: str,
    sop: str,
    number: int | None,
    modality: str = "CT",
    body_part: str = "CHEST",
    size: int = 16,
    frames: int = 1,
    photometric: str = "MONOCHROME2",
    window: tuple[float, float] | None = None,
    seed: int = 0,
) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage if modality == "CT" else MRImageStorage
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.PatientName = "Synthetic^Test"
    ds.PatientID = "SYNTHETIC-0001"
    ds.StudyDate = "20240301"
    ds.Modality = modality
    ds.BodyPartExamined = body_part
    if number is not None:
        ds.InstanceNumber = number
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if frames > 1:
        ds.NumberOfFrames = frames
    rng = np.random.default_rng(seed)
    # A ramp from air (-1000 HU) to bone (+1000 HU), plus noise: stored = HU + 1024.
    ramp = np.linspace(24, 2024, size * size).reshape(size, size).astype("<i2")
    ds.PixelData = b"".join(
        (ramp + rng.integers(0, 8, (size, size), dtype="<i2")).tobytes() for _ in range(frames)
    )
    ds.save_as(path, enforce_file_format=True)
    return path


def uid(*parts: int) -> str:
    return "2.25." + ".".join(str(p) for p in parts)


@pytest.fixture
def study_folder(tmp_path: Path) -> Path:
    """Two studies: A (CT series of 4 shuffled files, one without InstanceNumber; an MR
    series of 2) and B (one CT series of 2), in nested folders like a disc export."""
    root = tmp_path / "export"
    a, b = uid(1), uid(2)
    specs = [
        ("A/SE1/IM3", a, uid(1, 2), uid(1, 2, 3), 3, "CT"),
        ("A/SE1/IM1", a, uid(1, 2), uid(1, 2, 9), 1, "CT"),
        ("A/SE1/IMX", a, uid(1, 2), uid(1, 2, 5), None, "CT"),
        ("A/SE1/IM2", a, uid(1, 2), uid(1, 2, 7), 2, "CT"),
        ("A/SE0/IM1", a, uid(1, 1), uid(1, 1, 1), 1, "MR"),
        ("A/SE0/IM2", a, uid(1, 1), uid(1, 1, 2), 2, "MR"),
        ("B/SE1/IM1", b, uid(2, 1), uid(2, 1, 1), 1, "CT"),
        ("B/SE1/IM2", b, uid(2, 1), uid(2, 1, 2), 2, "CT"),
    ]
    for i, (rel, study, series, sop, number, modality) in enumerate(specs):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        write_instance(
            path,
            study=study,
            series=series,
            sop=sop,
            number=number,
            modality=modality,
            body_part="HEAD" if modality == "MR" else "CHEST",
            seed=i,
        )
    return root


# -- reading and validation -----------------------------------------------------------


def test_bundled_ct_and_mr_are_characterized_from_their_headers() -> None:
    ct = read_instance(bundled("CT_small.dcm"), "input 1 of 2")
    assert (ct.modality, ct.rows, ct.columns, ct.frames) == ("CT", 128, 128, 1)
    assert ct.study_date == "2004-01-19" and ct.transfer_syntax_uid == ExplicitVRLittleEndian
    mr = read_instance(bundled("MR_small.dcm"), "input 2 of 2")
    assert (mr.modality, mr.rows, mr.columns, mr.frames) == ("MR", 64, 64, 1)
    assert "CompressedSamples" not in repr(ct) and ct.sop_uid not in repr(ct)


def test_multiframe_and_compressed_files_are_walked_not_decoded() -> None:
    dose = read_instance(bundled("rtdose.dcm"), "x")  # native, implicit VR, 15 frames
    assert (dose.modality, dose.frames, dose.rows) == ("RTDOSE", 15, 10)
    clip = read_instance(bundled("examples_ybr_color.dcm"), "x")  # JPEG, 30 fragments
    assert (clip.modality, clip.frames, clip.columns) == ("US", 30, 320)
    for name in ("MR_small_jpeg_ls_lossless.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm"):
        assert read_instance(bundled(name), "x").rows  # undecodable here, deflated: still read


def test_characterization_never_loads_pixel_data(tmp_path: Path) -> None:
    big = write_instance(
        tmp_path / "big.dcm",
        study=uid(9),
        series=uid(9, 1),
        sop=uid(9, 1, 1),
        number=1,
        size=1024,
        frames=24,
    )
    assert big.stat().st_size > 48 * 2**20
    tracemalloc.start()
    inst = read_instance(big, "input 1 of 1")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert inst.frames == 24 and inst.size == big.stat().st_size
    assert peak < 2 * 2**20, f"characterizing allocated {peak} bytes"


@pytest.fixture
def bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Broken and foreign files under patient-like names (which errors must not echo)."""
    ct = bundled("CT_small.dcm").read_bytes()
    d = tmp_path / "bad"
    d.mkdir()
    files = {
        "truncated": (ct[: len(ct) // 2], "truncated DICOM file"),
        "empty": (b"", "empty file (0 bytes)"),
        "png": (None, "not a DICOM file"),
        "json": (json.dumps({"resourceType": "Patient"}).encode(), "not a DICOM file"),
        "rtstruct": (
            bundled("rtstruct.dcm").read_bytes(),
            "RT Structure Set Storage has no pixel data",
        ),
        "sr": (bundled("reportsi.dcm").read_bytes(), "Basic Text SR Storage has no pixel data"),
        "bundled-truncated": (bundled("MR_truncated.dcm").read_bytes(), "truncated DICOM file"),
        "dicomdir": ((bundled("dicomdirtests") / "DICOMDIR").read_bytes(), "a DICOMDIR"),
    }
    out = {}
    for kind, (data, message) in files.items():
        path = d / f"Doe_Jane_19700101_{kind}.dcm"
        if data is None:
            Image.new("L", (8, 8)).save(path, format="PNG")  # a PNG renamed .dcm
        else:
            path.write_bytes(data)
        out[kind] = (path, message)
    return out


def test_bad_input_is_refused_naming_its_position_only(
    bad_inputs: dict[str, tuple[Path, str]],
) -> None:
    good = bundled("CT_small.dcm")
    for kind, (path, message) in bad_inputs.items():
        with pytest.raises(InvalidRecord) as err:
            read_instances([good, path])
        text = str(err.value)
        assert text.startswith("input 2 of 2: "), (kind, text)
        assert message in text, (kind, text)
        assert "Doe" not in text and "Jane" not in text and "1970" not in text


def test_every_cut_of_a_real_file_is_refused(tmp_path: Path) -> None:
    for name in ("CT_small.dcm", "examples_ybr_color.dcm", "MR_small_bigendian.dcm"):
        raw = bundled(name).read_bytes()
        path = tmp_path / name
        for cut in sorted({*range(0, len(raw), max(1, len(raw) // 250)), len(raw) - 1}):
            path.write_bytes(raw[:cut])
            with pytest.raises(InvalidRecord):
                read_instance(path, "input 1 of 1")
        path.write_bytes(raw)
        assert read_instance(path, "input 1 of 1").size == len(raw)


def test_missing_inputs_and_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(InputNotFound, match="argument 2 of 2: no such file or folder"):
        read_instances([bundled("CT_small.dcm"), tmp_path / "Doe_Jane"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidRecord, match="no files found"):
        read_instances([tmp_path / "empty"])


def test_folders_skip_dicomdir_and_hidden_files_and_foreign_ones_on_request(
    study_folder: Path,
) -> None:
    shutil.copy(bundled("dicomdirtests") / "DICOMDIR", study_folder / "DICOMDIR")
    (study_folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    assert all(p.name not in ("DICOMDIR", ".DS_Store") for p, _ in expand_inputs([study_folder]))
    readme = study_folder / "README.TXT"
    readme.write_text("Viewer: run autorun.exe")
    with pytest.raises(InvalidRecord, match=r"input \d+ of 9: not a DICOM file"):
        read_studies([study_folder])
    skipped: list[str] = []
    studies = read_studies([study_folder], skip_foreign=True, on_skip=skipped.append)
    assert len(skipped) == 1 and sum(len(s.instances) for s in studies) == 8
    with pytest.raises(InvalidRecord, match="not a DICOM file"):  # named explicitly: refused
        read_studies([study_folder, readme], skip_foreign=True)
    (study_folder / "A" / "broken").write_bytes(bundled("CT_small.dcm").read_bytes()[:5000])
    with pytest.raises(InvalidRecord, match="truncated"):  # damaged DICOM: never skipped
        read_studies([study_folder], skip_foreign=True)


# -- grouping and order ---------------------------------------------------------------


def test_a_folder_is_grouped_into_studies_in_a_deterministic_order(study_folder: Path) -> None:
    studies = read_studies([study_folder])
    assert [s.label for s in studies] == ["study 1 of 2", "study 2 of 2"]
    a, b = studies
    assert {a.study_uid, b.study_uid} == {uid(1), uid(2)}
    # Series by UID, then InstanceNumber (the one without comes last), then SOP UID.
    assert [i.sop_uid for i in a.instances] == [
        uid(1, 1, 1),
        uid(1, 1, 2),
        uid(1, 2, 9),
        uid(1, 2, 7),
        uid(1, 2, 3),
        uid(1, 2, 5),
    ]
    assert a.characterization() == {
        "modalities": ["CT", "MR"],
        "body_parts": ["CHEST", "HEAD"],
        "study_date": "2024-03-01",
        "series_count": 2,
        "instance_count": 6,
        "frame_count": 6,
        "size": a.size,
    }
    # The same files in another order of arguments give the same studies, same order inside.
    files = [p for p, _ in expand_inputs([study_folder])]
    again = read_studies(list(reversed(files)))
    assert [i.sop_uid for i in again[1].instances] == [i.sop_uid for i in a.instances]
    assert build_manifest(again[1]).canonical == build_manifest(a).canonical


def test_pydicom_disc_exports_group_like_pydicom_says(tmp_path: Path) -> None:
    roots = [bundled("dicomdirtests") / n for n in ("77654033", "98892001", "98892003")]
    expected: dict[str, int] = defaultdict(int)
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                expected[str(pydicom.dcmread(path).StudyInstanceUID)] += 1
    studies = read_studies(roots)
    assert {s.study_uid: len(s.instances) for s in studies} == dict(expected)
    assert len(studies) == len(expected) > 2
    with pytest.raises(InvalidRecord, match="has no pixel data"):  # stripped instances
        read_studies([bundled("dicomdirtests") / "TINY_ALPHA"], skip_foreign=True)


def test_the_same_instance_twice_is_refused(study_folder: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.dcm"
    shutil.copy(study_folder / "B" / "SE1" / "IM1", copy)
    with pytest.raises(InvalidRecord, match=r"input \d+ of 9 and input 9 of 9: the same DICOM"):
        read_studies([study_folder, copy])


def test_instances_stream_in_order_one_open_file_at_a_time(study_folder: Path) -> None:
    [study, _] = read_studies([study_folder])
    previous = None
    seen = []
    for inst, f in iter_instance_streams(study):
        assert previous is None or previous.closed
        assert f.read() == inst.path.read_bytes()
        seen.append(inst.sop_uid)
        previous = f
    assert seen == [i.sop_uid for i in study.instances]


# -- manifest and commitment ----------------------------------------------------------


def test_manifest_is_canonical_binds_every_byte_and_lists_no_identifiers(
    study_folder: Path,
) -> None:
    [study, _] = read_studies([study_folder])
    record = prepare_study(study)
    doc = record.manifest.document
    assert record.canonical == jcs.dumps(doc) == build_manifest(study).canonical
    assert doc["format"] == MANIFEST_FORMAT and record.category == CATEGORY == "imaging"
    assert record.effective_date == "2024-03-01" and not record.structured
    assert doc["payload"]["size"] == study.size == sum(e["size"] for e in doc["instances"])
    for entry, inst in zip(doc["instances"], study.instances, strict=True):
        assert entry["sha256"] == hashlib.sha256(inst.path.read_bytes()).hexdigest()
        assert entry["sop_instance_uid_sha256"] == hashlib.sha256(inst.sop_uid.encode()).hexdigest()
    text = record.canonical.decode()
    for secret in (
        "Synthetic",
        "SYNTHETIC-0001",
        *(i.sop_uid for i in study.instances),
        study.study_uid,
        "export",
        "IM1",
    ):
        assert secret not in text
    assert {"modalities", "study_date", "series_count"} <= record.meta().keys()
    assert StudyManifest.from_canonical(record.canonical) == record.manifest
    # One flipped pixel byte anywhere changes the manifest, hence the commitment.
    salt = new_salt()
    before = commit(record.canonical, salt)
    victim = study.instances[3].path
    raw = bytearray(victim.read_bytes())
    raw[-1] ^= 0x01
    victim.write_bytes(bytes(raw))
    assert commit(build_manifest(study).canonical, salt) != before


def test_a_malformed_manifest_is_tampered(study_folder: Path) -> None:
    [study, _] = read_studies([study_folder])
    doc = json.loads(build_manifest(study).canonical)
    doc["instances"][0]["size"] += 1
    for bad in (jcs.dumps(doc), b"{", b'{"format":"x"}', json.dumps(doc, indent=1).encode()):
        with pytest.raises(Tampered, match="malformed"):
            StudyManifest.from_canonical(bad)


def test_a_study_round_trips_through_stream_encryption(study_folder: Path, tmp_path: Path) -> None:
    records = [prepare_study(s) for s in read_studies([study_folder])]
    store = SqliteBlobStore(tmp_path / "vault.sqlite")
    for record in records:
        commitment = commit(record.canonical, new_salt())
        with record.open_payload() as payload:
            index = seal_stream(payload, commitment, store, chunk_size=4096)
        assert index.plaintext_size == record.manifest.payload_size
        out = tmp_path / "opened" / record.location.replace(" ", "-")
        with StudyWriter(StudyManifest.from_canonical(record.canonical), out) as writer:
            open_stream(index, commitment, store, writer)
        files = sorted(out.iterdir())
        assert [p.name for p in files] == [f"{k:06d}.dcm" for k in range(len(files))]
        assert [p.read_bytes() for p in files] == [
            i.path.read_bytes() for i in record.study.instances
        ]
        assert pydicom.dcmread(files[0]).PatientName == "Synthetic^Test"
    store.close()


def test_a_file_changed_after_characterization_is_not_sealed(
    study_folder: Path, tmp_path: Path
) -> None:
    [study, _] = read_studies([study_folder])
    record = prepare_study(study)
    victim = study.instances[2].path
    raw = bytearray(victim.read_bytes())
    raw[-3] ^= 0x10  # same size, different pixels
    victim.write_bytes(bytes(raw))
    store = SqliteBlobStore(tmp_path / "vault.sqlite")
    with pytest.raises(InvalidRecord, match=r"input \d+ of 8: changed since it was characterized"):
        seal_stream(
            record.open_payload(), commit(record.canonical, new_salt()), store, chunk_size=1024
        )
    conn = sqlite3.connect(tmp_path / "vault.sqlite")
    assert conn.execute("SELECT COUNT(*) FROM blobs").fetchone()[0] == 0  # nothing left behind
    conn.close()
    store.close()


def test_study_writer_refuses_altered_short_and_long_payloads(
    study_folder: Path, tmp_path: Path
) -> None:
    [study, _] = read_studies([study_folder])
    manifest = build_manifest(study)
    payload = b"".join(i.path.read_bytes() for i in study.instances)
    bad = bytearray(payload)
    bad[manifest.instances[2]["offset"] + 200] ^= 0x01
    writer = StudyWriter(manifest, tmp_path / "out")
    with pytest.raises(Tampered, match="instance 3 of 6: content does not match"):
        writer.write(bytes(bad))
    assert [p.name for p in writer.paths] == ["000000.dcm", "000001.dcm"]  # verified ones only
    short = StudyWriter(manifest, None)
    short.write(payload[:-1])
    with pytest.raises(Tampered, match="instance 6 of 6: payload ended"):
        short.finish()
    with pytest.raises(Tampered, match="longer"):
        StudyWriter(manifest, None).write(payload + b"\0")
    verify_only = StudyWriter(manifest, None)
    for k in range(0, len(payload), 777):  # any write sizes, across instance boundaries
        verify_only.write(payload[k : k + 777])
    assert verify_only.finish() == []


# -- rendering ------------------------------------------------------------------------


def _png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image


def test_ct_is_rendered_with_a_window_and_windowing_changes_it() -> None:
    ct = bundled("CT_small.dcm")  # carries no window: the soft-tissue default applies
    image = _png(render_png(ct))
    assert (image.size, image.mode) == ((128, 128), "L")
    default = display_array(ct)
    assert np.array_equal(default, display_array(ct, window=CT_DEFAULT_WINDOW))
    bone = display_array(ct, window=(300, 1500))
    assert not np.array_equal(default, bone)
    hu = pydicom.dcmread(ct).pixel_array.astype(float) - 1024  # slope 1, intercept -1024
    assert (default[hu <= 40 - 200] == 0).all() and (default[hu >= 40 + 200] == 255).all()
    assert np.count_nonzero(bone == 255) < np.count_nonzero(default == 255)  # wider window


def test_mr_uses_the_window_in_its_file() -> None:
    mr = bundled("MR_small.dcm")  # WindowCenter 600, WindowWidth 1600
    image = _png(render_png(mr))
    assert (image.size, image.mode) == ((64, 64), "L")
    assert np.array_equal(display_array(mr), display_array(mr, window=(600, 1600)))
    assert not np.array_equal(display_array(mr), display_array(mr, window=(300, 200)))


def test_multiframe_files_render_one_frame() -> None:
    dose = bundled("rtdose.dcm")  # 15 native frames
    first = display_array(dose)
    assert first.shape == (10, 10) and not np.array_equal(first, display_array(dose, frame=7))
    with pytest.raises(InvalidRecord, match="has 15 frame"):
        render_png(dose, frame=15, label="instance 1 of 1")
    clip = _png(render_png(bundled("examples_ybr_color.dcm")))  # 30 JPEG frames, YBR
    assert (clip.size, clip.mode) == ((320, 240), "RGB")
    rle = _png(render_png(bundled("SC_rgb_rle_2frame.dcm"), frame=1))
    assert (rle.size, rle.mode) == ((100, 100), "RGB")


def test_rgb_palette_and_thumbnails() -> None:
    rgb = bundled("examples_rgb_color.dcm")
    assert np.array_equal(display_array(rgb), pydicom.dcmread(rgb).pixel_array)  # untouched
    palette = _png(render_png(bundled("examples_palette.dcm")))
    assert (palette.size, palette.mode) == ((800, 350), "RGB")
    thumb = _png(render_png(bundled("examples_palette.dcm"), max_side=200))
    assert max(thumb.size) == 200


def test_monochrome1_is_inverted_and_a_file_window_is_honoured(tmp_path: Path) -> None:
    common = dict(study=uid(5), series=uid(5, 1), number=1, seed=3)
    mono2 = write_instance(tmp_path / "m2.dcm", sop=uid(5, 1, 1), **common)
    mono1 = write_instance(
        tmp_path / "m1.dcm", sop=uid(5, 1, 2), photometric="MONOCHROME1", **common
    )
    a, b = display_array(mono2), display_array(mono1)
    assert (a.astype(int) + b.astype(int) == 255).all()
    lung = write_instance(tmp_path / "w.dcm", sop=uid(5, 1, 3), window=(-600, 1500), **common)
    assert np.array_equal(display_array(lung), display_array(mono2, window=(-600, 1500)))
    assert not np.array_equal(display_array(lung), a)


def test_undecodable_compression_and_no_pixels_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidRecord) as err:
        render_png(bundled("MR_small_jpeg_ls_lossless.dcm"), label="instance 4 of 9")
    text = str(err.value)
    assert text.startswith("instance 4 of 9: pixel data is compressed as JPEG-LS Lossless")
    assert "1.2.840.10008.1.2.4.80" in text and "pylibjpeg" in text
    assert "CompressedSamples" not in text
    with pytest.raises(InvalidRecord, match="has no pixel data"):
        render_png(bundled("reportsi.dcm"))
    with pytest.raises(InvalidRecord, match="not a DICOM file"):
        render_png(b'{"resourceType": "Patient"}')
    half = bundled("CT_small.dcm").read_bytes()
    with pytest.raises(InvalidRecord, match="cannot be read"):
        render_png(half[: len(half) // 2])


def test_a_decrypted_instance_renders_from_bytes(study_folder: Path) -> None:
    [study, _] = read_studies([study_folder])
    data = study.instances[3].path.read_bytes()
    image = _png(render_png(data, label="instance 4 of 6"))
    assert (image.size, image.mode) == ((16, 16), "L")


# -- the benchmark --------------------------------------------------------------------


def test_the_streaming_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    """At 24 MB: the counts and hashes, not the speed (a shared machine's timing says little)."""
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "dicom_stream.py"),
            "--size-mb",
            "24",
            "--out",
            str(tmp_path / "bench"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    report = json.loads(proc.stdout)
    assert report["verified_instances"] == report["instances"] > 40
    assert report["study_bytes"] >= 24 * 10**6
    assert {"characterize", "manifest", "encrypt", "decrypt_verify"} <= report["stages"].keys()
    assert report["peak_rss_mib"] > 0 and "baseline" in report
    assert (tmp_path / "bench" / "study").is_dir()  # --out keeps the data
