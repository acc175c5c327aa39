"""An imaging study opened on the patient's device (issue 14, point 2).

A DICOM study is sealed as a record (its manifest and characterization, with the key of
its stream) plus a stream of encrypted 1 MiB chunks (:mod:`healthnft.vault.stream`). The
page opens and checks the record itself, like any other, and shows the study's headline
and series; on request it fetches the sealed chunks, checks and decrypts them
(``wallet/stream.js``) and offers the original DICOM files, byte for byte what the
hospital minted. A chunk altered on its way shows "tampered" and no file. The stream's
key never leaves the page, and nothing of the study is opened on the server.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_device_open as opened
from test_device_open import PASSPHRASE, Traffic, _patient_secrets, _use_demo_patient

from conftest import REPO, run_cli

pytestmark = pytest.mark.slow

chromium = opened.chromium

#: (url, home, token, the study's stream key as hex, the minted DICOM files' bytes).
Imaging = tuple[str, Path, int, str, list[bytes]]


def _write_study(folder: Path) -> list[Path]:
    """Three CT instances of one synthetic study (``Synthetic^Device``), 512 KiB of
    pixels each: sealed as two 1 MiB chunks, so order and the last flag count."""
    import numpy as np
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    rng = np.random.default_rng(14)
    paths = []
    for k in range(1, 4):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = f"2.25.1414.1.{k}"
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = "2.25.1414", "2.25.1414.1"
        ds.PatientName, ds.PatientID, ds.StudyDate = "Synthetic^Device", "SYN-14", "20240301"
        ds.Modality, ds.BodyPartExamined = "CT", "CHEST"
        ds.SeriesNumber, ds.SeriesDescription, ds.InstanceNumber = 1, "Axial", k
        ds.Rows = ds.Columns = 512
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = rng.integers(0, 4096, (512, 512), dtype="<u2").tobytes()
        path = folder / f"IM{k:04d}"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _others_get_nothing(home: Path, token: int, digest: str, owner: str) -> None:
    """Another patient asking for the study's chunk gets what a stranger gets."""
    from healthnft.errors import NotFound
    from healthnft.services import device
    from healthnft.services.node import open_network

    net = open_network(home)
    try:
        other = next(p.address for p in net.catalog.participants("patient")
                     if p.address.lower() != owner.lower())  # fmt: skip
        assert device.study_chunk(net, owner, token, digest)
        with pytest.raises(NotFound):
            device.study_chunk(net, other, token, digest)
    finally:
        net.close()


