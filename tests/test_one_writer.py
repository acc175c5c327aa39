"""One writer per home, named when it refuses a second (issue 12.5).

Before: while ``serve`` ran, a CLI ``share`` on the same home succeeded behind the
service's back (which then showed stale data, answered 500 to a grant it had
committed and duplicated it on retry), and two CLI mints at once ended in
"internal error (IntegrityError)".
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import REPO, run_cli
from healthnft.api import create_app


def _research(home: Path) -> str:
    people = json.loads(run_cli(home, "participant", "list", "--json", check=True).stdout)
    return next(p["address"] for p in people if p["kind"] == "research")


def test_a_cli_writer_is_refused_while_serve_holds_the_home(fresh_demo_home) -> None:
    home, summary = fresh_demo_home
    alice = summary["patients"][0]["address"]
    research = _research(home)
    share = ("share", "--category", "laboratory", "--owner", alice, "--to", research,
             "--purpose", "research", "--json")  # fmt: skip
    app = create_app(home, origin="http://testserver")
    try:
        refused = run_cli(home, *share)
        assert refused.returncode == 11 and refused.stdout == "", refused.stderr
        (line,) = refused.stderr.strip().splitlines()
        assert line.startswith("error: this home is being changed by `healthnft serve` (process ")
        assert "try again when it is done" in line
        # Readers are not blocked, and nothing was granted behind the service's back.
        grants = run_cli(home, "grants", "--owner", alice, "--json")
        assert grants.returncode == 0 and json.loads(grants.stdout) == []
    finally:
        app.state.service.close()
    granted = run_cli(home, *share)  # the service stopped: the same command now works
    assert granted.returncode == 0, granted.stderr
    assert json.loads(granted.stdout)["grantee"] == research


def test_two_mints_at_once_mint_once_and_fail_clearly(fresh_demo_home, tmp_path: Path) -> None:
    home, summary = fresh_demo_home
    alice = summary["patients"][1]["address"]
    record = tmp_path / "glucose.json"
    record.write_text(json.dumps({
        "resourceType": "Observation", "id": "two-writers-1", "status": "final",
        "code": {"text": "Glucose"}, "subject": {"reference": "urn:uuid:p"},
        "effectiveDateTime": "2024-05-01T08:00:00Z",
        "valueQuantity": {"value": 5.4, "unit": "mmol/L"},
    }))  # fmt: skip
    before = len(json.loads(run_cli(home, "wallet", "list", "--owner", alice, "--json",
                                    check=True).stdout))  # fmt: skip
    results: list = [None, None]

    def mint(i: int) -> None:
        results[i] = run_cli(home, "mint", str(record), "--patient", alice,
                             "--issuer", "demo-hospital", "--json")  # fmt: skip

    threads = [threading.Thread(target=mint, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    for proc in results:
        assert "internal error" not in proc.stderr, proc.stderr
        assert proc.returncode in (0, 11), proc.stderr  # done, or "being changed by …"
    assert any(proc.returncode == 0 for proc in results)
    after = json.loads(run_cli(home, "wallet", "list", "--owner", alice, "--json",
                               check=True).stdout)  # fmt: skip
    assert len(after) == before + 1  # minted once


def test_a_killed_writer_leaves_no_stale_lock(tmp_path: Path) -> None:
    home = tmp_path / "home"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from healthnft.store.writer import "
         "WriterLock; WriterLock(sys.argv[1], 'healthnft mint').acquire(); print('held', "
         "flush=True); time.sleep(600)", str(home)],
        stdout=subprocess.PIPE, text=True, cwd=str(REPO),
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        from healthnft.errors import Unavailable
        from healthnft.store.writer import WriterLock

        started = time.monotonic()
        try:
            WriterLock(home, "healthnft share", wait_s=0.3).acquire()
            raise AssertionError("a second writer got the lock")
        except Unavailable as exc:
            assert "`healthnft mint` (process " in str(exc)
        assert time.monotonic() - started < 5
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=20)
        with WriterLock(home, "healthnft share", wait_s=0.3) as lock:
            assert lock.held
    finally:
        holder.kill()
        holder.wait(timeout=20)
