"""DICOM imaging end to end through the command line: mint files and folders (one record
per study), list, show as PNG / DICOM files / series listing, verify, tamper, crash,
transfer, burn, bad input and privacy.

Real files only: pydicom's bundled ``CT_small.dcm`` and ``MR_small.dcm``, and a
multi-series study written here with pydicom for a clearly synthetic patient
(``Synthetic^Test``), big enough (~2.9 MB) to be sealed as several 1 MiB chunks.
Every crash is a real SIGKILL of a real CLI process on a real home.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from conftest import run_cli
from healthnft.errors import NotFound, Tampered
from healthnft.network import DEMO_PASSPHRASE, Network
from healthnft.services import records as ops
from healthnft.services import sharing

STUDY_UID = "2.25.90017"
# (series uid, number, description, rows/columns, instances): the scout sorts first.
SERIES = [
    (f"{STUDY_UID}.1", 1, "Scout", 256, 1),
    (f"{STUDY_UID}.2", 2, "Axial soft tissue", 512, 5),
]
SYNTHETIC = {
    "PatientName": "Synthetic^Test",
    "PatientID": "SYNTHETIC-0001",
    "PatientBirthDate": "19700101",
    "StudyDate": "20240301",
    "AccessionNumber": "SYNACC42",
}


def bundled(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom test file {name} is not bundled"
    return Path(path)


def write_study(folder: Path) -> list[Path]:
    """Two CT series of one study, in nested folders like a disc export, plus a foreign
    file (a disc's autorun) that a folder mint must leave alone."""
    paths = []
    rng = np.random.default_rng(11)
    for series_uid, number, description, size, count in SERIES:
        for k in range(1, count + 1):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = CTImageStorage
            meta.MediaStorageSOPInstanceUID = f"{series_uid}.{k}"
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
            ds.SOPClassUID = CTImageStorage
            ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
            ds.StudyInstanceUID, ds.SeriesInstanceUID = STUDY_UID, series_uid
            for keyword, value in SYNTHETIC.items():
                setattr(ds, keyword, value)
            ds.Modality, ds.BodyPartExamined = "CT", "ABDOMEN"
            ds.SeriesNumber, ds.SeriesDescription, ds.InstanceNumber = number, description, k
            ds.Rows = ds.Columns = size
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
            ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
            ds.PixelData = rng.integers(0, 4096, (size, size), dtype="<u2").tobytes()
            path = folder / f"SE{number}" / f"IM{k:04d}"  # no suffix, as discs often have
            path.parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
    (folder / "AUTORUN.INF").write_text("[autorun]\nopen=viewer.exe\n")
    return paths


@dataclass(frozen=True)
class Inputs:
    ct: Path
    mr: Path
    study: Path  # the folder
    study_files: list[Path]


@dataclass(frozen=True)
class Home:
    path: Path
    patient: str
    other: str


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    root = tmp_path_factory.mktemp("dicom-inputs")
    ct = root / "Doe_Jane_CT.dcm"  # names like an export's, which errors must not echo
    shutil.copy(bundled("CT_small.dcm"), ct)
    mr = root / "Doe_Jane_MR.dcm"
    shutil.copy(bundled("MR_small.dcm"), mr)
    study = root / "Doe_Jane_disc"
    return Inputs(ct, mr, study, write_study(study))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """A demo-keyed home with a hospital and two patients, nothing minted (built
    in-process: the same Network the CLI opens, without a process per step)."""
    path = tmp_path_factory.mktemp("dicom-template") / "home"
    net = Network.create(path, DEMO_PASSPHRASE, demo=True)
    try:
        net.add_participant("hospital", "demo-hospital")
        patient = net.add_participant("patient", "imaging-patient").address
        other = net.add_participant("patient", "second-patient").address
    finally:
        net.close()
    return Home(path, patient, other)


def copy_home(home: Home, dest: Path) -> Home:
    shutil.copytree(home.path, dest)
    return Home(dest, home.patient, home.other)


def mint(home: Home, *files: Path, env: dict[str, str] | None = None):
    return run_cli(home.path, "mint", "--issuer", "demo-hospital", "--patient", home.patient,
                   *map(str, files), "--json", env=env)  # fmt: skip


@pytest.fixture(scope="module")
def minted(template: Home, inputs: Inputs, tmp_path_factory: pytest.TempPathFactory):
    """The CT file, the study folder and the MR file minted in one run (read-only use)."""
    home = copy_home(template, tmp_path_factory.mktemp("dicom-minted") / "home")
    proc = mint(home, inputs.ct, inputs.study, inputs.mr)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["records_minted"] == 3 and summary["batches"] == 1, summary
    ct_token, study_token, mr_token = summary["token_ids"]  # studies in order of input
    return home, {"ct": ct_token, "study": study_token, "mr": mr_token}


def vault_digests(home: Path) -> list[bytes]:
    with sqlite3.connect(home / "vault.sqlite") as db:
        return [r[0] for r in db.execute("SELECT digest FROM blobs")]


def referenced_digests(home: Path) -> set[bytes]:
    net = Network.open(home)
    try:
        return net.catalog.referenced_digests()
    finally:
        net.close()


def chunk_digests(home: Path, token_id: int) -> list[bytes]:
    with sqlite3.connect(home / "index.sqlite") as db:
        return [r[0] for r in db.execute(
            "SELECT digest FROM record_blobs WHERE token_id = ? ORDER BY rowid", (token_id,))]


def one_error_line(proc, *fragments: str) -> str:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout.strip() == "", proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "internal error" not in lines[0]
    return lines[0]


# -- mint, list, show, verify ----------------------------------------------------------


def test_files_and_folders_mint_one_record_per_study(minted, inputs: Inputs) -> None:
    home, tokens = minted
    rows = json.loads(run_cli(home.path, "wallet", "list", "--owner", home.patient, "--json",
                              check=True).stdout)  # fmt: skip
    assert sorted(r["token_id"] for r in rows) == sorted(tokens.values())
    assert {(r["category"], r["resource_type"]) for r in rows} == {("imaging", "DicomStudy")}
    # Every chunk the vault holds is one the catalogue leads to, and nothing else is there.
    assert set(vault_digests(home.path)) == referenced_digests(home.path)
    assert len(chunk_digests(home.path, tokens["study"])) == 3  # ~2.9 MB in 1 MiB chunks


def test_show_lists_the_series_and_writes_a_png_and_the_original_files(
    minted, inputs: Inputs, tmp_path: Path
) -> None:
    home, tokens = minted
    token = str(tokens["study"])
    shown = run_cli(home.path, "wallet", "show", token, check=True).stdout
    assert "DicomStudy (imaging, 2024-03-01)" in shown
    assert "CT · ABDOMEN · 2 series, 6 instances, 6 frames, 2.8 MB" in shown
    assert "Scout" in shown and "Axial soft tissue" in shown
    for value in ("Synthetic", "SYNTHETIC-0001", "19700101", "SYNACC42", STUDY_UID):
        assert value not in shown

    png = tmp_path / "first.png"
    run_cli(home.path, "wallet", "show", token, "--out", str(png), check=True)
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (256, 256)  # the scout, first
        assert len(np.unique(np.asarray(image))) > 16  # a real picture, not a flat field
    assert oct(png.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in tmp_path.iterdir()] == ["first.png"]  # its temp folder is gone

    out = tmp_path / "study-back"
    run_cli(home.path, "wallet", "show", token, "--out", str(out), check=True)
    written = sorted(out.iterdir())
    assert [p.name for p in written] == [f"{k:06d}.dcm" for k in range(6)]
    assert sorted(p.read_bytes() for p in written) == sorted(
        p.read_bytes() for p in inputs.study_files
    )  # byte for byte; the autorun file was not part of the study
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in written)
    [scout] = [p for p in written if pydicom.dcmread(p).SeriesNumber == 1]
    assert scout.name == "000000.dcm"  # manifest order: series, then instance number

    one = tmp_path / "ct.dcm"
    run_cli(home.path, "wallet", "show", str(tokens["ct"]), "--out", str(one), check=True)
    assert one.read_bytes() == inputs.ct.read_bytes()
    ct_png = tmp_path / "ct.png"
    run_cli(home.path, "wallet", "show", str(tokens["ct"]), "--out", str(ct_png), check=True)
    with Image.open(ct_png) as image:
        header = pydicom.dcmread(inputs.ct, stop_before_pixels=True)
        assert image.size == (header.Columns, header.Rows)

    verdict = json.loads(run_cli(home.path, "verify", token, "--json", check=True).stdout)
    assert verdict["valid"] is True and "every imaging chunk" in verdict["reason"]


