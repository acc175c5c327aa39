"""Issue 14's first acceptance point: the patient's secret and plaintext exist on the
device only.

A real network: anvil, a home created on it (its admin is the patients' enrolment office)
holding a hospital and a research institute, served by ``healthnft serve`` as its own
process (its output in a log file beside the home). In Debian's chromium, driven by
Playwright, a patient creates a new wallet in the page under a passphrase; the page shows
the wallet's ``healthnft:`` link (its signed membership application, public values only).
The hospital, signed in at its node in a browser of its own, registers the patient from
that link alone (``POST /api/patients``) and uploads a lab result to mint into the wallet.
In its own page the patient signs in, lists, opens the record (decrypted on the device),
shares it with the research institute, revokes the grant and burns the record, each
signed in the page after a dialog that says in one sentence what will happen.

Every request and response the page exchanges is recorded. None of them, no file under
the node's home (every byte, SQLite files included) and nothing the node logged holds the
patient's private keys, recovery phrase or passphrase, or the record's plaintext.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_device_open as opened
from eth_account import Account
from test_browser import _unlabelled_controls
from test_device_open import Traffic
from test_device_sign import HOSTED, _choose_institution, _sign_in_dialog

from conftest import LAB_OBSERVATION, ServiceProcess, need_tool, run_cli
from healthnft.ledger import nodes

pytestmark = pytest.mark.slow

chromium = opened.chromium

#: The node's keystore passphrase (its institutions' keys; never the patient's).
NODE_ENV = {"HEALTHNFT_PASSPHRASE": "acceptance node passphrase"}
#: Chosen in the page for the patient's wallet: must never leave the page.
PASSPHRASE = "patient-only passphrase 9b2e"
#: Values found only in the record's plaintext.
MARKER = "acceptance-lab-4f7c2d"
VALUE = 6.2718
DISPLAY = "Glucose [Moles/volume] in Serum or Plasma acceptance"
RECORD = {**LAB_OBSERVATION, "id": MARKER,
          "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0",
                               "display": DISPLAY}]},
          "valueQuantity": {**LAB_OBSERVATION["valueQuantity"], "value": VALUE}}  # fmt: skip


def _cli(home: Path, *args: str) -> Any:
    """``healthnft --home HOME ARGS… --json`` (``--json`` before a ``--``), checked."""
    at = args.index("--") if "--" in args else len(args)
    done = run_cli(home, *args[:at], "--json", *args[at:], env=NODE_ENV, check=True,
                   timeout=180)  # fmt: skip
    return json.loads(done.stdout)


class Node(ServiceProcess):
    """``healthnft serve`` over the home: a process of its own, its output in HOME.log."""

    def __init__(self, home: Path) -> None:
        super().__init__(home, ["serve"], "/", NODE_ENV, clean=True, start_s=60.0)

    @property
    def log(self) -> Path:
        return self.home.parent / f"{self.home.name}.log"


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> Iterator[dict[str, Any]]:
    """anvil, a fresh home on it with a hospital and a research institute, and its node."""
    need_tool("anvil")
    root = tmp_path_factory.mktemp("acceptance")
    admin = Account.create()
    (root / "admin.key").write_text(admin.key.hex())
    chain = nodes.start_anvil(root / "chain", prefund=[admin.address])
    home = root / "node"
    node = Node(home)
    try:
        _cli(home, "init", "--rpc", chain.rpc_url, "--admin-key-file", str(root / "admin.key"))
        (root / "admin.key").unlink()  # the home keeps its own keystore of it
        hospital = _cli(home, "participant", "add", "--kind", "hospital", "--name", "General")
        _cli(home, "participant", "add", "--kind", "research", "--name", "Riverside Research")
        node.start()
        yield {
            "root": root,
            "home": home,
            "node": node,
            "chain": chain,
            "hospital": hospital["address"],
        }
    finally:
        node.stop()
        chain.stop()


def _create_wallet(page, url: str) -> dict[str, str]:
    """Create a wallet in the page; what it shows: address, encryption key, link, phrase."""
    page.goto(url)
    page.get_by_text("Create a new wallet").click()
    page.get_by_label("New wallet passphrase").fill(PASSPHRASE)
    page.get_by_label("The passphrase again").fill(PASSPHRASE)
    page.get_by_role("button", name="Create wallet").click()
    page.locator("#status").filter(has_text="Wallet created on this device.").wait_for()
    shown = page.locator("dl.public-key dd")
    return {"address": shown.nth(0).inner_text(), "enc_public": shown.nth(1).inner_text(),
            "link": page.locator("#membership-link").inner_text(),
            "phrase": page.locator("#new-phrase").inner_text()}  # fmt: skip


def _get(page, path: str) -> Any:
    return page.evaluate("async (p) => (await (await fetch(p)).json())", path)


def _secrets(page, card: dict[str, str]) -> dict[str, str]:
    """The patient's secrets, taken from the wallet the page keeps (its keystore, decrypted
    here with the passphrase typed in the page), as text a leak would carry."""
    from healthnft.keys import identity_from_secret

    keystore = page.evaluate("""async (a) => {
        const ks = await import('/static/wallet/keystore.js');
        return JSON.parse(await ks.storedKeystore(a));
    }""", card["address"])  # fmt: skip
    secret = bytes(Account.decrypt(keystore, PASSPHRASE))
    ident = identity_from_secret(secret)
    assert ident.address == card["address"]  # the page's key is the one shown
    Account.enable_unaudited_hdwallet_features()
    assert Account.from_mnemonic(card["phrase"]).key == secret  # and its phrase
    assert ident.enc_public.hex() == card["enc_public"]
    did_private = ident.did_private.private_bytes_raw()
    assert ident.did_public.hex() in card["link"]  # the card names the did:key the CLI derives
    return {
        "account key": secret.hex(),
        "account key, base64": base64.b64encode(secret).decode(),
        "encryption key": ident.enc_private.private_bytes_raw().hex(),
        "did:key private key": did_private.hex(),
        "recovery phrase": card["phrase"],
        "passphrase": PASSPHRASE,
    }


def _holding(data: bytes, needles: dict[str, str], raw: dict[str, bytes]) -> list[str]:
    """The names of the needles in ``data``: text compared case-insensitively, ``raw`` as
    bytes."""
    low = data.lower()
    return [name for name, n in needles.items() if n.lower().encode() in low] + [
        name for name, n in raw.items() if n in data]  # fmt: skip


def _files_holding(where: Path, needles: dict[str, str],
                   raw: dict[str, bytes]) -> dict[str, list[str]]:  # fmt: skip
    """Which needles appear in which file under ``where`` (every byte of every file)."""
    found = {str(p.relative_to(where)): _holding(p.read_bytes(), needles, raw)
             for p in sorted(where.rglob("*")) if p.is_file()}  # fmt: skip
    return {path: names for path, names in found.items() if names}


def _hospital_page(chromium, url: str, network: dict[str, Any]):
    """The hospital's own browser session at its node (its keystore unlocked in its page)."""
    context = chromium.new_context()
    page = context.new_page()
    page.set_default_timeout(30000)
    page.goto(url)
    keystore = network["home"] / "keystore" / f"{network['hospital']}.json"
    form = page.get_by_role("form", name="Sign in with your keystore")
    form.get_by_label("Keystore file", exact=True).set_input_files(str(keystore))
    form.get_by_label("Passphrase", exact=True).fill(NODE_ENV["HEALTHNFT_PASSPHRASE"])
    form.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("heading", name="Mint records").wait_for()
    return context, page


