"""The patient's page opens its own record on the device (issue 14, points 2 and 6).

`healthnft serve` over a copy of the demo home, Debian's chromium driven by Playwright:
the page loads a demo patient's keystore into its IndexedDB with the demo-only button
(under a passphrase chosen here), signs in with that key, lists the records (coarse
metadata only) and opens a lab record, decrypted and checked in the page by
``wallet/crypto.js``. Every request and response the page sends and receives is
recorded: none holds the record's plaintext, the passphrase, or the patient's private
keys. A ciphertext or proof altered on its way (a Playwright route), or a ciphertext
altered at rest in the node's blob store, shows "tampered" and nothing of the record.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from test_browser import ARGS, CHROMIUM, _free_port, _unlabelled_controls

from conftest import REPO

pytestmark = pytest.mark.slow

#: The server's output (stdout and stderr of `healthnft serve`).
SERVE_LOG: list[Path] = []
#: Chosen in the page for the key it keeps; must never leave the page.
PASSPHRASE = "device-only passphrase 7f3a"


@pytest.fixture(scope="module")
def device_server(demo_home, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """``healthnft serve`` over a copy of the demo home, on a free loopback port."""
    src, _ = demo_home
    home = tmp_path_factory.mktemp("device") / "home"
    shutil.copytree(src, home)
    port = _free_port()
    log_path = tmp_path_factory.mktemp("device-log") / "serve.log"
    SERVE_LOG[:] = [log_path]
    log = log_path.open("w")
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
        yield url, home
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def _patient_secrets(home: Path, address: str) -> list[str]:
    """The demo patient's account key and X25519 key, as hex (what must never travel),
    from the public demo seed: the node's home keeps no patient key."""
    from healthnft.network import demo_patient_identity
    from healthnft.vault.catalog import Catalog

    catalog = Catalog(home / "index.sqlite")
    try:
        label = catalog.participant(address).label
    finally:
        catalog.close()
    ident = demo_patient_identity(label)
    assert ident.address == address and not (home / "keystore" / f"{address}.json").exists()
    return [bytes(ident.account.key).hex(), ident.enc_private.private_bytes_raw().hex()]


class Traffic:
    """Every request (URL, body) and response (body) of a page, as text."""

    def __init__(self, page) -> None:
        self.urls: list[str] = []
        self.bodies: list[tuple[str, str]] = []
        page.on("request", self._request)
        page.on("response", self._response)

    def _request(self, req) -> None:
        self.urls.append(f"{req.method} {req.url}")
        body = req.post_data_buffer
        self.bodies.append((f"request {req.method} {req.url}",
                            req.url + "\n" + (body or b"").decode("utf-8", "replace")))

    def _response(self, res) -> None:
        try:
            body = res.body()
        except Exception:  # a redirect or an aborted request has none
            body = b""
        self.bodies.append((f"response {res.url}", body.decode("utf-8", "replace")))

    def holding(self, needle: str) -> list[str]:
        low = needle.lower()
        return [where for where, text in self.bodies if low in text.lower()]


def _use_demo_patient(page, url: str) -> str:
    page.goto(url)
    page.get_by_role("button", name="Use this demo patient").wait_for()
    assert _unlabelled_controls(page) == []
    label = page.get_by_label("Demo patient").locator("option").first.inner_text()
    address = re.search(r"\((0x[0-9a-fA-F]{4})…([0-9a-fA-F]{4})\)", label)
    page.get_by_label("New passphrase for this device").fill(PASSPHRASE)
    page.get_by_role("button", name="Use this demo patient").click()
    page.get_by_role("heading", name=re.compile(r"Your records \(\d+\)")).wait_for(timeout=30000)
    assert address is not None
    return page.evaluate("async () => (await (await fetch('/api/me')).json()).address")