# -- tampering -------------------------------------------------------------------------


def test_a_flipped_byte_in_any_chunk_is_tampered(minted, tmp_path: Path) -> None:
    src, tokens = minted
    home = copy_home(src, tmp_path / "home")
    token = tokens["study"]
    digest = chunk_digests(home.path, token)[1]  # a middle chunk
    with sqlite3.connect(home.path / "vault.sqlite") as db:
        (blob,) = db.execute("SELECT data FROM blobs WHERE digest = ?", (digest,)).fetchone()
        flipped = bytearray(blob)
        flipped[len(blob) // 2] ^= 0x01
        db.execute("UPDATE blobs SET data = ? WHERE digest = ?", (bytes(flipped), digest))
    proc = run_cli(home.path, "verify", str(token), "--json")
    assert proc.returncode == 1
    verdict = json.loads(proc.stdout)
    assert verdict["valid"] is False and verdict["reason"].startswith("tampered")
    assert "stream chunk 2 of 3" in verdict["reason"]
    out = tmp_path / "out"
    one_error_line(run_cli(home.path, "wallet", "show", str(token), "--out", str(out)),
                   "stream chunk 2 of 3")  # fmt: skip
    assert not out.exists()  # no verified prefix left behind, and no temporary folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]
    one_error_line(run_cli(home.path, "wallet", "show", str(token)), "stream chunk 2 of 3")
    # A transfer re-seals the stream: it refuses the tampered one and leaves nothing behind.
    before = sorted(vault_digests(home.path))
    net = Network.open(home.path)
    try:
        with pytest.raises(Tampered, match="stream chunk 2 of 3"):
            ops.transfer(net, home.patient, token, home.other)
        assert net.ledger.owner_of(token) == home.patient
        assert not net.catalog.stale_blobs()
    finally:
        net.close()
    assert sorted(vault_digests(home.path)) == before


# -- crashes ----------------------------------------------------------------------------


@pytest.mark.parametrize("point", ["after-encrypt", "mid-stream"])
def test_a_crash_while_minting_a_study_leaves_no_orphan_chunk(
    point: str, template: Home, inputs: Inputs, tmp_path: Path
) -> None:
    home = copy_home(template, tmp_path / "home")
    proc = mint(home, inputs.study, env={"HEALTHNFT_CRASH_AT": point})
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)
    stored = vault_digests(home.path)
    assert stored, "the crash came after chunks were stored"
    with sqlite3.connect(home.path / "index.sqlite") as db:
        journaled = {r[0] for r in db.execute(
            "SELECT digest FROM record_blobs UNION SELECT blob_digest FROM records")}
        batches = db.execute("SELECT count(*) FROM batches").fetchone()[0]
    assert set(stored) <= journaled  # every stored blob was journaled before it was put
    assert batches == (1 if point == "after-encrypt" else 0)  # mid-stream: before the journal
    again = mint(home, inputs.study)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["records_minted"] == 1 and summary["already_minted"] == 0
    assert set(vault_digests(home.path)) == referenced_digests(home.path)
    assert not set(stored) & set(vault_digests(home.path))  # the crashed run's chunks are gone
    net = Network.open(home.path)
    try:
        rows = net.wallet().list(home.patient)
        assert [r["token_id"] for r in rows] == summary["token_ids"]
        assert net.wallet().verify(rows[0]["token_id"], net.identity(home.patient)).valid
    finally:
        net.close()
    third = json.loads(mint(home, inputs.study).stdout)
    assert third["records_minted"] == 0 and third["already_minted"] == 1