def _hospital_registers_and_mints(chromium, url: str, network: dict[str, Any],
                                  card: dict[str, str]) -> None:  # fmt: skip
    """The hospital registers the patient from the wallet's link (its page's form), then
    uploads one FHIR lab result to mint for them."""
    context, page = _hospital_page(chromium, url, network)
    assert _unlabelled_controls(page) == []
    form = page.get_by_role("form", name="Register a patient")
    form.get_by_label("Patient's healthnft: link").fill(card["link"])
    form.get_by_role("button", name="Register patient").click()
    registered = f"Registered {card['address']} as a patient."
    page.locator("#status").filter(has_text=registered).wait_for()
    assert page.get_by_label("Patient's wallet address").input_value() == card["address"]
    source = network["root"] / "lab.json"
    source.write_text(json.dumps(RECORD))
    page.get_by_label("FHIR files").set_input_files(str(source))
    page.get_by_role("button", name="Mint", exact=True).click()
    page.locator("#status").filter(has_text="Minted 1 records").wait_for()
    source.unlink()
    context.close()


def _register(page, link: str) -> tuple[int, dict[str, Any]]:
    """``POST /api/patients`` from ``page``'s session: (status, answer)."""
    return page.evaluate("""async (link) => {
        const r = await fetch('/api/patients', {method: 'POST', body: JSON.stringify({link}),
                                                headers: {'Content-Type': 'application/json'}});
        return [r.status, await r.json()];
    }""", link)  # fmt: skip


