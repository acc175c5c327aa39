"""The browser wallet's crypto agrees with the vault's, byte for byte.

Python seals real records with the project's own functions (Synthea labs, canonicalized
by ``records.fhir.prepare``, sealed by ``vault.envelope.seal`` under a batch key wrapped
for the patient, in one Merkle batch), then the page's modules
(``api/static/wallet/crypto.js`` and ``keystore.js``) run on those vectors: under Node
(its WebCrypto) and in Debian's chromium (its WebCrypto and IndexedDB). The JS must give
back exactly the canonical bytes and header, and say "tampered" for every altered part.

Keys both ways: a keystore v3 made in JS opens with eth_account (the CLI's reader) and
derives the same encryption key as the CLI; a CLI keystore opens in JS; a BIP-39 phrase
gives the address eth_account gives.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from eth_account import Account

from conftest import LAB_OBSERVATION, SYNTHEA
from healthnft.keys import identity_from_secret, new_secret, read_keystore, write_keystore
from healthnft.ledger import merkle
from healthnft.records.commitment import commit, new_salt
from healthnft.records.fhir import SourceResource, prepare, read_resources
from healthnft.vault import BatchKey, RecordPlaintext, open_sealed, seal
from healthnft.vault import _primitives as primitives  # only to forge a mis-salted record

STATIC = Path(__file__).resolve().parents[2] / "src" / "healthnft" / "api" / "static"
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSPHRASE = "correct horse battery staple"
#: The BIP-39 test phrase every wallet documents; its first address is well known.
PHRASE = "test test test test test test test test test test test junk"
FIRST_TOKEN = 1001


def _labs(n: int) -> list[Any]:
    """``n`` lab records: Synthea's when the shared data is here, else made up; the last
    one carries non-ASCII text so UTF-8 bytes are compared too."""
    records = []
    if SYNTHEA.is_dir():
        for path in sorted(SYNTHEA.glob("*.json")):
            for src in read_resources(path):
                if src.resource.get("resourceType") == "Observation":
                    rec = prepare(src)
                    if rec.category == "laboratory":
                        records.append(rec)
                if len(records) == n - 1:
                    break
            if len(records) == n - 1:
                break
    while len(records) < n - 1:
        records.append(prepare(SourceResource(
            {**LAB_OBSERVATION, "id": f"lab-{len(records)}"}, "test")))
    unicode_lab = {**LAB_OBSERVATION, "id": "lab-unicode",
                   "note": [{"text": "prélèvement à jeun — 5,4 µmol/L ✓"}]}
    records.append(prepare(SourceResource(unicode_lab, "test")))
    return records


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def build_vectors() -> dict[str, Any]:
    """One minting batch of five labs for one patient, sealed as the pipeline seals it."""
    patient = identity_from_secret(new_secret())
    stranger = identity_from_secret(new_secret())
    labs = _labs(5)
    batch_ref, batch_key = os.urandom(16), BatchKey.new()
    salts = [new_salt() for _ in labs]
    commitments = [commit(rec.canonical, salt) for rec, salt in zip(labs, salts, strict=True)]
    tokens = [FIRST_TOKEN + i for i in range(len(labs))]
    root, proofs = merkle.build([merkle.leaf_hash(t, c) for t, c in zip(tokens, commitments,
                                                                          strict=True)])
    wrapped = batch_key.wrap_for(patient.enc_public, batch_ref)
    records = []
    for token, rec, salt, c, proof in zip(tokens, labs, salts, commitments, proofs, strict=True):
        meta = {"resource_type": rec.resource_type, "category": rec.category,
                "effective_date": rec.effective_date, "issuer": stranger.address,
                "format": "application/fhir+json; fhirVersion=4.0"}
        sealed = seal(RecordPlaintext(salt, meta, rec.canonical), c, batch_key)
        # Python's own open of the same bytes: what the JS must give back
        opened = open_sealed(sealed.ciphertext, sealed.sealed_dek, c,
                             BatchKey.unwrap(patient.enc_private, wrapped, batch_ref))
        assert merkle.verify(merkle.leaf_hash(token, c), proof, root)
        records.append({
            "tokenId": str(token), "ciphertext": sealed.ciphertext.hex(),
            "sealedDek": sealed.sealed_dek.hex(), "wrappedKek": wrapped.hex(),
            "keyId": batch_ref.hex(), "commitment": c.hex(),
            "proof": merkle.pack_proof(proof).hex(), "root": root.hex(),
            "encPrivateKey": patient.enc_private.private_bytes_raw().hex(),
            "blobDigest": hashlib.sha256(sealed.ciphertext).hexdigest(),
            "expect": {"header": {"v": 1, "salt": opened.salt.hex(), "meta": opened.meta},
                       "canonical": opened.canonical.hex()},
        })
    good = records[2]
    ciphertext = bytes.fromhex(good["ciphertext"])
    bad = {
        "tampered ciphertext": {"ciphertext": _flip(ciphertext, 40).hex(),
                                "blobDigest": None},
        "tampered tag": {"ciphertext": _flip(ciphertext, len(ciphertext) - 1).hex(),
                         "blobDigest": None},
        "ciphertext not its digest": {"ciphertext": _flip(bytes.fromhex(good["ciphertext"]),
                                                          40).hex()},
        "tampered proof": {"proof": _flip(bytes.fromhex(good["proof"]), 5).hex()},
        "truncated proof": {"proof": good["proof"][:-64]},
        "proof of a partial node": {"proof": good["proof"] + "00"},
        "proof not hex": {"proof": "zz" + good["proof"][2:]},
        "short commitment": {"commitment": good["commitment"][:-2]},
        "wrong root": {"root": _flip(root, 0).hex()},
        "wrong token id": {"tokenId": str(FIRST_TOKEN + 3)},
        "wrong key": {"encPrivateKey": stranger.enc_private.private_bytes_raw().hex()},
        "wrong key id": {"keyId": os.urandom(16).hex()},
        "tampered wrapped key": {"wrappedKek": _flip(wrapped, 3).hex()},
        "another record's DEK": {"sealedDek": records[1]["sealedDek"]},
    }
    # Authentic AES-GCM under the right DEK and commitment, but the salt inside does not
    # open the commitment: only the recomputed commitment can catch it.
    dek = os.urandom(32)
    c = bytes.fromhex(good["commitment"])
    forged = RecordPlaintext(new_salt(), {"resource_type": "Observation"}, labs[2].canonical)
    bad["commitment does not open"] = {
        "ciphertext": primitives.aead_seal(dek, forged.pack(), c).hex(),
        "sealedDek": batch_key.seal(dek, b"healthnft/record-key/v1|" + c).hex(),
        "blobDigest": None,
    }
    cases = {name: {k: v for k, v in {**good, **change}.items() if v is not None and k != "expect"}
             for name, change in bad.items()}
    return {"records": records, "bad": cases,
            "patientSecret": bytes(patient.account.key).hex(),
            "patientEncPublic": patient.enc_public.hex(),
            "patientDidPublic": patient.did_public.hex()}


#: Runs in Node and in the page alike: ``c`` is crypto.js, ``v`` the vectors.
JS_CASES = """
async function runCases(c, v) {
  const out = { opened: [], bad: {}, checks: {} };
  for (const r of v.records) {
    const { expect, ...input } = r;
    const got = await c.openRecord(input);
    out.opened.push({ header: got.header, canonical: c.toHex(got.canonical) });
  }
  for (const [name, input] of Object.entries(v.bad)) {
    try {
      await c.openRecord(input);
      out.bad[name] = "opened";
    } catch (e) {
      out.bad[name] = { name: e.name, message: e.message, reason: e.reason };
    }
  }
  const r = v.records[0];
  out.checks.proof = c.verifyProof(BigInt(r.tokenId), r.commitment, r.proof, r.root);
  out.checks.commitment = c.toHex(await c.recomputeCommitment(
    c.bytes(r.expect.canonical), c.bytes(r.expect.header.salt)));
  out.checks.encPublic = c.toHex((await c.encryptionKey(v.patientSecret)).publicKey);
  out.checks.didPublic = c.toHex(await c.didPublicKey(v.patientSecret));
  return out;
}
"""

#: Node: crypto vectors, then the keystore both ways.
NODE_MAIN = """
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
const [static_, vectorsPath] = process.argv.slice(2);
globalThis.ethers = createRequire(import.meta.url)(static_ + "/vendor/ethers-6.17.0.umd.min.js");
const c = await import(pathToFileURL(static_ + "/wallet/crypto.js"));
const k = await import(pathToFileURL(static_ + "/wallet/keystore.js"));
const v = JSON.parse(readFileSync(vectorsPath, "utf8"));
const out = await runCases(c, v);
const err = async (f) => { try { await f(); return "no error"; }
                           catch (e) { return { name: e.name, message: e.message }; } };
