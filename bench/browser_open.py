"""Opening a lab record on the patient's device: the page's JS against Python's own open.

Seals one Synthea lab result (the package's sample when ../shared is absent) the way the
minting pipeline does, in a batch of --batch records (so its Merkle proof has the depth
of a real batch), wrapped for a patient. Then, in the same run:

- in Debian's chromium, ``wallet/crypto.js``'s ``openRecord`` (HPKE unwrap, two
  AES-256-GCM opens on WebCrypto, commitment recomputed, Merkle proof checked) --opens
  times, after one cold open that is reported apart (first call: JIT, key imports);
- the same in Node when ``node`` is on the PATH (its WebCrypto, same module);
- the baseline: Python's own open of the same bytes (ciphertext digest, ``BatchKey.unwrap``,
  ``open_sealed``, ``merkle.verify``): the path of ``Wallet.decrypt_row`` and
  ``chain_problem``.

Prints one JSON object: ms per open (median, p95) for each, the ratio of the browser's
median to Python's, and the target from issue 14 (< 300 ms for a lab record).

    .venv/bin/python bench/browser_open.py [--opens 200] [--batch 1000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
STATIC = REPO / "src" / "healthnft" / "api" / "static"
SYNTHEA = REPO.parent / "shared" / "data" / "synthea"
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
TARGET_MS = 300.0

#: Runs in the page and in Node: one cold open, then ``n`` timed opens.
JS_TIMED = """
async function timed(c, v, n) {
  let t = performance.now();
  const first = await c.openRecord(v.record);
  const cold = performance.now() - t;
  if (c.toHex(first.canonical) !== v.canonical) throw new Error("wrong bytes");
  const ms = [];
  for (let i = 0; i < n; i++) {
    t = performance.now();
    await c.openRecord(v.record);
    ms.push(performance.now() - t);
  }
  return { cold, ms };
}
"""

NODE_MAIN = """
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
const [static_, path, n] = process.argv.slice(2);
const c = await import(pathToFileURL(static_ + "/wallet/crypto.js"));
process.stdout.write(JSON.stringify(await timed(c, JSON.parse(readFileSync(path, "utf8")),
                                                Number(n))));
"""


def lab_record() -> Any:
    """One lab result prepared by the project's own reader (validate, clean, canonicalize)."""
    from healthnft.records.fhir import prepare, read_resources

    folder = SYNTHEA
    if not folder.is_dir():
        from healthnft.sample import write_sample

        folder = write_sample(Path(tempfile.mkdtemp(prefix="bench-sample-")))
    for path in sorted(folder.glob("*.json")):
        for src in read_resources(path):
            if src.resource.get("resourceType") == "Observation":
                rec = prepare(src)
                if rec.category == "laboratory":
                    return rec
    raise SystemExit("no lab result in the input")


def seal_one(batch: int) -> tuple[dict[str, Any], Any]:
    """The vectors the page gets, and a Python open of the same bytes."""
    from healthnft.keys import identity_from_secret, new_secret
    from healthnft.ledger import merkle
    from healthnft.records.commitment import commit, new_salt
    from healthnft.vault import BatchKey, RecordPlaintext, open_sealed, seal

    patient = identity_from_secret(new_secret())
    rec = lab_record()
    salt = new_salt()
    c = commit(rec.canonical, salt)
    token, at = 5000 + batch // 2, batch // 2
    leaves = [merkle.leaf_hash(5000 + i, c if i == at else os.urandom(32)) for i in range(batch)]
    root, proofs = merkle.build(leaves)
    batch_ref, batch_key = os.urandom(16), BatchKey.new()
    meta = {"resource_type": rec.resource_type, "category": rec.category,
            "effective_date": rec.effective_date, "issuer": patient.address,
            "format": "application/fhir+json; fhirVersion=4.0"}
    sealed = seal(RecordPlaintext(salt, meta, rec.canonical), c, batch_key)
    wrapped = batch_key.wrap_for(patient.enc_public, batch_ref)
    proof = proofs[at]

    digest = hashlib.sha256(sealed.ciphertext).digest()

    def python_open() -> bytes:
        assert hashlib.sha256(sealed.ciphertext).digest() == digest
        key = BatchKey.unwrap(patient.enc_private, wrapped, batch_ref)
        assert merkle.verify(merkle.leaf_hash(token, c), proof, root)
        return open_sealed(sealed.ciphertext, sealed.sealed_dek, c, key).canonical

    vectors = {
        "record": {
            "tokenId": str(token), "ciphertext": sealed.ciphertext.hex(),
            "sealedDek": sealed.sealed_dek.hex(), "wrappedKek": wrapped.hex(),
            "keyId": batch_ref.hex(), "commitment": c.hex(),
            "proof": merkle.pack_proof(proof).hex(), "root": root.hex(),
            "encPrivateKey": patient.enc_private.private_bytes_raw().hex(),
            "blobDigest": hashlib.sha256(sealed.ciphertext).hexdigest(),
        },
        "canonical": rec.canonical.hex(),
        "bytes": len(sealed.ciphertext), "proofDepth": len(proof),
    }
    return vectors, python_open