def test_a_new_device_wallet_is_registered_opens_shares_revokes_and_burns_leaving_no_secret(
        network, chromium) -> None:  # fmt: skip
    started = time.monotonic()
    home, node = network["home"], network["node"]
    url = node.url + "/"
    context = chromium.new_context()
    page = context.new_page()
    page.set_default_timeout(30000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    traffic = Traffic(page)

    # A new wallet, made in the page: its public card.
    card = _create_wallet(page, url)
    assert re.fullmatch(r"0x[0-9a-fA-F]{40}", card["address"])
    assert card["link"].startswith("healthnft:apply?") and len(card["phrase"].split()) == 12
    assert card["address"] in card["link"] and card["enc_public"] in card["link"]

    # The hospital, signed in at its node in a browser of its own, registers the patient
    # from that link alone and mints a lab result into the wallet.
    _hospital_registers_and_mints(chromium, url, network, card)

    # Sign in with the wallet kept on this device; the list shows the record.
    page.goto(url)
    wallet = page.get_by_role("form", name="Your wallet on this device")
    wallet.get_by_label("Wallet passphrase").fill(PASSPHRASE)
    wallet.get_by_role("button", name="Unlock and sign in").click()
    page.get_by_role("heading", name="Your records (1)").wait_for()
    token = page.locator("a[data-token]").get_attribute("data-token")
    assert _get(page, "/api/me")["address"] == card["address"]
    status, refused = _register(page, card["link"])  # a patient registers nobody
    assert (status, refused["detail"]) == (403, "only a hospital can do this")
    page.get_by_role("link", name="Wallet").click()  # the wallet's view shows the same card
    assert page.locator("#membership-link").inner_text() == card["link"]
    page.goto(url + "#/records")
    page.get_by_role("heading", name="Your records (1)").wait_for()

    # Open it: decrypted and checked on the device.
    page.locator(f"a[data-token='{token}']").click()
    page.locator("#badge").filter(has_text="authentic").wait_for()
    shown = page.get_by_role("table", name="Measured values").locator("td[data-label='Value']")
    assert str(VALUE) in shown.first.inner_text()
    canonical = page.locator("details pre").text_content()
    assert json.loads(canonical)["id"] == MARKER

    # Share it with the research institute, signed in the page.
    page.goto(url + f"#/share/{token}")
    page.get_by_role("heading", name="Share a record").wait_for()
    grantee, name = _choose_institution(page)
    assert name == "Riverside Research"
    page.get_by_role("button", name="Share", exact=True).click()
    prompt = _sign_in_dialog(page, says="Give Riverside Research read access to")
    assert prompt == (
        "Give Riverside Research read access to your lab result of 2 January "
        "2020 for 30 days for research."
    ), prompt
    done = page.locator("#status").filter(has_text=re.compile(r"Shared: grant \d+\."))
    done.wait_for()
    grant_id = int(re.search(r"grant (\d+)", done.inner_text()).group(1))
    grant = next(g for g in _get(page, "/api/grants") if g["grant_id"] == grant_id)
    assert grant["state"] == "active" and grant["grantee"].lower() == grantee.lower()

    # Revoke the grant.
    page.get_by_role("heading", name="Shared by you").wait_for()
    page.get_by_role("button", name=f"Revoke grant {grant_id}").click()
    said = _sign_in_dialog(page, says="Stop ")
    assert said == (
        "Stop Riverside Research's read access to your lab result of 2 January 2020 "
        "now: no key is released under this grant afterwards."
    ), said
    page.locator("#status").filter(has_text=f"Grant {grant_id} revoked.").wait_for()
    grant = next(g for g in _get(page, "/api/grants") if g["grant_id"] == grant_id)
    assert grant["state"] == "revoked"

    # Burn the record.
    page.goto(url + f"#/burn/{token}")
    page.get_by_label("I understand this cannot be undone").check()
    page.get_by_role("button", name="Burn for good").click()
    said = _sign_in_dialog(page, says="Destroy ")
    assert said == (
        "Destroy your lab result of 2 January 2020 permanently: it cannot be undone."
    ), said
    page.locator("#status").filter(has_text=f"Record {token} burned").wait_for()
    assert _get(page, "/api/device/records") == []

    # Every action was signed in the page and relayed; no hosted (server-signing) route.
    assert [u for u in traffic.urls if HOSTED.match(u)] == []
    sent = [u for u in traffic.urls if u.startswith("POST ") and u.endswith("/api/tx/send")]
    assert len(sent) == 3

    # None of the secrets or the plaintext travelled, was kept or logged.
    secrets = _secrets(page, card)
    plaintext = {"record id": MARKER, "lab value": str(VALUE), "code display": DISPLAY,
                 "canonical record": canonical[:60],
                 "resource JSON": json.dumps(RECORD)[:60]}  # fmt: skip
    needles = {**secrets, **plaintext}
    assert traffic.holding(card["address"][2:]) and traffic.holding(f"/{token}/sealed")
    assert {name: traffic.holding(n) for name, n in needles.items() if traffic.holding(n)} == {}
    secret = bytes.fromhex(secrets["account key"])
    raw = {"account key, raw": secret, "encryption key, raw":
           bytes.fromhex(secrets["encryption key"])}  # fmt: skip
    node.stop()  # every file written and closed
    public = {"patient address": card["address"][2:]}  # the walk reads SQLite files too
    assert "index.sqlite" in _files_holding(home, public, {})
    assert _files_holding(home, needles, raw) == {}
    log = node.log.read_bytes()
    assert b"healthnft web wallet" in log.lower()  # the node's own output, captured
    assert _holding(log, needles, raw) == []
    assert errors == []
    context.close()
    assert time.monotonic() - started < 180


def _signed_link(account, terms: dict[str, Any], kind: str = "patient") -> str:
    """A membership link as a wallet makes it: ``account`` signs the application."""
    from eth_account.messages import encode_defunct

    from healthnft.consortium.membership import application_link

    doc = {"format": terms["format"], "chain_id": terms["chain_id"],
           "registry": terms["registry"], "address": account.address, "kind": kind,
           "enc_public": os.urandom(32).hex(), "did_public": os.urandom(32).hex()}  # fmt: skip
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    doc["signature"] = account.sign_message(encode_defunct(text=text)).signature.hex()
    return application_link(doc)


def test_a_hospital_registers_only_a_patient_from_its_own_signed_link(network, chromium) -> None:
    if network["node"].proc is None:  # stopped by a test that read its files
        network["node"].start()
    context, page = _hospital_page(chromium, network["node"].url + "/", network)
    terms = _get(page, "/api/network/membership")
    patient = Account.create()
    link = _signed_link(patient, terms)
    enc = re.search(r"enc=([0-9a-f]{64})", link).group(1)
    refusals = {
        # a path is never read, whatever it names
        str(network["home"] / "config.json"): (400, "paste the healthnft: link"),
        "healthnft:apply?v=1": (400, "not a membership link"),
        link.replace(enc, os.urandom(32).hex()): (403, "not signed by the address it names"),
        _signed_link(Account.create(), terms, kind="research"): (403, "patients only"),
        _signed_link(patient, {**terms, "chain_id": terms["chain_id"] + 1}):
            (400, "for another network"),
    }  # fmt: skip
    for bad, (code, says) in refusals.items():
        status, doc = _register(page, bad)
        assert status == code and says in doc["detail"], (bad, status, doc)
    for _ in range(2):  # the real one, twice: the second settles nothing new
        status, doc = _register(page, link)
        assert status == 200 and doc["address"] == patient.address and doc["kind"] == "patient"
        assert doc["issuer"] is False
    context.close()