const w = k.createWallet();
const keystore = await k.exportKeystore(w, v.passphrase);
const me = await k.identity(w);
out.keystore = { address: w.address, phrase: k.phraseOf(w), keystore,
                 encPublicKey: me.encPublicKey };
out.keystore.wrongPassphrase = await err(() => k.importKeystore(v.cliKeystore, "wrong"));
const cli = await k.importKeystore(v.cliKeystore, v.passphrase);
out.keystore.cli = { address: cli.address, phrase: k.phraseOf(cli),
                     encPublicKey: (await k.identity(cli)).encPublicKey };
out.keystore.fromPhrase = k.importPhrase("  " + v.phrase.toUpperCase() + " ").address;
out.keystore.badPhrase = await err(() => k.importPhrase("test test test"));
out.keystore.corrupt = await err(() => k.importKeystore('{"version": 3}', v.passphrase));
out.keystore.empty = await err(() => k.exportKeystore(w, ""));
process.stdout.write(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def vectors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    v = build_vectors()
    folder = tmp_path_factory.mktemp("cli-keystore")
    cli = write_keystore(folder, bytes.fromhex(v["patientSecret"]), PASSPHRASE, light=True)
    v.update(passphrase=PASSPHRASE, phrase=PHRASE, cliAddress=cli.address,
             cliKeystore=(folder / f"{cli.address}.json").read_text())
    return v


def _assert_agrees(v: dict[str, Any], out: dict[str, Any]) -> None:
    for rec, got in zip(v["records"], out["opened"], strict=True):
        assert got["canonical"] == rec["expect"]["canonical"]
        assert got["header"] == rec["expect"]["header"]
    assert len(out["opened"]) == 5
    assert set(out["bad"]) == set(v["bad"])
    for name, got in out["bad"].items():
        assert got != "opened", f"{name}: the JS opened it"
        assert (got["name"], got["message"]) == ("TamperedError", "tampered"), name
    r = v["records"][0]
    assert out["checks"]["proof"] is True
    assert out["checks"]["commitment"] == r["commitment"]
    assert out["checks"]["encPublic"] == v["patientEncPublic"]
    assert out["checks"]["didPublic"] == v["patientDidPublic"]  # the did:key the CLI derives


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_node_opens_what_python_sealed_and_keys_go_both_ways(vectors, tmp_path) -> None:
    (tmp_path / "vectors.json").write_text(json.dumps(vectors))
    (tmp_path / "run.mjs").write_text(JS_CASES + NODE_MAIN)
    proc = subprocess.run(["node", str(tmp_path / "run.mjs"), str(STATIC),
                           str(tmp_path / "vectors.json")],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    _assert_agrees(vectors, out)

    ks = out["keystore"]
    # A keystore made in the page, saved as a file, opens with the CLI's own reader
    # (keys.read_keystore, eth_account inside): same address, same encryption key.
    (tmp_path / "keystore").mkdir()
    (tmp_path / "keystore" / f"{ks['address']}.json").write_text(ks["keystore"])
    ident = read_keystore(tmp_path / "keystore", ks["address"], PASSPHRASE)
    assert ident.address == ks["address"]
    assert ident.enc_public.hex() == ks["encPublicKey"]
    # ... and its recovery phrase gives that account in eth_account too.
    Account.enable_unaudited_hdwallet_features()
    assert Account.from_mnemonic(ks["phrase"]).address == ks["address"]
    assert len(ks["phrase"].split()) == 12
    # A CLI keystore opens in the page, to the CLI's identity (no phrase: a random key).
    assert ks["cli"] == {"address": vectors["cliAddress"], "phrase": None,
                         "encPublicKey": vectors["patientEncPublic"]}
    assert Account.from_mnemonic(PHRASE).address == ks["fromPhrase"]
    assert ks["wrongPassphrase"] == {
        "name": "WrongPassphraseError",
        "message": f"wrong passphrase for the wallet {vectors['cliAddress']}"}
    assert ks["badPhrase"]["name"] == "InvalidPhraseError"
    assert ks["corrupt"]["name"] == "CorruptWalletError"
    assert ks["empty"]["message"] == "an empty passphrase is not allowed"


# -- in the browser: Debian's chromium, the page's own WebCrypto and IndexedDB -----------


class _Static(SimpleHTTPRequestHandler):
    """``/static/...`` as the app serves it, and a blank page at ``/`` loading ethers."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path == "/":
            body = b'<!doctype html><script src="/static/vendor/ethers-6.17.0.umd.min.js"></script>'
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if not self.path.startswith("/static/"):
            self.send_error(404)
            return
        self.path = self.path.removeprefix("/static")
        super().do_GET()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def static_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Static, directory=str(STATIC)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def page(static_url: str) -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        pg = browser.new_page()
        pg.goto(static_url)
        yield pg
        browser.close()


def test_chromium_opens_what_python_sealed(vectors, page) -> None:
    out = page.evaluate(
        "async (v) => { const c = await import('/static/wallet/crypto.js');"
        + JS_CASES + " return await runCases(c, v); }", vectors)
    _assert_agrees(vectors, out)


def test_chromium_keeps_the_wallet_encrypted_in_indexeddb(page, static_url) -> None:
    made = page.evaluate("""async (pass) => {
        const k = await import('/static/wallet/keystore.js');
        const w = k.createWallet();
        const saved = await k.saveWallet(w, pass);
        return { ...saved, secret: w.privateKey.slice(2), phrase: k.phraseOf(w) };
    }""", PASSPHRASE)
    page.reload()  # a new page load: only what IndexedDB kept
    got = page.evaluate("""async ([address, pass]) => {
        const k = await import('/static/wallet/keystore.js');
        const err = async (f) => { try { await f(); return 'no error'; }
                                   catch (e) { return e.name + ': ' + e.message; } };
        const out = { list: await k.listWallets() };
        out.wrong = await err(() => k.unlockWallet(address, 'not it'));
        const w = await k.unlockWallet(address, pass);
        out.unlocked = { address: w.address, phrase: k.phraseOf(w),
                         encPublicKey: (await k.identity(w)).encPublicKey };
        out.missing = await err(() => k.unlockWallet('0x' + '11'.repeat(20), pass));
        out.localStorage = JSON.stringify(Object.entries(localStorage));
        const req = indexedDB.open('healthnft-wallet');
        const db = await new Promise((ok) => { req.onsuccess = () => ok(req.result); });
        const all = db.transaction('wallets').objectStore('wallets').getAll();
        const rows = await new Promise((ok) => { all.onsuccess = () => ok(all.result); });
        out.stored = JSON.stringify(rows);
        const tx = db.transaction('wallets', 'readwrite');
        tx.objectStore('wallets').put({ address, encPublicKey: '', keystore: '{"garbage": 1}' });
        await new Promise((ok) => { tx.oncomplete = ok; });
        db.close();
        out.corrupt = await err(() => k.unlockWallet(address, pass));
        await k.removeWallet(address);
        out.after = await k.listWallets();
        return out;
    }""", [made["address"], PASSPHRASE])
    assert [w["address"] for w in got["list"]] == [made["address"]]
    assert got["list"][0]["encPublicKey"] == made["encPublicKey"]
    address = made["address"]
    assert got["wrong"] == f"WrongPassphraseError: wrong passphrase for the wallet {address}"
    assert got["unlocked"] == {"address": made["address"], "phrase": made["phrase"],
                               "encPublicKey": made["encPublicKey"]}
    assert got["missing"].startswith("MissingWalletError: no wallet for 0x1111")
    assert got["corrupt"].startswith("CorruptWalletError: the wallet kept here is damaged")
    assert got["after"] == []
    # Nothing secret in clear: not in localStorage, not in what IndexedDB holds.
    assert got["localStorage"] == "[]"
    for secret in (made["secret"], made["phrase"], PASSPHRASE):
        assert secret.lower() not in got["stored"].lower()
    cli_view = identity_from_secret(bytes.fromhex(made["secret"]))
    assert (cli_view.address, cli_view.enc_public.hex()) == (address, made["encPublicKey"])
    assert orjson.loads(got["stored"])[0]["address"] == made["address"]


def test_the_vendored_bundle_is_the_pinned_libraries_with_their_licences() -> None:
    """The bundle's banner names exactly the versions tools/vendor-js pins, and each has
    its licence beside it (``tools/vendor_js.sh --check`` rebuilds and compares bytes)."""
    tools = STATIC.parents[3] / "tools" / "vendor-js"
    lock = json.loads((tools / "package-lock.json").read_text())["packages"]
    pinned = {k.removeprefix("node_modules/"): v["version"] for k, v in lock.items()
              if k.startswith("node_modules/@") and "esbuild" not in k}
    banner = (STATIC / "vendor" / "wallet-crypto-libs.js").read_text().splitlines()[1]
    assert banner == "// " + ", ".join(f"{name}@{v}" for name, v in sorted(pinned.items()))
    wanted = json.loads((tools / "package.json").read_text())["devDependencies"]
    assert all(lock[f"node_modules/{n}"]["version"] == v for n, v in wanted.items())
    for name in pinned:
        text = (STATIC / "vendor" / (name[1:].replace("/", "-") + "-LICENSE")).read_text()
        assert "MIT License" in text
