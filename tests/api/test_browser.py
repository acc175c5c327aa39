"""End to end in a real browser: Debian's chromium driven by Playwright against
`healthnft serve` started by the test on loopback, over a copy of the demo home.

Screenshots of the main pages, desktop and phone size, go to tests/artifacts/.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO, host_demo_patients, run_cli

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "tests" / "artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
DESKTOP = {"width": 1280, "height": 800}
SERVE_LOG: list[Path] = []
SERVE_HOME: list[Path] = []  # the served home: where a hosted patient's keystore file is
PHONE = {"width": 375, "height": 812}

pytestmark = pytest.mark.slow

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        raise RuntimeError("chromium is missing: `make test` installs it (apt chromium)")
    pytest.skip("Debian's chromium is not installed (make test installs it)",
                allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(demo_home, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """``healthnft serve`` on a free loopback port; its output goes to ``SERVE_LOG[0]``."""
    src, _ = demo_home
    home = tmp_path_factory.mktemp("browser") / "home"
    shutil.copytree(src, home)
    host_demo_patients(home)  # these pages are the hosted wallet's (device: test_device_*)
    SERVE_HOME[:] = [home]
    run_cli(home, "participant", "add", "--kind", "research", "--name",
            "demo-research-institute", "--same-person", check=True)
    port = _free_port()
    log_path = tmp_path_factory.mktemp("serve-log") / "serve.log"
    SERVE_LOG[:] = [log_path]
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "healthnft.cli", "--home", str(home), "serve", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, cwd=str(REPO),
    )
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
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def _participants(home: Path) -> list:
    """The home's participants, from its catalogue only (the server owns the chain)."""
    from healthnft.vault.catalog import Catalog

    catalog = Catalog(home / "index.sqlite")
    try:
        return catalog.participants()
    finally:
        catalog.close()


def _wallets(home: Path) -> dict[str, str]:
    people = _participants(home)
    words = {"patient": "Patient", "research": "Research institute", "hospital": "Hospital"}
    out = {}
    for p in people:
        if p.kind in words:
            out.setdefault(p.kind, f"{words[p.kind]} — {p.label} "
                                   f"({p.address[:6]}…{p.address[-4:]})")
    return out


def _keystore_of(label: str) -> str:
    """The keystore file of the patient shown as ``label`` (hosted by the served home)."""
    name = label.removeprefix("Patient — ").split(" (")[0]
    address = next(p.address for p in _participants(SERVE_HOME[0]) if p.label == name)
    return str(SERVE_HOME[0] / "keystore" / f"{address}.json")


def _sign_in(page, url: str, label: str) -> None:
    """Sign in as the wallet ``label``: an institution from the demo list, a patient
    (never offered there) with their keystore file, which this home hosts."""
    page.goto(url + "#/signin")
    page.wait_for_load_state("networkidle")
    if label.startswith("Patient — "):
        page.get_by_label("Keystore file", exact=True).set_input_files(_keystore_of(label))
        page.get_by_label("Passphrase", exact=True).fill("healthnft-demo")
        page.get_by_role("button", name="Sign in", exact=True).click()
    else:
        page.get_by_label("Demo wallet").select_option(label=label)
        page.get_by_role("button", name="Sign in with demo wallet").click()
    page.locator("#who").filter(has_text=re.compile(r"\w")).wait_for(timeout=30000)


def _sign_out(page) -> None:
    page.get_by_role("link", name="Sign out").click()
    page.get_by_role("button", name="Sign in with demo wallet").wait_for()


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _unlabelled_controls(page) -> list[str]:
    return page.evaluate("""() => [...document.querySelectorAll('input, select, textarea, button')]
        .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                      && !(el.tagName === 'BUTTON' && el.textContent.trim()))
        .map(el => el.outerHTML.slice(0, 80))""")