# -- transfer and burn -------------------------------------------------------------------


def _probes(blob: bytes, n: int = 16) -> list[bytes]:
    """32-byte slices spread over a blob (SQLite splits a large blob over pages, so a
    slice may straddle two: several are searched)."""
    step = max((len(blob) - 32) // n, 1)
    return [blob[k : k + 32] for k in range(0, len(blob) - 32, step)]


def _every_home_file(home: Path) -> list[Path]:
    return [p for p in home.rglob("*") if p.is_file()]


def test_transfer_reseals_the_stream_and_burn_shreds_every_chunk(
    minted, inputs: Inputs, tmp_path: Path
) -> None:
    src, tokens = minted
    home = copy_home(src, tmp_path / "home")
    token = tokens["study"]
    old_chunks = chunk_digests(home.path, token)
    with sqlite3.connect(home.path / "vault.sqlite") as db:
        old_bytes = [db.execute("SELECT data FROM blobs WHERE digest = ?", (d,)).fetchone()[0]
                     for d in old_chunks]  # fmt: skip
    net = Network.open(home.path)
    try:
        ops.transfer(net, home.patient, token, home.other)
        new_chunks = net.catalog.record_blobs(token, net.catalog.record(token).key_id)
        stored = set(vault_digests(home.path))
        assert not stored & set(old_chunks)  # the old stream's chunks are deleted
        assert len(new_chunks) == 4 and set(new_chunks) <= stored  # 3 chunks + ciphertext
        assert stored == net.catalog.referenced_digests()
        from healthnft.wallet.files import write_study as write_back

        opened = ops.open_record(net, home.other, token)
        assert opened.is_study and "stream" not in opened.meta
        out = tmp_path / "new-owner"
        write_back(net.wallet(), token, net.identity(home.other), out, opened.resource)
        assert sorted(p.read_bytes() for p in out.iterdir()) == sorted(
            p.read_bytes() for p in inputs.study_files
        )
        with pytest.raises(Exception, match="holds no key"):
            net.wallet().open(token, net.identity(home.patient))  # the old owner's key is void
        with sqlite3.connect(home.path / "vault.sqlite") as db:
            captured = [db.execute("SELECT data FROM blobs WHERE digest = ?", (d,)).fetchone()[0]
                        for d in new_chunks]  # fmt: skip
        vault = b"".join(p.read_bytes() for p in home.path.glob("vault.sqlite*"))
        assert all(any(p in vault for p in _probes(blob)) for blob in captured)  # it would see
        ops.burn(net, home.other, token, confirm=True)
        assert not net.catalog.record_blobs(token)
        assert set(vault_digests(home.path)) == net.catalog.referenced_digests()
    finally:
        net.close()
    # Neither stream's ciphertext survives anywhere in the home (pages, WAL, journal).
    probes = [p for blob in (*old_bytes, *captured) for p in _probes(blob)]
    for path in _every_home_file(home.path):
        data = path.read_bytes()
        assert not [p for p in probes if p in data], path.name
    verdict = json.loads(run_cli(home.path, "verify", str(token), "--json").stdout)
    assert verdict["valid"] is False and verdict["reason"].startswith("burned")


# -- bad input ----------------------------------------------------------------------------


def test_bad_dicom_input_gives_one_error_line_and_mints_nothing(
    template: Home, inputs: Inputs, tmp_path: Path
) -> None:
    home = copy_home(template, tmp_path / "home")
    ct = inputs.ct.read_bytes()
    bad = tmp_path / "bad"
    bad.mkdir()
    cases = {
        "Doe_Jane_truncated.dcm": (ct[: len(ct) // 2], "truncated DICOM file"),
        "Doe_Jane_report.dcm": (bundled("reportsi.dcm").read_bytes(), "has no pixel data"),
        "Doe_Jane_empty.dcm": (b"", "empty file (0 bytes)"),
        "Doe_Jane_scan.xyz": (b"\x89not an image format we know" * 8,
                              "not a FHIR JSON, DICOM, text or PDF file"),
    }  # fmt: skip
    for name, (data, reason) in cases.items():
        path = bad / name
        path.write_bytes(data)
        line = one_error_line(mint(home, inputs.ct, path), "input file 2 of 2", reason)
        assert "Doe" not in line and "Jane" not in line, line
    folder = bad / "disc"
    shutil.copytree(inputs.study, folder)
    (folder / "SE2" / "IM0003").write_bytes((folder / "SE2" / "IM0003").read_bytes()[:4000])
    # Positions count the folder's DICOM files only (the autorun file is left alone).
    one_error_line(mint(home, folder), "input file 4 of 6: truncated DICOM file")
    assert vault_digests(home.path) == []
    with sqlite3.connect(home.path / "index.sqlite") as db:
        assert db.execute("SELECT count(*) FROM records").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM record_blobs").fetchone()[0] == 0


# -- privacy ---------------------------------------------------------------------------


def test_the_chain_holds_no_dicom_identifier_or_date(minted, inputs: Inputs,
                                                       tmp_path: Path) -> None:  # fmt: skip
    home, _ = minted
    secrets: set[str] = set(SYNTHETIC.values()) | {STUDY_UID, "2024-03-01"}
    for path in [inputs.ct, inputs.mr, *inputs.study_files]:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "SeriesInstanceUID",
                        "SOPInstanceUID", "StudyDate", "PatientBirthDate", "AccessionNumber"):
            value = str(ds.get(keyword) or "").strip()
            if len(value) >= 4:
                secrets.add(value)
    export = tmp_path / "chain.json"
    run_cli(home.path, "chain", "export", str(export), check=True)
    exported = export.read_text()
    raw = b"".join(p.read_bytes() for p in home.path.glob("chain.sqlite*"))
    for value in secrets:
        assert value not in exported, value
        assert value.encode() not in raw, value
    # ... and the catalogue (local, private) lists the hashes only, never the UIDs.
    catalogue = (home.path / "index.sqlite").read_bytes()
    for uid in (STUDY_UID, f"{STUDY_UID}.2.3"):
        assert uid.encode() not in catalogue


# -- sharing ---------------------------------------------------------------------------


def test_a_grantee_opens_a_shared_study_without_its_stream_key(tmp_path: Path,
                                                               inputs: Inputs) -> None:  # fmt: skip
    from healthnft.ingest import ingest, single_patient

    net = Network.create(tmp_path / "home", DEMO_PASSPHRASE, demo=True)
    try:
        hospital = net.add_participant("hospital", "demo-hospital")
        for n in range(2):
            net.add_participant("custodian", f"custodian-{n}")
        patient = net.add_participant("patient", "p")
        research = net.add_participant("research", "r")
        records = single_patient(ingest([inputs.ct]))
        [token] = net.minter().mint(net.identity(hospital.address), patient.address,
                                    patient.enc_key, records).token_ids  # fmt: skip
        sharing.share(net, patient.address, research.address, "research", 7, token_ids=[token])
        opened = ops.open_record(net, research.address, token)  # through the custodians
        assert opened.is_study and opened.resource["instances"][0]["rows"] == 128
        assert "stream" not in opened.meta and "key" not in json.dumps(opened.meta)
        assert opened.meta["imaging"]["modalities"] == ["CT"]
        # The grantee gets the images too: streamed with the released key, never handed out.
        png = tmp_path / "shared.png"
        ops.save_record(net, research.address, token, png)
        with Image.open(png) as img:
            assert img.format == "PNG" and img.size == (128, 128)
        folder = tmp_path / "shared-files"
        info = ops.save_record(net, research.address, token, folder)
        [copy] = sorted(folder.iterdir())
        assert info.details["files"] == 1 and copy.read_bytes() == inputs.ct.read_bytes()
        stranger = net.add_participant("research", "not-granted")
        with pytest.raises(NotFound):
            ops.save_record(net, stranger.address, token, tmp_path / "no.png")
        assert not (tmp_path / "no.png").exists()
    finally:
        net.close()
