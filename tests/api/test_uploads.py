"""Uploads never leave health data outside the encrypted home (issue 12.8).

Before: Starlette spooled every uploaded file to ``/tmp`` before the route ran, a
killed ``serve`` left them there in the clear, and a 413 came after 64 MiB were on
disk. Now the body streams into ``<home>/uploads`` (private), is cut off at the cap,
and whatever a killed server leaves is swept when the service starts again.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO
from healthnft.api import siwe

MARKER = b"UPLOAD-MARKER-7d1f3c"  # stands in for a patient's data: found nowhere after


def _files_with(root: Path, needle: bytes) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        try:
            if path.is_file() and needle in path.read_bytes():
                found.append(path)
        except OSError:
            pass
    return found


@pytest.fixture
def private_tmp(monkeypatch, tmp_path) -> Path:
    """The system temporary folder, replaced by an empty one this test can inspect."""
    folder = tmp_path / "system-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _observation() -> bytes:
    return json.dumps({
        "resourceType": "Observation", "id": "upload-privacy-1", "status": "final",
        "code": {"text": MARKER.decode()}, "subject": {"reference": "urn:uuid:p"},
        "effectiveDateTime": "2024-05-01T08:00:00Z",
    }).encode()  # fmt: skip


def _wait(client, job: dict) -> dict:
    while job["state"] == "running":
        time.sleep(0.05)
        job = client.get(f"/api/jobs/{job['job_id']}").json()
    return job


def test_an_upload_touches_no_system_temp_file_and_leaves_nothing(served, private_tmp) -> None:
    hospital = served.client()
    served.sign_in(hospital, served.hospital)
    r = hospital.post("/api/mint", data={"patient": served.patient(2)},
                      files={"files": ("Jane_Doe_1234.json", _observation())})  # fmt: skip
    assert r.status_code == 200, r.text
    assert _wait(hospital, r.json())["state"] == "done"
    assert list(private_tmp.iterdir()) == []
    staging = served.home / "uploads"
    assert staging.is_dir() and list(staging.iterdir()) == []
    assert (staging.stat().st_mode & 0o777) == 0o700


def test_an_oversized_upload_is_refused_as_it_arrives_and_leaves_nothing(served,
                                                                        private_tmp) -> None:
    hospital = served.client()
    served.sign_in(hospital, served.hospital)
    staging = served.home / "uploads"
    boundary = "b0undary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"patient\"\r\n\r\n"
            f"{served.patient(2)}\r\n--{boundary}\r\nContent-Disposition: form-data; "
            f"name=\"files\"; filename=\"big.json\"\r\n\r\n").encode()  # fmt: skip
    sent = [0]

    def body() -> Iterator[bytes]:  # chunked: no Content-Length to refuse early on
        yield head
        chunk = MARKER * (2**20 // len(MARKER))
        for _ in range(80):
            sent[0] += len(chunk)
            yield chunk

    r = hospital.post("/api/mint", content=body(),
                      headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413 and r.json()["code"] == "too_large", r.text
    assert "64 MiB" in r.json()["detail"]
    assert list(staging.iterdir()) == [] and list(private_tmp.iterdir()) == []
    # A declared length over the cap is refused before the body is read.
    r = hospital.post("/api/mint", content=b"x",
                      headers={"content-type": f"multipart/form-data; boundary={boundary}",
                               "content-length": str(65 * 2**20)})  # fmt: skip
    assert r.status_code == 413
    # Not multipart, not well-formed, or missing a field: one problem document each.
    for content, ctype in ((b"{}", "application/json"),
                           (b"--b0undary\r\ngarbage", f"multipart/form-data; boundary={boundary}")):
        r = hospital.post("/api/mint", content=content, headers={"content-type": ctype})
        assert r.status_code == 400 and r.json()["code"] == "invalid_input", r.text
    r = hospital.post("/api/mint", files={"files": ("a.json", _observation())})
    assert r.status_code == 400 and "patient" in r.json()["detail"]
    assert list(staging.iterdir()) == [] and list(private_tmp.iterdir()) == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(home: Path, port: int, env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "healthnft.cli", "--home", str(home), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(REPO), env=env,
    )  # fmt: skip
    deadline = time.time() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise AssertionError("healthnft serve did not start") from None
            time.sleep(0.2)


@pytest.mark.slow
def test_a_server_killed_mid_upload_leaves_nothing_in_tmp_and_its_leftovers_are_swept(
    demo_home, tmp_path: Path,
) -> None:
    src, _ = demo_home
    home = tmp_path / "home"
    shutil.copytree(src, home)
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(system_tmp)}
    port = _free_port()
    from healthnft.network import Network

    net = Network.open(home)
    try:
        hospital = next(p.address for p in net.catalog.participants() if p.kind == "hospital")
        patient = next(p.address for p in net.catalog.participants() if p.kind == "patient")
        key = bytes(net.identity(hospital).account.key)
    finally:
        net.close()
    proc = _serve(home, port, env)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", f"/api/auth/challenge?address={hospital}")
        msg = json.loads(conn.getresponse().read())["message"]
        conn.request("POST", "/api/auth/verify", body=json.dumps(
            {"message": msg, "signature": siwe.sign(msg, key)}),
            headers={"content-type": "application/json"})  # fmt: skip
        token = json.loads(conn.getresponse().read())["token"]
        # Half an upload, then the server is killed.
        boundary = "k1lled"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"patient\"\r\n\r\n"
                f"{patient}\r\n--{boundary}\r\nContent-Disposition: form-data; "
                f"name=\"files\"; filename=\"Jane_Doe.json\"\r\n\r\n").encode()  # fmt: skip
        conn.putrequest("POST", "/api/mint")
        conn.putheader("authorization", f"Bearer {token}")
        conn.putheader("content-type", f"multipart/form-data; boundary={boundary}")
        conn.putheader("content-length", str(len(head) + 4 * 2**20))
        conn.endheaders()
        conn.send(head + MARKER * (2**20 // len(MARKER)))
        staging = home / "uploads"
        deadline = time.time() + 20
        while not _files_with(staging, MARKER):
            assert time.time() < deadline, "the upload never reached the staging folder"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=20)
        conn.close()
        assert _files_with(system_tmp, MARKER) == []  # never in the system's temp folder
        assert _files_with(staging, MARKER)  # the killed upload's part, inside the home
        proc = _serve(home, _free_port(), env)
        assert _files_with(staging, MARKER) == []  # swept at start-up
    finally:
        proc.kill()
        proc.wait(timeout=20)