def test_patient_shares_with_a_research_institute_revokes_and_burns(server, browser) -> None:
    url, home = server
    who = _wallets(home)
    page = browser.new_page(viewport=DESKTOP)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    page.goto(url)
    assert _unlabelled_controls(page) == []
    _shot(page, "signin-desktop")
    # Keyboard only once the file is chosen: the passphrase and its button are reachable
    # and work (a hosted patient signs in with their keystore file: never a demo list).
    page.get_by_label("Keystore file", exact=True).set_input_files(_keystore_of(who["patient"]))
    page.get_by_label("Passphrase", exact=True).focus()
    page.keyboard.type("healthnft-demo")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.get_by_role("heading", name=re.compile(r"Your records \(\d+\)")).wait_for()
    _shot(page, "records-desktop")
    count = int(re.search(r"\((\d+)\)", page.get_by_role("heading", level=1).inner_text())[1])
    assert count > 10
    assert page.get_by_role("heading", name=re.compile("Laboratory results")).count() == 1

    lab = page.locator("a[data-token]").filter(has_text="Blood test").first
    lab_token = lab.get_attribute("data-token")
    lab.click()
    page.locator("#badge").wait_for()
    assert page.locator("#badge").inner_text() == "authentic"
    assert page.get_by_role("table", name="Measured values").count() == 1
    page.get_by_role("button", name="Show SMART Health Card").click()
    page.get_by_role("img", name=re.compile("SMART Health Card QR code")).first.wait_for()
    _shot(page, "record-desktop")

    page.get_by_role("link", name="Share").click()
    page.get_by_label("Who", exact=True).select_option(
        label=_option_label(page, "Who", "demo-research"))
    page.get_by_label("Purpose").select_option("research")
    page.get_by_label("For how many days").fill("14")
    sentence = page.locator("#consent-sentence").inner_text()
    assert "demo-research-institute" in sentence and "for research until" in sentence
    assert _unlabelled_controls(page) == []
    _shot(page, "share-desktop")
    page.get_by_role("button", name="Share").click()
    page.get_by_role("heading", name="Shared by you").wait_for()
    assert page.get_by_role("button", name=re.compile("Revoke grant")).count() >= 1
    _sign_out(page)

    # The institute opens exactly what was shared.
    _sign_in(page, url, who["research"])
    try:
        page.get_by_role("heading", name=re.compile(r"Shared with you \(1\)")).wait_for()
    except Exception:
        _shot(page, "failure")
        raise
    _shot(page, "institute-shared-desktop")
    page.locator(f"a[data-token='{lab_token}']").click()
    page.get_by_role("table", name="Measured values").wait_for()
    _shot(page, "institute-record-desktop")
    _sign_out(page)

    # The patient revokes; the institute is refused afterwards.
    _sign_in(page, url, who["patient"])
    page.get_by_role("link", name="Sharing").click()
    page.get_by_role("button", name=re.compile("Revoke grant")).first.click()
    page.locator("#status").filter(has_text="revoked").wait_for()
    _sign_out(page)
    _sign_in(page, url, who["research"])
    page.get_by_role("heading", name=re.compile(r"Shared with you \(0\)")).wait_for()
    page.goto(url + f"#/record/{lab_token}")
    page.locator("#status").filter(has_text="no record you may open").wait_for()
    _sign_out(page)

    # Burn, with its irreversible-warning confirmation.
    _sign_in(page, url, who["patient"])
    page.goto(url + f"#/record/{lab_token}")
    page.locator("#badge").wait_for()
    page.get_by_role("link", name="Burn").click()
    assert "irreversible" in page.locator("#burn-warning").inner_text()
    _shot(page, "burn-desktop")
    page.get_by_role("button", name="Burn for good").click()
    page.locator("#status").filter(has_text="Tick the box").wait_for()  # not without consent
    page.get_by_label("I understand this cannot be undone").check()
    page.get_by_role("button", name="Burn for good").click()
    page.get_by_role("heading", name=f"Your records ({count - 1})").wait_for()
    assert page.locator(f"a[data-token='{lab_token}']").count() == 0
    assert errors == []
    page.close()


