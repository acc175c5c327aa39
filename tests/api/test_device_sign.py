"""The patient's page signs its own actions on the device (issue 14, point 3).

A demo patient whose key the page holds (device mode, as in ``test_device_open``) shares a
record with an institution, revokes the grant, transfers a record and burns one: each goes through
``POST /api/tx/prepare``, a dialog showing the node's sentence, the page's own check of
the prepared call (``wallet/sign.js``), a signature made in the page and
``POST /api/tx/send``. Nothing the page sends holds the key or the passphrase, and the
hosted (server-signing) routes are never called. A node that prepares a share to someone
else than the one chosen is refused: nothing is signed, nothing is sent.
"""

from __future__ import annotations

import json
import re
import time

import pytest
import test_device_open as opened
from test_browser import _sign_in, _wallets
from test_device_open import PASSPHRASE, Traffic, _patient_secrets, _use_demo_patient

pytestmark = pytest.mark.slow

# The served copy of the demo home and the browser, as test_device_open makes them.
device_server = opened.device_server
chromium = opened.chromium

#: The hosted routes that sign with a key the node holds; the device never calls them.
HOSTED = re.compile(r"^(POST \S+/api/grants$|DELETE \S+/api/grants/\d+$"
                    r"|POST \S+/api/records/\d+/(burn|transfer|amendment-approval)$"
                    r"|POST \S+/api/policies$|DELETE \S+/api/policies/\d+$"
                    r"|POST \S+/api/requests/\d+/(approve|decline)$)")  # fmt: skip


def _get(page, path: str):
    return page.evaluate("async (p) => (await (await fetch(p)).json())", path)


def _sign_in_dialog(page, *, says: str) -> str:
    """Read the node's sentence in the confirmation dialog, check it, and sign."""
    dialog = page.get_by_role("dialog", name="Confirm and sign")
    dialog.wait_for()
    prompt = dialog.locator("#tx-prompt").inner_text()
    assert says in prompt, prompt
    dialog.get_by_role("button", name="Sign and send").click()
    return prompt


def _choose_institution(page, *, avoid: str = "") -> tuple[str, str]:
    """(address, name) of an institution in the share form's list (research preferred)."""
    opts = page.locator("#share-to option")
    rows = [(opts.nth(i).get_attribute("value"), opts.nth(i).inner_text())
            for i in range(opts.count())]  # fmt: skip
    rows = [r for r in rows if r[0].lower() != avoid.lower()]
    address, text = next((r for r in rows if "research" in r[1].lower()), rows[0])
    page.locator("#share-to").select_option(address)
    return address, text.split(" — ", 1)[1]