def summary(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {"median_ms": round(statistics.median(ms), 3),
            "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 3), "n": len(ms)}


class _Static(SimpleHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path == "/":
            body = b"<!doctype html><title>bench</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.path = self.path.removeprefix("/static")
        super().do_GET()

    def log_message(self, *args: Any) -> None:
        pass


def in_chromium(vectors: dict[str, Any], n: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Static, directory=str(STATIC)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
            out = page.evaluate(
                "async ([v, n]) => { const c = await import('/static/wallet/crypto.js');"
                + JS_TIMED + " return await timed(c, v, n); }", [vectors, n])
            version = browser.version
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    return {"browser": f"chromium {version}", "cold_ms": round(out["cold"], 3),
            **summary(out["ms"])}


def in_node(vectors: dict[str, Any], n: int) -> dict[str, Any] | None:
    if shutil.which("node") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "v.json").write_text(json.dumps(vectors))
        (Path(tmp) / "run.mjs").write_text(JS_TIMED + NODE_MAIN)
        proc = subprocess.run(["node", str(Path(tmp) / "run.mjs"), str(STATIC),
                               str(Path(tmp) / "v.json"), str(n)],
                              capture_output=True, text=True, check=True)  # fmt: skip
        version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout
    out = json.loads(proc.stdout)
    return {"runtime": f"node {version.strip()}", "cold_ms": round(out["cold"], 3),
            **summary(out["ms"])}


def in_python(python_open: Any, canonical: str, n: int) -> dict[str, Any]:
    assert python_open().hex() == canonical
    ms = []
    for _ in range(n):
        t = time.perf_counter()
        python_open()
        ms.append((time.perf_counter() - t) * 1000)
    return summary(ms)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--opens", type=int, default=200)
    ap.add_argument("--batch", type=int, default=1000, help="records in the lab's batch")
    args = ap.parse_args()
    if not CHROMIUM.exists():
        sys.exit("Debian's chromium is not installed (make test installs it)")
    vectors, python_open = seal_one(args.batch)
    browser = in_chromium(vectors, args.opens)
    node = in_node(vectors, args.opens)
    baseline = in_python(python_open, vectors["canonical"], args.opens)
    print(json.dumps({
        "record": {"kind": "FHIR Observation (laboratory)", "ciphertext_bytes": vectors["bytes"],
                   "batch": args.batch, "proof_depth": vectors["proofDepth"]},
        "browser_open": browser,
        "node_open": node,
        "baseline_python_open": baseline,
        "ratio_browser_to_python": round(browser["median_ms"] / baseline["median_ms"], 2),
        "target_ms": TARGET_MS,
        "meets_target": browser["cold_ms"] < TARGET_MS and browser["p95_ms"] < TARGET_MS,
    }, indent=2))


if __name__ == "__main__":
    main()