def test_a_hospital_mints_an_upload_and_the_patient_sees_it(server, browser, tmp_path) -> None:
    import base64
    import json

    url, home = server
    who = _wallets(home)
    page = browser.new_page(viewport=DESKTOP)
    _sign_in(page, url, who["hospital"])
    page.get_by_role("heading", name="Mint records").wait_for()
    assert _unlabelled_controls(page) == []
    wallets = page.evaluate("async () => (await (await fetch('/api/demo/patients')).json())"
                            ".map(w => w.address)")
    obs = {"resourceType": "Observation", "id": "browser-upload-1", "status": "final",
           "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                     "observation-category", "code": "laboratory"}]}],
           "code": {"text": "Ferritin"}, "subject": {"reference": "urn:uuid:browser-patient"},
           "effectiveDateTime": "2025-02-03T09:00:00Z",
           "valueQuantity": {"value": 88, "unit": "ng/mL"}}
    upload = tmp_path / "ferritin.json"
    upload.write_text(json.dumps(obs))
    note_text = "Seen in clinic today.\nFerritin normal; no change to plan."  # written here
    note = {"resourceType": "DocumentReference", "id": "browser-note-1", "status": "current",
            "type": {"text": "Clinic letter"}, "date": "2025-02-04T10:00:00Z",
            "subject": {"reference": "urn:uuid:browser-patient"},
            "content": [{"attachment": {"contentType": "text/plain", "title": "Clinic letter",
                                        "data": base64.b64encode(note_text.encode()).decode()}}]}
    note_file = tmp_path / "letter.json"
    note_file.write_text(json.dumps(note))
    page.get_by_label("Patient's wallet address").fill(wallets[0])
    page.get_by_label("FHIR files").set_input_files([str(upload), str(note_file)])
    page.get_by_role("button", name="Mint").click()
    page.locator("#status").filter(has_text="Minted 2 records").wait_for()
    bar = page.get_by_role("progressbar", name="Minting progress")
    assert bar.get_attribute("value") == bar.get_attribute("max")
    _shot(page, "mint-desktop")
    _sign_out(page)
    label = next(v for k, v in _all_wallet_labels(home).items() if k == wallets[0])
    _sign_in(page, url, label)
    page.locator("a[data-token]").filter(has_text="Ferritin 88 ng/mL").wait_for()
    page.locator("a[data-token]").filter(has_text="Clinical note — Clinic letter").click()
    page.locator("pre.note").wait_for()
    assert page.locator("pre.note").inner_text() == note_text
    _shot(page, "note-desktop")
    page.close()


def _all_wallet_labels(home: Path) -> dict[str, str]:
    return {p.address: f"Patient — {p.label} ({p.address[:6]}…{p.address[-4:]})"
            for p in _participants(home) if p.kind == "patient"}  # fmt: skip


def _option_label(page, label: str, contains: str) -> str:
    page.get_by_label(label, exact=True).locator("option").first.wait_for(state="attached")
    texts = page.get_by_label(label, exact=True).locator("option").all_inner_texts()
    return next(t for t in texts if contains in t)


def _fits_phone(page) -> None:
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width


