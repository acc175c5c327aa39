"""An imaging study opened on the patient's device (issue 14, point 2).

A DICOM study is sealed as a record (its manifest and characterization, with the key of
its stream) plus a stream of encrypted 1 MiB chunks (:mod:`healthnft.vault.stream`). The
page opens and checks the record itself, like any other: it shows the study's
headline and series from it, and says plainly that the images are kept in encrypted
chunks this page does not open, with the CLI wallet command that does. The stream's key
never leaves the page, and nothing of the study is opened on the server.
"""

from __future__ import annotations

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


@pytest.fixture(scope="module")
def imaging_server(demo_home, tmp_path_factory) -> Iterator[tuple[str, Path, int, str]]:
    """``healthnft serve`` over a copy of the demo home where the hospital minted a CT
    study (pydicom's bundled CT_small.dcm) to the first demo patient: (url, home, token,
    the study's stream key as hex, read here with the demo keystore)."""
    from pydicom.data import get_testdata_file
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
    ct = tmp_path_factory.mktemp("dicom") / "ct.dcm"
    shutil.copy(get_testdata_file("CT_small.dcm"), ct)
    proc = run_cli(home, "mint", "--issuer", hospital, "--patient", patient, str(ct), "--json")
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
        yield url, home, token, stream_key
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_a_device_patient_opens_an_imaging_study_and_is_told_where_its_images_open(
        imaging_server, chromium) -> None:  # fmt: skip
    url, home, token, stream_key = imaging_server
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
    assert series.locator("td[data-label='Images']").all_inner_texts() == ["1"]
    note = page.locator("#study-images").inner_text()
    assert "encrypted chunks" in note and f"healthnft wallet show {token} --out" in note
    assert page.locator("img.record-image").count() == 0

    # Opened here: the sealed record travelled, the server opened nothing of it, and the
    # stream's key (inside the sealed record) never left the page.
    assert any(u.endswith(f"/api/records/{token}/sealed") for u in traffic.urls)
    assert not any(re.search(rf"/api/records/{token}(/image\.png)?$", u) for u in traffic.urls)
    account_key, enc_key = _patient_secrets(home, address)
    for secret in (PASSPHRASE, account_key, enc_key, stream_key):
        assert traffic.holding(secret) == []
    assert errors == []
    page.close()