@pytest.fixture(scope="module")
def imaging_server(demo_home, tmp_path_factory) -> Iterator[Imaging]:
    """``healthnft serve`` over a copy of the demo home where the hospital minted a CT
    study (:func:`_write_study`) to the first demo patient: (url, home, token, the study's
    stream key as hex, read here with the demo keystore, the DICOM files' bytes)."""
    from test_browser import _free_port

    from healthnft.minting.pipeline import STREAM_META
    from healthnft.network import DEMO_PASSPHRASE
    from healthnft.services import device
    from healthnft.services.access import unlock
    from healthnft.services.node import open_network

    src, _ = demo_home
    home = tmp_path_factory.mktemp("imaging") / "home"
    shutil.copytree(src, home)
    net = open_network(home)
    try:
        patient = device.demo_patients(net)[0]["address"]
        hospital = net.catalog.participants("hospital")[0].label
    finally:
        net.close()
    folder = tmp_path_factory.mktemp("dicom") / "disc"
    files = _write_study(folder)
    proc = run_cli(home, "mint", "--issuer", hospital, "--patient", patient, str(folder),
                   "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["records_minted"] == 1, summary
    net = open_network(home)
    try:
        token = max(r.token_id for r in net.catalog.records_of(patient)
                    if r.category == "imaging")  # fmt: skip
        plain = net.wallet().decrypt_row(net.catalog.record(token),
                                         unlock(net, patient, DEMO_PASSPHRASE))  # fmt: skip
        stream_key = plain.meta[STREAM_META]["key"]
    finally:
        net.close()

    port = _free_port()
    log = (tmp_path_factory.mktemp("imaging-log") / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "healthnft.cli", "--home", str(home), "serve", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, cwd=str(REPO),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise AssertionError("healthnft serve did not start") from None
            time.sleep(0.2)
    try:
        yield url, home, token, stream_key, [f.read_bytes() for f in files]
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_a_device_patient_opens_an_imaging_study_and_its_images_on_the_device(
        imaging_server, chromium) -> None:  # fmt: skip
    url, home, token, stream_key, dicom = imaging_server
    page = chromium.new_page()
    page.set_default_timeout(30000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    traffic = Traffic(page)
    address = _use_demo_patient(page, url)

    page.locator(f"a[data-token='{token}']").click()
    page.locator("#badge").filter(has_text="authentic").wait_for()
    assert page.get_by_role("heading", level=1).inner_text().startswith("Imaging study — CT")
    series = page.get_by_role("table", name="Series")
    assert series.locator("td[data-label='Modality']").all_inner_texts() == ["CT"]
    assert series.locator("td[data-label='Images']").all_inner_texts() == ["3"]
    note = page.locator("#study-images").inner_text()
    assert "2 encrypted chunks" in note and f"healthnft wallet show {token} --out" in note
    assert page.locator("img.record-image").count() == 0

    # A chunk altered on its way: "tampered", and no file.
    def flip(route) -> None:
        body = bytearray(route.fetch().body())
        body[len(body) // 2] ^= 1
        route.fulfill(body=bytes(body), content_type="application/octet-stream")

    decrypt = page.get_by_role("button", name="Decrypt the images on this device")
    page.route("**/chunks/*", flip)
    decrypt.click()
    page.locator("#study-tampered").wait_for()
    assert page.get_by_role("link", name=re.compile("Image file")).count() == 0
    page.unroute("**/chunks/*")

    # Decrypted here: the original DICOM files, byte for byte.
    decrypt.click()
    page.get_by_role("link", name=re.compile(r"Image file 3 \(DICOM")).wait_for()
    links = page.get_by_role("list", name="Image files").get_by_role("link")
    assert links.count() == 3
    saved = []
    for i in range(3):
        with page.expect_download() as got:
            links.nth(i).click()
        assert got.value.suggested_filename == f"study-{token}-{i + 1}.dcm"
        saved.append(Path(got.value.path()).read_bytes())
    assert sorted(saved) == sorted(dicom)

    # Chunks are the owner's only, and only the token's own.
    chunk = next(u for u in traffic.urls if f"/api/records/{token}/chunks/" in u).split()[1]
    status = "async (u) => (await fetch(u)).status"
    assert page.evaluate(status, chunk) == 200
    assert page.evaluate(status, chunk.rsplit("/", 1)[0] + "/" + "ab" * 32) == 404
    assert page.evaluate(status, chunk.replace(f"/records/{token}/", "/records/1/")) == 404
    assert page.evaluate(status, chunk.rsplit("/", 1)[0] + "/not-a-digest") == 400
    _others_get_nothing(home, token, chunk.rsplit("/", 1)[1], address)

    # Opened here: the sealed record travelled, the server opened nothing of it, and the
    # stream's key (inside the sealed record) never left the page.
    assert any(u.endswith(f"/api/records/{token}/sealed") for u in traffic.urls)
    assert not any(re.search(rf"/api/records/{token}(/image\.png)?$", u) for u in traffic.urls)
    assert any(f"/api/records/{token}/chunks/" in u for u in traffic.urls)
    import pydicom

    name = str(pydicom.dcmread(io.BytesIO(dicom[0])).PatientName)  # in the files, never sent
    assert name == "Synthetic^Device"
    account_key, enc_key = _patient_secrets(home, address)
    for secret in (PASSPHRASE, account_key, enc_key, stream_key, name):
        assert traffic.holding(secret) == []
    assert errors == []
    page.close()
