"""The patient's list on the device: a 1,000-record wallet rendered by the page (issue 14).

Before the clock: a demo home (embedded chain) with a hospital and ONE patient holding
--records records, minted by the project's own pipeline (``Minter.mint``) from the
Synthea bundles in ../shared/data/synthea (the package's generated sample when absent):
every bundle's patient records go into the one wallet, lab results first, then other
record types, each record distinct (copies of lab results with a fresh ``id`` fill up
when the input holds fewer than --records). Then
``healthnft --home H serve --port N`` runs as its own process, and Debian's chromium
(Playwright) loads the page, keeps the patient's key in the page with the demo-only
"Use this demo patient" button (device mode: the list is ``GET /api/device/records``,
coarse metadata only) and signs in.

Timed, --loads times, in the page (``performance.now``):

- list_render: from the navigation to ``#/records`` (from another view, ``#/wallet``)
  until the --records-th row (``a[data-token]``) is in the DOM and the next frame has
  been painted (a MutationObserver, then two ``requestAnimationFrame``s): the route,
  ``GET /api/device/records``, grouping and building the DOM, layout and paint;
- the baseline, in the same page and run: ``fetch('/api/device/records')`` and its
  ``json()`` alone, so ``ratio`` (list median over fetch median) says what the page adds.

Also reported, once: the cold sign-in (click of "Use this demo patient" to the
--records-th row), which includes the keystore's scrypt (import, then save under a new
passphrase) and is not the list's cost.

Prints one JSON object. The server and chromium are stopped on exit (the server is
killed if it does not stop within 20 s).

    PYTHONPATH=src .venv/bin/python bench/browser_list.py [--records 1000] [--loads 20]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SYNTHEA = REPO.parent / "shared" / "data" / "synthea"
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
TARGET_MS = 1000.0
PASSPHRASE = "bench passphrase 1234"

#: In the page: navigate to #/records and wait until ``n`` rows are in the DOM and painted.
JS_LIST = """async (n) => {
  const rows = () => document.querySelectorAll('#main a[data-token]').length;
  const t0 = performance.now();
  const seen = new Promise((resolve) => {
    const check = () => { if (rows() >= n) { obs.disconnect(); resolve(); } };
    const obs = new MutationObserver(check);
    obs.observe(document.body, { childList: true, subtree: true });
    check();
  });
  location.hash = '#/records';
  await seen;
  const inDom = performance.now() - t0;
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  return { ms: performance.now() - t0, inDom, rows: rows() };
}"""

#: In the page: the listing's fetch alone (with its JSON parse).
JS_FETCH = """async () => {
  const t0 = performance.now();
  const r = await fetch('/api/device/records', { credentials: 'same-origin' });
  const rows = await r.json();
  return { ms: performance.now() - t0, rows: rows.length };
}"""


def records_for(n: int) -> list[Any]:
    """``n`` distinct records from the Synthea bundles (lab results first)."""
    from healthnft.ingest import ingest
    from healthnft.records.fhir import prepare, read_resources

    folder = SYNTHEA
    if not folder.is_dir():
        from healthnft.sample import write_sample

        folder = write_sample(Path(tempfile.mkdtemp(prefix="bench-sample-")))
    found = [r for g in ingest([folder]).patients for r in g.records]
    found.sort(key=lambda r: r.category != "laboratory")
    seen: set[bytes] = set()
    out = []
    for r in found:
        if r.canonical not in seen:
            seen.add(r.canonical)
            out.append(r)
    # Fewer than n in the input: copies of the lab results with a fresh id each.
    labs = [s for path in sorted(folder.glob("*.json")) for s in read_resources(path)
            if s.resource.get("resourceType") == "Observation"][:50]  # fmt: skip
    i = 0
    while len(out) < n and labs:
        src = labs[i % len(labs)]
        fresh = {**copy.deepcopy(src.resource), "id": str(uuid.uuid4())}
        out.append(prepare(dataclasses.replace(src, resource=fresh)))
        i += 1
    if len(out) < n:
        raise SystemExit(f"only {len(out)} records in the input")
    return out[:n]


def make_home(home: Path, n: int) -> dict[str, Any]:
    """A demo home: a hospital and one patient with ``n`` minted records."""
    from healthnft.network import DEMO_PASSPHRASE, Network

    recs = records_for(n)
    net = Network.create(home, DEMO_PASSPHRASE, demo=True)
    try:
        hospital = net.add_participant("hospital", "bench-hospital")
        patient = net.add_participant("patient", "bench-patient")
        t = time.perf_counter()
        res = net.minter().mint(net.identity(hospital.address), patient.address,
                                patient.enc_key, recs)  # fmt: skip
        listed = len(net.wallet().list(patient.address))
        labs = sum(r.category == "laboratory" for r in recs)
        return {"patient": patient.address, "minted": res.minted, "listed": listed,
                "laboratory": labs, "batches": res.batches,
                "mint_s": round(time.perf_counter() - t, 1)}
    finally:
        net.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(home: Path, log: Path) -> Iterator[str]:
    """``healthnft --home H serve --port N`` as its own process; stopped on exit."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep
           + os.environ.get("PYTHONPATH", "")}  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "healthnft.cli", "--home", str(home), "serve",
             "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env,
            cwd=str(REPO), start_new_session=True)  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}/"
            deadline = time.time() + 60
            while True:
                try:
                    urllib.request.urlopen(url, timeout=2).read()
                    break
                except OSError:
                    if time.time() > deadline or proc.poll() is not None:
                        raise SystemExit("healthnft serve did not start:\n"
                                         + log.read_text()[-2000:]) from None  # fmt: skip
                    time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def summary(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {"median": round(statistics.median(ms), 1),
            "p95": round(ms[round(0.95 * (len(ms) - 1))], 1), "n": len(ms)}


def in_chromium(url: str, n: int, loads: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(120_000)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            button = page.get_by_role("button", name="Use this demo patient")
            button.wait_for()
            page.get_by_label("New passphrase for this device").fill(PASSPHRASE)
            t = time.perf_counter()
            button.click()
            page.wait_for_function("(n) => document.querySelectorAll('#main a[data-token]')"
                                   ".length >= n", arg=n, polling="raf")  # fmt: skip
            cold = (time.perf_counter() - t) * 1000
            lists, in_dom, fetches = [], [], []
            for _ in range(loads):
                page.evaluate("() => { location.hash = '#/wallet'; }")
                page.get_by_role("button", name="Export keystore file").wait_for()
                out = page.evaluate(JS_LIST, n)
                if out["rows"] != n:
                    raise SystemExit(f"the page listed {out['rows']} rows, not {n}")
                lists.append(out["ms"])
                in_dom.append(out["inDom"])
                f = page.evaluate(JS_FETCH)
                if f["rows"] != n:
                    raise SystemExit(f"the listing has {f['rows']} rows, not {n}")
                fetches.append(f["ms"])
            # The device listing, not the hosted one: the page holds the key.
            heading = page.get_by_role("heading", name=f"Your records ({n})").count()
            device_mode = page.locator("#main").inner_text().find("on this device") >= 0
            version = browser.version
        finally:
            browser.close()
    if errors:
        raise SystemExit(f"page errors: {errors}")
    if not (heading == 1 and device_mode):
        raise SystemExit("the page did not show the device listing of the wallet")
    return {"browser": f"chromium {version}", "cold_ms": round(cold, 1),
            "list": summary(lists), "in_dom": summary(in_dom), "fetch": summary(fetches),
            "device_mode": device_mode}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1000)
    ap.add_argument("--loads", type=int, default=20, help="timed list loads (>= 5)")
    args = ap.parse_args()
    if args.loads < 5:
        sys.exit("--loads: 5 or more")
    if not CHROMIUM.exists():
        sys.exit("Debian's chromium is not installed (make test installs it)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-blist-"))
    try:
        home = tmp / "home"
        made = make_home(home, args.records)
        if made["listed"] != args.records:
            sys.exit(f"the wallet holds {made['listed']} records, not {args.records}")
        print(f"minted {made['minted']} records in {made['mint_s']} s; serving",
              file=sys.stderr)  # fmt: skip
        with serve(home, tmp / "serve.log") as url:
            got = in_chromium(url, args.records, args.loads)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lst, api = got["list"], got["fetch"]
    print(json.dumps({
        "records": args.records,
        "laboratory_records": made["laboratory"],
        "browser": got["browser"],
        "loads": args.loads,
        "list_render_ms_median": lst["median"],
        "list_render_ms_p95": lst["p95"],
        "list_in_dom_ms_median": got["in_dom"]["median"],
        "api_ms_median": api["median"],
        "api_ms_p95": api["p95"],
        "ratio": round(lst["median"] / api["median"], 2),
        "cold_sign_in_to_list_ms": got["cold_ms"],
        "device_mode": got["device_mode"],
        "target_ms": TARGET_MS,
        "meets_target": lst["p95"] < TARGET_MS,
    }, indent=2))


if __name__ == "__main__":
    main()