def test_a_patient_manages_policies_on_a_phone(server, browser) -> None:
    url, home = server
    who = _wallets(home)
    page = browser.new_page(viewport=PHONE)
    page.set_default_timeout(30000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        _sign_in(page, url, who["patient"])
        page.get_by_role("link", name="Policies").click()
        page.get_by_role("heading", name="Policies", exact=True).wait_for()
        assert _unlabelled_controls(page) == []
        page.get_by_label("Who asks").select_option("research")
        page.get_by_label("For what purpose").select_option("research")
        page.get_by_label("Which records").select_option("laboratory")
        page.get_by_label("Longest access to grant (days)").fill("30")
        page.get_by_label("The policy applies for (days)").fill("365")
        sentence = page.locator("#policy-sentence").inner_text()
        assert re.fullmatch(r"Research institutes may read your laboratory results for research, "
                            r"for up to 30 days, until \d+ \w+ \d{4} — automatically\.",
                            sentence), sentence  # fmt: skip
        _fits_phone(page)
        _shot(page, "policies-phone")
        # Keyboard only: from the last control, Tab reaches the submit button.
        page.get_by_label("Only de-identified copies").focus()
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.textContent") == "Add policy"
        page.keyboard.press("Enter")
        added = page.locator("#status").filter(has_text=re.compile(r"Policy \d+ added"))
        added.wait_for()
        number = re.search(r"Policy (\d+) added", added.inner_text())[1]
        listed = page.locator(f"li[data-policy='{number}']")
        listed.wait_for()
        assert sentence.removesuffix(".") in listed.inner_text()
        _fits_phone(page)
        _shot(page, "policies-listed-phone")

        page.get_by_role("button", name=f"Remove policy {number}").click()
        assert "Grants it already made stay" in page.locator(
            f"#confirm-policy-{number}").inner_text()
        _fits_phone(page)
        _shot(page, "policy-remove-phone")
        page.get_by_role("button", name=f"Yes, remove policy {number}").click()
        page.locator("#status").filter(has_text=f"Policy {number} removed").wait_for()
        page.get_by_role("list", name="Policies no longer in force").filter(
            has_text=f"Policy {number} (removed)").wait_for()
        assert page.locator(f"li[data-policy='{number}']").count() == 0
        assert errors == []
    finally:
        page.close()


def test_a_patient_allows_a_correction_and_the_hospital_makes_it(server, browser,
                                                                  tmp_path) -> None:  # fmt: skip
    import json

    url, home = server
    who = _wallets(home)
    page = browser.new_page(viewport=PHONE)
    page.set_default_timeout(30000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        _sign_in(page, url, who["patient"])
        page.get_by_role("heading", name=re.compile("Your records")).wait_for()
        rows = page.evaluate("async () => (await (await fetch('/api/records')).json())")
        mine = [r for r in rows if r["category"] in ("immunization", "condition")]
        assert len(mine) >= 2, "the demo patient has vaccinations or conditions"
        old, other = mine[0]["token_id"], mine[1]["token_id"]
        record = page.evaluate(f"async () => (await (await fetch('/api/records/{old}')).json())")
        corrected = dict(record["resource"])
        corrected["note"] = [{"text": "Corrected by the hospital: lot number confirmed."}]
        upload = tmp_path / "corrected.json"
        upload.write_text(json.dumps(corrected))

        page.goto(url + f"#/record/{old}")
        page.locator("#badge").filter(has_text="authentic").wait_for()
        page.get_by_role("link", name="Allow a correction").click()
        page.get_by_role("heading", name="Allow a correction").wait_for()
        page.get_by_label("Hospital").select_option(label="demo-hospital")
        assert page.locator("#correction-sentence").inner_text() == (
            "demo-hospital may replace this record with a corrected version; the old one "
            "stays, marked superseded.")
        assert _unlabelled_controls(page) == []
        _fits_phone(page)
        _shot(page, "allow-correction-phone")
        page.get_by_role("button", name="Allow correction").click()
        page.locator("#status").filter(has_text=f"may now correct record {old}").wait_for()
        page.locator("#badge").wait_for()
        _sign_out(page)

        _sign_in(page, url, who["hospital"])
        page.get_by_role("link", name="Correct a record").click()
        page.get_by_role("heading", name="Correct a record").wait_for()
        assert _unlabelled_controls(page) == []
        # A record whose owner has not allowed it: the problem's detail is shown.
        page.get_by_label("Token id of the record to correct").fill(str(other))
        page.get_by_label("Corrected FHIR resource (one JSON file)").set_input_files(str(upload))
        page.get_by_role("button", name="Submit correction").click()
        page.locator("#amend-result").filter(has_text="has not approved").wait_for()
        assert page.get_by_role("button", name="Submit correction").is_enabled()
        page.get_by_label("Token id of the record to correct").fill(str(old))
        page.get_by_role("button", name="Submit correction").click()
        done = page.locator("#amend-result").filter(has_text=f"corrects token {old}")
        done.wait_for(timeout=60000)
        new = int(re.search(r"Token (\d+) corrects", done.inner_text())[1])
        assert new != old
        _fits_phone(page)
        _shot(page, "amend-phone")
        _sign_out(page)

        _sign_in(page, url, who["patient"])
        page.locator(f"a[data-token='{new}']").wait_for()
        page.goto(url + f"#/record/{old}")
        page.locator("#badge").filter(has_text="superseded").wait_for()
        assert page.get_by_role("link", name="Allow a correction").count() == 0
        _shot(page, "superseded-phone")
        page.get_by_role("link", name="Open the corrected record").click()
        page.locator("#badge").filter(has_text="authentic").wait_for()
        assert page.url.endswith(f"#/record/{new}")
        assert errors == []
    finally:
        page.close()


def test_phone_sized_pages(server, browser) -> None:
    url, home = server
    who = _wallets(home)
    page = browser.new_page(viewport=PHONE)
    page.goto(url)
    _shot(page, "signin-phone")
    _sign_in(page, url, who["patient"])
    try:
        page.get_by_role("heading", name=re.compile("Your records")).wait_for()
    except Exception:
        _shot(page, "failure-phone")
        raise
    _shot(page, "records-phone")
    # Nothing is wider than the phone's screen.
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width
    page.locator("a[data-token]").filter(has_text="Vital sign").first.click()
    page.locator("#badge").wait_for()
    _shot(page, "record-phone")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    for name, shot in (("Sharing", "grants-phone"), ("Requests", "requests-phone"),
                       ("Access log", "access-log-phone")):
        page.get_by_role("link", name=name).click()
        page.wait_for_load_state("networkidle")
        _shot(page, shot)
    page.close()


def test_pharmacy_page_on_a_phone(server, browser, tmp_path: Path) -> None:
    """The pharmacist's page: a pasted code and a photo of the DataMatrix read as large
    plain status words; an active pack is dispensed from the page (issue 15)."""
    from healthnft.drugs.scan import datamatrix_png
    from healthnft.services.demo import DEMO_BATCHES, DEMO_PHARMACY

    url, home = server
    gtin, lot, expiry, _ = DEMO_BATCHES[0]
    code = f"(01){gtin}(17){expiry}(10){lot}(21){lot[-2:]}00011"
    pharmacy = next(p for p in _participants(home) if p.label == DEMO_PHARMACY)
    page = browser.new_page(viewport=PHONE)
    _sign_in(page, url, f"Pharmacy — {pharmacy.label} "
                        f"({pharmacy.address[:6]}…{pharmacy.address[-4:]})")  # fmt: skip
    page.get_by_role("link", name="Check a pack").click()
    page.get_by_label("Pack code (scan or paste)").wait_for()
    assert _unlabelled_controls(page) == []
    page.get_by_label("Pack code (scan or paste)").fill(code.replace("00011", "99999"))
    page.get_by_role("button", name="Check pack").click()
    page.locator(".verdict .word").filter(has_text="unknown").wait_for(timeout=30000)
    photo = tmp_path / "pack.png"
    photo.write_bytes(datamatrix_png(code))
    page.get_by_label("Pack code (scan or paste)").fill("")
    page.get_by_label("Or a photo of the DataMatrix").set_input_files(str(photo))
    page.get_by_role("button", name="Check pack").click()
    page.locator(".verdict .word").filter(has_text="active").wait_for(timeout=30000)
    _shot(page, "pharmacy-phone")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    page.get_by_role("button", name="Dispense this pack").click()
    page.locator(".verdict .word").filter(has_text="dispensed").wait_for(timeout=30000)
    page.close()


def test_the_server_logged_no_patient_data(server, fhir_dir) -> None:
    """After every flow above (and its refusals), the service's own output holds no
    name, identifier, birth date, address or observation value of the patients."""
    from test_privacy import collect, find_leaks

    needles = list(collect(fhir_dir).needles.values())
    assert len(needles) > 50
    _url, home = server
    # The home's path is ours (a pytest temp folder such as pytest-116, which once
    # matched an observation value), not the patient's: it is not searched.
    text = SERVE_LOG[0].read_text().replace(str(home), "HOME")
    assert "healthnft web wallet" in text  # the log is the server's, and was written
    assert find_leaks(needles, text, {}) == []