def test_a_demo_patient_opens_a_lab_record_on_the_device(device_server, chromium) -> None:
    started = time.monotonic()
    url, home = device_server
    page = chromium.new_page()
    page.set_default_timeout(30000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    traffic = Traffic(page)

    address = _use_demo_patient(page, url)
    # The page keeps the key: one wallet in its IndexedDB, encrypted (a keystore v3).
    kept = page.evaluate("""async () => {
        const ks = await import('/static/wallet/keystore.js');
        const rows = await ks.listWallets();
        return {rows, keystore: JSON.parse(await ks.storedKeystore(rows[0].address))};
    }""")
    assert [r["address"] for r in kept["rows"]] == [address]
    assert {k.lower() for k in kept["keystore"]} >= {"crypto", "address", "version"}
    assert Account.decrypt(kept["keystore"], PASSPHRASE)  # under the passphrase chosen here

    lab = page.locator("a[data-token]").filter(has_text="Blood test").first
    token = lab.get_attribute("data-token")
    lab.click()
    page.locator("#badge").filter(has_text="authentic").wait_for()
    table = page.get_by_role("table", name="Measured values")
    assert table.count() == 1
    canonical = page.locator("details pre").text_content()
    resource = json.loads(canonical)
    assert resource["resourceType"] == "Observation"
    assert resource["id"] in canonical and resource["id"]
    shown_value = table.locator("td[data-label='Value']").first.inner_text()
    assert shown_value and shown_value != "—"

    # Made by the service from the content: not offered for a record opened here.
    assert page.get_by_role("button", name="Show SMART Health Card").count() == 0
    # The share form names the record from coarse metadata, not from a server-side open.
    page.get_by_role("link", name="Share").click()
    page.get_by_role("heading", name="Share a record").wait_for()
    sentence = page.locator("#consent-sentence").inner_text()
    assert f"Blood test — Observation, token {token}" in sentence
    assert _unlabelled_controls(page) == []

    # The page's own wallet view shows what a hospital registers the patient from.
    page.get_by_role("link", name="Wallet").click()
    page.get_by_role("button", name="Export keystore file").wait_for()
    enc_public = page.locator("dl.public-key dd").nth(1).inner_text()
    assert re.fullmatch(r"[0-9a-f]{64}", enc_public)

    # What travelled: sealed data only. None of the plaintext, passphrase or keys.
    needles = {
        "passphrase": PASSPHRASE,
        "record id": f'"id":"{resource["id"]}"',
        "shown value": shown_value,
        "canonical record": canonical[:80],
    }
    code = resource.get("code", {})
    for coding in code.get("coding", []):
        needles[f"code {coding.get('code')}"] = f'"{coding["code"]}"'
        if coding.get("display"):
            needles["code display"] = coding["display"]
    if code.get("text"):
        needles["code text"] = code["text"]
    account_key, enc_key = _patient_secrets(home, address)
    needles["account key"] = account_key
    needles["encryption key"] = enc_key
    assert traffic.holding(address[2:]) and traffic.holding(token)  # the recorder records
    leaks = {name: traffic.holding(n) for name, n in needles.items() if traffic.holding(n)}
    assert leaks == {}
    # Nor did the server write any of it in its output.
    served_log = SERVE_LOG[0].read_text().lower()
    assert "healthnft web wallet" in served_log  # the log is the server's, and was written
    assert [name for name, n in needles.items() if n.lower() in served_log] == []
    # The page never asked the server to open a record for it.
    opened_on_server = [u for u in traffic.urls
                        if re.search(r"/api/records(/\d+)?(\?|$)", u)]  # fmt: skip
    assert opened_on_server == []
    assert any(u.endswith(f"/api/records/{token}/sealed") for u in traffic.urls)
    assert any(u.startswith("POST ") and u.endswith("/rpc") for u in traffic.urls)

    # Sealed data altered on its way to the page: "tampered", and nothing of the record.
    def flip(route, what: str) -> None:
        sealed = route.fetch().json()
        if what == "proof":  # the proof no longer leads to the root the chain holds
            proof = bytearray(bytes.fromhex(sealed["proof"]))
            proof[3] ^= 0x01
            sealed["proof"] = proof.hex()
        else:
            data = bytearray(base64.b64decode(sealed["ciphertext"]))
            data[len(data) // 2] ^= 0x01
            sealed["ciphertext"] = base64.b64encode(bytes(data)).decode()
            if what == "ciphertext and digest":  # only the AEAD can tell then
                sealed["blob_digest"] = hashlib.sha256(bytes(data)).hexdigest()
        route.fulfill(json=sealed)

    for what in ("ciphertext", "ciphertext and digest", "proof"):
        pattern = f"**/api/records/{token}/sealed"
        page.route(pattern, lambda route, w=what: flip(route, w))
        page.goto(url + "#/records")
        page.get_by_role("heading", name=re.compile(r"Your records")).wait_for()
        page.goto(url + f"#/record/{token}")
        page.locator("#badge").filter(has_text="tampered").wait_for()
        assert page.locator("#tampered").is_visible()
        assert page.get_by_role("table", name="Measured values").count() == 0
        assert shown_value not in page.locator("main").inner_text()
        page.unroute(pattern)

    # Altered at rest, in the node's own blob store: the node hands it over as it is (it
    # opens nothing), and the page says "tampered".
    with sqlite3.connect(home / "index.sqlite") as index:
        (digest,) = index.execute("SELECT blob_digest FROM records WHERE token_id = ?",
                                  (int(token),)).fetchone()  # fmt: skip
    vault = sqlite3.connect(home / "vault.sqlite", timeout=10)
    try:
        (blob,) = vault.execute("SELECT data FROM blobs WHERE digest = ?", (digest,)).fetchone()
        with vault:
            vault.execute("UPDATE blobs SET data = ? WHERE digest = ?",
                          (blob[:40] + bytes([blob[40] ^ 1]) + blob[41:], digest))  # fmt: skip
        page.goto(url + "#/records")
        page.get_by_role("heading", name=re.compile(r"Your records")).wait_for()
        page.goto(url + f"#/record/{token}")
        page.locator("#badge").filter(has_text="tampered").wait_for()
        assert shown_value not in page.locator("main").inner_text()
    finally:
        with vault:
            vault.execute("UPDATE blobs SET data = ? WHERE digest = ?", (blob, digest))
        vault.close()

    assert errors == []
    page.close()
    assert time.monotonic() - started < 60


#: The BIP-39 test phrase every wallet documents, and its first address.
PHRASE = "test test test test test test test test test test test junk"
PHRASE_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def test_the_wallet_panel_creates_imports_unlocks_and_refuses_a_wrong_passphrase(
        device_server, chromium) -> None:  # fmt: skip
    """Create and import in the page (the public part a hospital registers is shown), a
    reload asks for the passphrase again, a wrong one changes nothing."""
    from healthnft.keys import identity_from_secret

    url, _home = device_server
    page = chromium.new_page()
    page.set_default_timeout(30000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    address = _use_demo_patient(page, url)

    # A reload forgets the key in memory: the page asks for the passphrase, not the server.
    page.reload()
    page.get_by_role("heading", name="Unlock your wallet").wait_for()
    assert _unlabelled_controls(page) == []
    page.get_by_label("Wallet passphrase").fill("not the passphrase")
    page.get_by_role("button", name="Unlock").click()
    page.locator("#status").filter(has_text="Wrong passphrase: nothing was changed.").wait_for()
    page.get_by_label("Wallet passphrase").fill(PASSPHRASE)
    page.get_by_role("button", name="Unlock").click()
    page.get_by_role("heading", name=re.compile(r"Your records \(\d+\)")).wait_for()

    # Signed out, the wallet kept here signs in again with its passphrase.
    page.get_by_role("link", name="Sign out").click()
    card = page.get_by_role("form", name="Your wallet on this device")
    card.wait_for()
    assert card.get_by_label("Wallet", exact=True).input_value() == address
    card.get_by_label("Wallet passphrase").fill("wrong again")
    card.get_by_role("button", name="Unlock and sign in").click()
    page.locator("#status").filter(has_text="Wrong passphrase").wait_for()
    card.get_by_label("Wallet passphrase").fill(PASSPHRASE)
    card.get_by_role("button", name="Unlock and sign in").click()
    page.get_by_role("heading", name=re.compile(r"Your records \(\d+\)")).wait_for()
    page.get_by_role("link", name="Sign out").click()
    page.get_by_role("form", name="Your wallet on this device").wait_for()

    # A new wallet, made in the page: its public part is what eth_account and the CLI
    # derive from the secret kept (encrypted) in IndexedDB.
    page.get_by_text("Create a new wallet").click()
    page.get_by_label("New wallet passphrase").fill("another passphrase 9")
    page.get_by_label("The passphrase again").fill("another passphrase 9")
    page.get_by_role("button", name="Create wallet").click()
    page.locator("#new-phrase").wait_for()
    assert len(page.locator("#new-phrase").inner_text().split()) == 12
    shown = page.locator("dl.public-key dd").all_inner_texts()
    stored = page.evaluate("async (a) => (await import('/static/wallet/keystore.js'))"
                           ".storedKeystore(a)", shown[0])  # fmt: skip
    ident = identity_from_secret(bytes(Account.decrypt(stored, "another passphrase 9")))
    assert shown == [ident.address, ident.enc_public.hex()]

    # An import from the recovery phrase gives the address every wallet gives.
    page.get_by_text("Import a keystore file or recovery phrase").click()
    page.get_by_label("Or the recovery phrase").fill(PHRASE)
    page.get_by_label("Passphrase (the file's; or a new one for a phrase)").fill("third one 123")
    page.get_by_role("button", name="Import").click()
    page.locator("#status").filter(has_text="Wallet imported").wait_for()
    kept = page.evaluate("async () => (await (await import('/static/wallet/keystore.js'))"
                         ".listWallets()).map(w => w.address)")  # fmt: skip
    assert sorted(kept) == sorted([address, ident.address, PHRASE_ADDRESS])
    assert errors == []
    page.close()


def test_the_sealed_route_answers_only_the_owner(served) -> None:
    """The owner gets sealed bytes that open, with the owner's key, to the record the
    server holds; another patient, an institution and a stranger get the answer a
    record never minted gets."""
    from healthnft.ledger import merkle
    from healthnft.vault import BatchKey, open_sealed

    owner = served.patient(0)
    net = served.app.state.service.net
    token = net.wallet().list(owner)[0]["token_id"]
    client = served.client()  # not as a context manager: its exit would close the service
    assert client.get(f"/api/records/{token}/sealed").status_code == 401
    served.sign_in(client, owner)
    r = client.get(f"/api/records/{token}/sealed")
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert not {"canonical", "resource", "summary", "measurements"} & set(body)
    # Sealed only: it opens with the owner's key, as the device opens it.
    ident = net.identity(owner)
    commitment = bytes.fromhex(body["commitment"])
    ciphertext = base64.b64decode(body["ciphertext"])
    assert hashlib.sha256(ciphertext).hexdigest() == body["blob_digest"]
    assert "root" not in body  # the page reads it from the chain: POST /rpc
    root = _rpc_root(client, body["token_contract"], token)
    assert root == net.ledger.batch_of(token).root
    assert merkle.verify(merkle.leaf_hash(token, commitment),
                         merkle.unpack_proof(bytes.fromhex(body["proof"])), root)
    batch_key = BatchKey.unwrap(ident.enc_private, bytes.fromhex(body["wrapped_key"]),
                                bytes.fromhex(body["key_id"]))  # fmt: skip
    plain = open_sealed(ciphertext, bytes.fromhex(body["sealed_dek"]), commitment, batch_key)
    assert plain.canonical == net.wallet().decrypt_row(net.catalog.record(token),
                                                       ident).canonical  # fmt: skip
    never = client.get("/api/records/999999999/sealed")
    assert never.status_code == 404
    for other in (served.patient(1), served.research):
        if other == owner:
            continue
        client = served.client()
        served.sign_in(client, other)
        r = client.get(f"/api/records/{token}/sealed")
        assert r.status_code == 404
        assert r.json()["detail"] == never.json()["detail"]


def _call(client, method: str, params: list) -> dict:
    r = client.post("/rpc", json={"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
    assert r.status_code == 200, r.text
    return r.json()


def _rpc_root(client, contract: str, token: int) -> bytes:
    """The batch root of ``token`` read through /rpc as the page reads it (two eth_calls)."""
    from eth_utils import keccak

    def view(signature: str, arg: int) -> bytes:
        data = "0x" + (keccak(text=signature)[:4] + arg.to_bytes(32, "big")).hex()
        answer = _call(client, "eth_call", [{"to": contract, "data": data}, "latest"])
        assert answer["id"] == 7, answer
        return bytes.fromhex(answer["result"][2:])

    batch_id = int.from_bytes(view("batch_of(uint256)", token), "big")
    return view("batch_root(uint256)", batch_id)


def test_rpc_reads_the_chain_and_nothing_else(served) -> None:
    """POST /rpc: chain id, head block and the token's batch root; no transaction, no
    other contract, no other view; a session first."""
    from eth_utils import keccak

    net = served.app.state.service.net
    contract = net.ledger.token.address
    client = served.client()
    assert client.post("/rpc", json={"method": "eth_chainId"}).status_code == 401
    served.sign_in(client, served.patient(0))
    assert int(_call(client, "eth_chainId", [])["result"], 16) == net.ledger.chain_id
    assert int(_call(client, "eth_blockNumber", [])["result"], 16) >= 1
    owners_of = "0x" + (keccak(text="balanceOf(address)")[:4] + bytes(32)).hex()
    batch_of = "0x" + (keccak(text="batch_of(uint256)")[:4] + (1).to_bytes(32, "big")).hex()
    refused = {
        "eth_sendRawTransaction": ["0x02f8"],
        "eth_getLogs": [{}],
        "personal_sign": ["0x00", contract],
    }
    for method, params in refused.items():
        assert _call(client, method, params)["error"]["code"] == -32601
    never = "0x" + (keccak(text="batch_of(uint256)")[:4] + (10**12).to_bytes(32, "big")).hex()
    reverted = _call(client, "eth_call", [{"to": contract, "data": never}, "latest"])
    assert reverted["error"] == {"code": -32000, "message": "execution reverted"}, reverted
    for params in ([{"to": contract, "data": owners_of}, "latest"],
                   [{"to": net.config["registry"], "data": batch_of}, "latest"],
                   [{"to": contract, "data": batch_of, "from": contract}, "latest"],
                   [{"to": contract, "data": batch_of}, "0x1"],
                   [{"to": contract, "data": "0xzz"}]):  # fmt: skip
        answer = _call(client, "eth_call", params)
        assert answer["error"]["code"] == -32602, (params, answer)
        assert "result" not in answer


def test_a_burned_record_is_said_burned_to_its_last_owner_only(served) -> None:
    from healthnft.services import records

    owner, other = served.patient(0), served.patient(1)
    net = served.app.state.service.net
    token = net.wallet().list(owner)[-1]["token_id"]
    with served.app.state.service.lock:
        records.burn(net, owner, token, confirm=True)
    client = served.client()
    served.sign_in(client, owner)
    r = client.get(f"/api/records/{token}/sealed")
    assert r.status_code == 403 and "burned" in r.json()["detail"], r.text
    client = served.client()
    served.sign_in(client, other)
    assert client.get(f"/api/records/{token}/sealed").status_code == 404


def test_demo_keys_are_served_in_a_demo_home_only(served, tmp_path) -> None:
    """The demo-only route exists in an app over a demo home, and nowhere else."""
    from fastapi.testclient import TestClient

    from healthnft.api import create_app
    from healthnft.services.participants import create_network

    client = served.client()
    rows = client.get("/api/demo/patients").json()
    assert rows and all(set(r) == {"address", "name", "demo"} and r["demo"] for r in rows)
    handed = client.get(f"/api/demo/patients/{rows[0]['address']}/keystore").json()
    assert handed["address"] == rows[0]["address"] and "crypto" in handed["keystore"]
    assert client.get(f"/api/demo/patients/{served.research}/keystore").status_code == 404
    home = tmp_path / "real"
    create_network(home, "a real passphrase 1")
    app = create_app(home, origin="http://testserver", exclusive=False)
    try:
        assert TestClient(app).get("/api/demo/patients").status_code == 404
        assert not any(getattr(r, "path", "") == "/api/demo/patients" for r in app.routes)
    finally:
        app.state.service.close()


def test_the_service_never_acts_as_a_demo_patient(fresh_demo_home) -> None:
    """Over the demo's own home (no patient keystore in it) the service hands a demo
    patient's keystore to the page when it asks for that one, offers institutions
    only to sign in as, and, with a demo patient signed in, opens nothing for them: the
    page opens their records itself, and the node holds no key to do it."""
    from fastapi.testclient import TestClient

    from healthnft.api import create_app, siwe
    from healthnft.network import DEMO_PASSPHRASE

    home, summary = fresh_demo_home
    app = create_app(home, origin="http://testserver", exclusive=False)
    try:
        client = TestClient(app)
        wallets = client.get("/api/demo/wallets").json()
        assert wallets and {w["kind"] for w in wallets} >= {"hospital", "research"}
        assert "patient" not in {w["kind"] for w in wallets}
        listed = client.get("/api/demo/patients").json()
        assert {(p["address"], p["name"]) for p in listed} == {
            (p["address"], p["name"]) for p in summary["patients"]}
        first = client.get(f"/api/demo/patients/{listed[0]['address']}/keystore").json()
        secret = bytes(Account.decrypt(first["keystore"], DEMO_PASSPHRASE))
        assert Account.from_key(secret).address == first["address"]
        assert not list((home / "keystore").glob(f"{first['address']}*"))
        msg = client.get("/api/auth/challenge", params={"address": first["address"]}).json()
        r = client.post("/api/auth/verify", json={"message": msg["message"],
                                                  "signature": siwe.sign(msg["message"], secret)})
        assert r.status_code == 200 and r.json()["kind"] == "patient"
        rows = client.get("/api/device/records").json()
        assert len(rows) == next(p["records"] for p in summary["patients"]
                                 if p["address"] == first["address"])  # fmt: skip
        token = rows[0]["token_id"]
        assert client.get(f"/api/records/{token}/sealed").status_code == 200
        hosted = client.get(f"/api/records/{token}")
        assert hosted.status_code == 403, hosted.text
        assert "holds no key" in hosted.json()["detail"]
    finally:
        app.state.service.close()