def test_a_device_patient_shares_revokes_transfers_and_burns_signing_in_the_page(
        device_server, chromium) -> None:  # fmt: skip
    started = time.monotonic()
    url, home = device_server
    page = chromium.new_page()
    page.set_default_timeout(30000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    traffic = Traffic(page)
    address = _use_demo_patient(page, url)
    tokens = page.locator("a[data-token]").evaluate_all(
        "els => els.map(e => e.getAttribute('data-token'))"
    )
    assert len(set(tokens)) >= 3
    shared, moved, burned = tokens[0], tokens[1], tokens[-1]

    # Share: the node's sentence names the institution; the grant is then on chain.
    page.goto(url + f"#/share/{shared}")
    page.get_by_role("heading", name="Share a record").wait_for()
    grantee, name = _choose_institution(page)
    page.get_by_role("button", name="Share", exact=True).click()
    prompt = _sign_in_dialog(page, says=name)
    assert prompt.startswith("Give ") and "30 days" in prompt
    done = page.locator("#status").filter(has_text=re.compile(r"Shared: grant \d+\."))
    done.wait_for()
    grant_id = int(re.search(r"grant (\d+)", done.inner_text()).group(1))
    page.get_by_role("heading", name="Shared by you").wait_for()
    grant = next(g for g in _get(page, "/api/grants") if g["grant_id"] == grant_id)
    assert grant["state"] == "active" and grant["grantee"].lower() == grantee.lower()
    assert grant["token_ids"] == [int(shared)]

    # Revoke it from the list.
    page.get_by_role("button", name=f"Revoke grant {grant_id}").click()
    _sign_in_dialog(page, says="Stop ")
    page.locator("#status").filter(has_text=f"Grant {grant_id} revoked.").wait_for()
    grant = next(g for g in _get(page, "/api/grants") if g["grant_id"] == grant_id)
    assert grant["state"] == "revoked"

    # Transfer one to an institution: the node re-encrypts it for them; it leaves the list.
    page.goto(url + f"#/transfer/{moved}")
    page.get_by_role("heading", name=f"Transfer record {moved}").wait_for()
    page.get_by_role("button", name="Transfer", exact=True).click()
    _sign_in_dialog(page, says="Move ")
    page.locator("#status").filter(has_text=f"Record {moved} transferred.").wait_for()
    page.get_by_role("heading", name=re.compile(r"Your records")).wait_for()
    assert moved not in [str(r["token_id"]) for r in _get(page, "/api/device/records")]

    # Burn another record.
    page.goto(url + f"#/burn/{burned}")
    page.get_by_label("I understand this cannot be undone").check()
    page.get_by_role("button", name="Burn for good").click()
    _sign_in_dialog(page, says="Destroy ")
    page.locator("#status").filter(has_text=f"Record {burned} burned").wait_for()
    page.get_by_role("heading", name=re.compile(r"Your records")).wait_for()
    listed = [str(r["token_id"]) for r in _get(page, "/api/device/records")]
    assert burned not in listed and shared in listed

    # A node that prepares a share to someone else: refused, nothing signed or sent.
    before = len(_get(page, "/api/grants"))
    page.goto(url + f"#/share/{shared}")
    page.get_by_role("heading", name="Share a record").wait_for()
    other = page.locator("#share-to option").evaluate_all("os => os.map(o => o.value)")
    grantee, _name = _choose_institution(page)
    forged = next(a for a in other if a.lower() != grantee.lower())

    def tamper(route) -> None:
        prepared = route.fetch().json()
        data = prepared["tx"]["data"]
        swapped = re.sub(grantee[2:], forged[2:].lower(), data, flags=re.IGNORECASE)
        assert swapped != data
        prepared["tx"]["data"] = swapped
        route.fulfill(json=prepared)

    page.route("**/api/tx/prepare", tamper)
    sends = sum(u.endswith("/api/tx/send") for u in traffic.urls)
    page.get_by_role("button", name="Share", exact=True).click()
    page.locator("#status").filter(
        has_text="the node prepared something else than you asked"
    ).wait_for()
    assert page.get_by_role("dialog", name="Confirm and sign").count() == 0
    page.unroute("**/api/tx/prepare")
    assert sum(u.endswith("/api/tx/send") for u in traffic.urls) == sends == 4
    assert len(_get(page, "/api/grants")) == before

    # Cancelled in the dialog: nothing signed, nothing sent.
    page.get_by_role("button", name="Share", exact=True).click()
    page.get_by_role("dialog", name="Confirm and sign").get_by_role("button", name="Cancel").click()
    page.locator("#status").filter(has_text="Cancelled: nothing was signed.").wait_for()
    assert sum(u.endswith("/api/tx/send") for u in traffic.urls) == 4

    # Refused when sent: the node's one message, the form as it was, no grant.
    refusal = "share reverted on chain: consent: grantee is not a member"
    page.route("**/api/tx/send", lambda r: r.fulfill(status=502, json={"detail": refusal}))
    share = page.get_by_role("button", name="Share", exact=True)
    share.click()
    _sign_in_dialog(page, says="Give ")
    page.locator("#status").filter(has_text=refusal).wait_for()
    page.unroute("**/api/tx/send")
    assert share.is_enabled() and share.get_attribute("aria-busy") is None
    page.get_by_role("heading", name="Share a record").wait_for()
    assert len(_get(page, "/api/grants")) == before

    # What travelled: no key, no passphrase; the hosted signing routes never called.
    account_key, enc_key = _patient_secrets(home, address)
    sent = [json.loads(text.split("\n", 1)[1]) for where, text in traffic.bodies
            if where.startswith("request POST") and where.endswith("/api/tx/send")]  # fmt: skip
    assert len(sent) == 5 and all(set(s) == {"raw"} for s in sent)
    for secret in (PASSPHRASE, account_key, enc_key):
        assert traffic.holding(secret) == []
    assert [u for u in traffic.urls if HOSTED.match(u)] == []
    assert errors == []
    page.close()
    assert time.monotonic() - started < 90


def test_a_device_patient_answers_requests_signing_in_the_page(device_server, chromium) -> None:
    """A research institute asks twice (its own session, hosted as before); the patient
    approves one and declines the other, each signed in the page."""
    started = time.monotonic()
    url, home = device_server
    page = chromium.new_page()
    page.set_default_timeout(30000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    traffic = Traffic(page)
    address = _use_demo_patient(page, url)

    institute = chromium.new_page()  # a context of its own: its own session
    institute.set_default_timeout(30000)
    _sign_in(institute, url, _wallets(home)["research"])
    asked = institute.evaluate(
        """async (owner) => {
        const ids = [];
        for (const reason of ["a study", "another study"]) {
          const r = await fetch("/api/requests", {method: "POST",
            headers: {"Content-Type": "application/json"},
            body: JSON.stringify({owner, purpose: "research", category: "laboratory",
                                  days: 30, reason})});
          ids.push((await r.json()).request_id);
        }
        return ids;
    }""",
        address,
    )
    institute.close()
    approve, decline = asked
    assert all(isinstance(i, int) for i in asked), asked

    page.goto(url + "#/requests")
    page.get_by_role("button", name=f"Approve request {approve}").click()
    _sign_in_dialog(page, says="as they asked")
    page.locator("#status").filter(has_text="Approved.").wait_for()
    page.get_by_role("button", name=f"Decline request {decline}").click()
    _sign_in_dialog(page, says="Decline ")
    page.locator("#status").filter(has_text="Declined.").wait_for()
    states = {r["request_id"]: r["state"] for r in _get(page, "/api/requests")["incoming"]}
    assert states[approve] == "approved" and states[decline] == "declined"

    account_key, enc_key = _patient_secrets(home, address)
    for secret in (PASSPHRASE, account_key, enc_key):
        assert traffic.holding(secret) == []
    assert [u for u in traffic.urls if HOSTED.match(u)] == []
    assert sum(u.startswith("POST ") and u.endswith("/api/tx/send") for u in traffic.urls) == 2
    assert errors == []
    page.close()
    assert time.monotonic() - started < 60


def _sent_raws(traffic: Traffic) -> list[str]:
    """The signed transactions the page sent to /api/tx/send, in order."""
    return [json.loads(text.split("\n", 1)[1])["raw"] for where, text in traffic.bodies
            if where.startswith("request POST") and where.endswith("/api/tx/send")]  # fmt: skip


def _chain_view(home):
    """A second, read-only view of the served home's chain (what was mined, by whom)."""
    from healthnft.services.node import open_network

    return open_network(home)


def test_a_device_patient_adds_and_removes_a_policy_and_allows_a_correction(
        device_server, chromium) -> None:  # fmt: skip
    """Policies and an amendment approval, signed in the page: each lands on chain as
    the patient's own (the contract keys policies and approvals by ``msg.sender``)."""
    from eth_account import Account
    from eth_utils import keccak

    started = time.monotonic()
    url, home = device_server
    page = chromium.new_page()
    page.set_default_timeout(30000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    traffic = Traffic(page)
    address = _use_demo_patient(page, url)
    token = page.locator("a[data-token]").first.get_attribute("data-token")
    before = {p["policy"] for p in _get(page, "/api/policies")}

    # Add a policy: the node's sentence says the terms chosen; the policy is then in force.
    page.goto(url + "#/policies")
    page.get_by_role("heading", name="Policies", exact=True).wait_for()
    page.get_by_label("Who asks").select_option("research")
    page.get_by_label("For what purpose").select_option("research")
    page.get_by_label("Which records").select_option("laboratory")
    page.get_by_label("Longest access to grant (days)").fill("30")
    page.get_by_label("The policy applies for (days)").fill("180")
    page.get_by_role("button", name="Add policy").click()
    prompt = _sign_in_dialog(page, says="Let research institutes who ask read your lab results "
                                        "for up to 30 days for research")  # fmt: skip
    assert "for the next 180 days" in prompt, prompt
    done = page.locator("#status").filter(has_text=re.compile(r"Policy \d+ added\."))
    done.wait_for()
    number = int(re.search(r"Policy (\d+)", done.inner_text()).group(1))
    assert number not in before
    policy = next(p for p in _get(page, "/api/policies") if p["policy"] == number)
    assert policy["active"] and policy["kind"] == "research"
    assert policy["category"] == "laboratory" and policy["days"] == 30
    assert abs(policy["valid_until"] - (time.time() + 180 * 86400)) < 3600

    # Allow a hospital to correct a record.
    page.goto(url + f"#/allow-correction/{token}")
    page.get_by_role("heading", name="Allow a correction").wait_for()
    hospital = page.get_by_label("Hospital").input_value()
    hospitals = {p["name"]: p["address"] for p in _get(page, "/api/participants")
                 if p["kind"] == "hospital"}  # fmt: skip
    page.get_by_role("button", name="Allow correction").click()
    _sign_in_dialog(page, says=f"Allow {hospital} to correct ")
    allowed = f"{hospital} may now correct record {token}."
    page.locator("#status").filter(has_text=allowed).wait_for()

    # Remove the policy from its card.
    page.goto(url + "#/policies")
    page.get_by_role("button", name=f"Remove policy {number}", exact=True).click()
    page.get_by_role("button", name=f"Yes, remove policy {number}").click()
    _sign_in_dialog(page, says=f"Turn off your policy {number}")
    page.locator("#status").filter(has_text=f"Policy {number} removed").wait_for()
    policy = next(p for p in _get(page, "/api/policies") if p["policy"] == number)
    assert not policy["active"]

    # Signed by the patient's key, and mined as the patient's: read from the chain itself.
    raws = _sent_raws(traffic)
    assert len(raws) == 3
    assert {Account.recover_transaction(r).lower() for r in raws} == {address.lower()}
    network = _get(page, "/api/tx/network")
    net = _chain_view(home)
    try:
        assert network == {"chain_id": net.ledger.chain_id, "token": net.ledger.token.address,
                           "consent": net.ledger.consent.address}  # fmt: skip
        pin = page.evaluate("async () => (await import('/static/wallet/pins.js')).pinned()")
        assert (pin["chainId"], pin["token"], pin["consent"]) == (
            str(net.ledger.chain_id), net.ledger.token.address.lower(),
            net.ledger.consent.address.lower())  # fmt: skip
        assert net.ledger.amendment_approved(int(token)).lower() == hospitals[hospital].lower()
        for raw in raws:
            receipt = net.ledger.receipt_of(keccak(bytes.fromhex(raw[2:])))
            assert receipt is not None and receipt["status"] == 1
            assert receipt["from"].lower() == address.lower()
    finally:
        net.close()

    account_key, enc_key = _patient_secrets(home, address)
    for secret in (PASSPHRASE, account_key, enc_key):
        assert traffic.holding(secret) == []
    assert [u for u in traffic.urls if HOSTED.match(u)] == []
    assert errors == []
    page.close()
    assert time.monotonic() - started < 60


def _word(data: str, index: int, value: int | str) -> str:
    """``data`` (0x-hex calldata) with its ``index``-th 32-byte argument word replaced."""
    start = 10 + 64 * index
    word = f"{value:064x}" if isinstance(value, int) else value[2:].lower().rjust(64, "0")
    return data[:start] + word + data[start + 64 :]


def test_a_node_that_prepares_another_contract_or_other_terms_is_refused(
        device_server, chromium) -> None:  # fmt: skip
    """The page pins the network's chain id and contracts at its first use here; a
    prepared policy or amendment approval with other terms, for another contract or
    another chain, is refused in the page: no dialog, nothing signed, nothing sent. A node
    that later names other contracts itself is refused too (the pin holds)."""
    started = time.monotonic()
    url, home = device_server
    page = chromium.new_page()
    page.set_default_timeout(30000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    traffic = Traffic(page)
    _use_demo_patient(page, url)
    token = page.locator("a[data-token]").first.get_attribute("data-token")
    network = _get(page, "/api/tx/network")
    people = _get(page, "/api/participants")
    stranger = next(p["address"] for p in people if p["kind"] != "hospital")
    policies = len(_get(page, "/api/policies"))
    other = "the node prepared something else than you asked: nothing was signed"
    moved = (
        "the node prepared a transaction for another chain or contract than the ones "
        "this device pinned for this node: nothing was signed"
    )

    def refused(submit, change, says: str) -> None:
        def tamper(route) -> None:
            prepared = route.fetch().json()
            prepared["tx"] = change(dict(prepared["tx"]))
            route.fulfill(json=prepared)

        page.route("**/api/tx/prepare", tamper)
        page.locator("#status").evaluate("el => el.replaceChildren()")
        submit()
        page.locator("#status").filter(has_text=says).wait_for()
        assert page.get_by_role("dialog", name="Confirm and sign").count() == 0
        page.unroute("**/api/tx/prepare")

    add = page.get_by_role("button", name="Add policy")
    page.goto(url + "#/policies")
    page.get_by_label("Who asks").select_option("research")
    page.get_by_label("Which records").select_option("laboratory")
    page.get_by_label("Longest access to grant (days)").fill("30")
    # add_policy(grantee_kind, category, purpose, duration, deidentified_only, valid_until)
    for index, value in ((0, 3), (1, 0), (2, 1), (3, 3650 * 86400), (4, 1),
                         (5, int(time.time()) + 3650 * 86400)):  # fmt: skip
        refused(add.click, lambda tx, i=index, v=value: {**tx, "data": _word(tx["data"], i, v)},
                other)  # fmt: skip
    # The record contract, not the consent contract; or an address of nobody's; or a chain
    # of another id.
    refused(add.click, lambda tx: {**tx, "to": network["token"]}, moved)
    refused(add.click, lambda tx: {**tx, "to": "0x" + "5a" * 20}, moved)
    refused(add.click, lambda tx: {**tx, "chainId": tx["chainId"] + 1}, moved)
    # Even if the node's own description of the network changes with it: the pin holds.
    fake = "0x" + "77" * 20
    page.route("**/api/tx/network", lambda r: r.fulfill(json={**network, "consent": fake}))
    refused(add.click, lambda tx: {**tx, "to": fake}, moved)
    page.unroute("**/api/tx/network")
    pin = page.evaluate("async () => (await import('/static/wallet/pins.js')).pinned()")
    assert pin["consent"] == network["consent"].lower()
    assert pin["token"] == network["token"].lower()
    assert pin["chainId"] == str(network["chain_id"])

    # An amendment approval for another participant than the hospital chosen.
    page.goto(url + f"#/allow-correction/{token}")
    allow = page.get_by_role("button", name="Allow correction")
    allow.wait_for()
    refused(allow.click, lambda tx: {**tx, "data": _word(tx["data"], 1, stranger)}, other)
    refused(allow.click, lambda tx: {**tx, "to": network["consent"]}, moved)

    # The wallet page shows the pin; forgetting it (a network really redeployed) pins
    # again at the next use.
    page.get_by_role("link", name="Wallet").click()
    card = page.get_by_role("region", name="Pinned network")
    assert network["consent"].lower() in card.inner_text().lower()
    card.get_by_role("button", name="Forget the pinned network").click()
    page.locator("#status").filter(has_text="Forgotten").wait_for()
    assert page.evaluate("async () => (await import('/static/wallet/pins.js')).pinned()") is None

    # Nothing was signed or sent; no policy was added; the hosted routes were not called.
    assert _sent_raws(traffic) == []
    assert len(_get(page, "/api/policies")) == policies
    assert [u for u in traffic.urls if HOSTED.match(u)] == []
    assert errors == []
    page.close()
    assert time.monotonic() - started < 60
