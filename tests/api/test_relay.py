"""Transactions signed on the patient's device and relayed by the node (issue 14, point 3).

One home on the embedded chain, served in-process: a hospital and a research institute
whose keys live in the node's home, and two patients whose keys exist only in this test
process (registered from their public address and encryption key, as a wallet's link
gives them). Every patient action is prepared by the node, signed here with eth_account
and sent back; its effect is read on chain. The node never holds a patient key, so
everything that works here works without one.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from fastapi.testclient import TestClient

from healthnft.api import create_app, siwe
from healthnft.ingest import ingest
from healthnft.keys import Identity, identity_from_secret
from healthnft.ledger.client import call_data
from healthnft.ledger.consent import Consent
from healthnft.network import DEMO_PASSPHRASE, Network
from healthnft.sample import write_sample
from healthnft.services import records as records_service
from healthnft.services import sharing


@dataclass
class World:
    app: Any
    home: Path
    alice: Identity  # the patient: her key is here, in the test, and nowhere in the home
    mallory: Identity  # another registered patient, key in the test only
    hospital: str
    research: str

    @property
    def net(self) -> Network:
        return self.app.state.service.net

    def consent(self) -> Consent:
        return Consent(self.net.ledger)

    def client(self, who: Identity) -> TestClient:
        client = TestClient(self.app)
        msg = client.get("/api/auth/challenge", params={"address": who.address}).json()["message"]
        r = client.post("/api/auth/verify",
                        json={"message": msg, "signature": siwe.sign(msg, bytes(who.account.key))})
        assert r.status_code == 200, r.text
        return client

    def tokens(self, category: str) -> list[int]:
        return [r.token_id for r in self.net.catalog.records_of(self.alice.address)
                if r.category == category and r.status == "active"]  # fmt: skip

    def pending_nonce(self, who: Identity) -> int:
        return int(self.net.ledger.w3.eth.get_transaction_count(who.address, "pending"))


def _patient(net: Network, admin: Identity) -> Identity:
    """A key made here; the node learns its public parts only (address, X25519, did:key)."""
    ident = identity_from_secret(bytes(Account.create().key))
    net.admit_member(admin, ident.address, "patient", ident.enc_public, ident.did_public)
    return ident


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("relay")
    home = root / "home"
    net = Network.create(home, DEMO_PASSPHRASE, demo=True)
    try:
        hospital = net.add_participant("hospital", "General Hospital")
        research = net.add_participant("research", "Research Institute")
        admin = net.admin()
        alice, mallory = _patient(net, admin), _patient(net, admin)
        issuer = net.identity(hospital.address)
        data = write_sample(root / "data", patients=2)
        for bundle in sorted(data.glob("*.json")):  # two bundles: four lab results
            recs = ingest([bundle]).patients[0].records
            net.minter().mint(issuer, alice.address, alice.enc_public, recs)
    finally:
        net.close()
    app = create_app(home, origin="http://testserver")
    yield World(app, home, alice, mallory, hospital.address, research.address)
    app.state.service.close()


def _prepare(client: TestClient, **body: Any) -> dict[str, Any]:
    r = client.post("/api/tx/prepare", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def _sign(prepared: dict[str, Any], who: Identity, **change: Any) -> str:
    tx = {**prepared["tx"], **change}
    return "0x" + bytes(who.account.sign_transaction(tx).raw_transaction).hex()


def _send(client: TestClient, raw: str) -> Any:
    return client.post("/api/tx/send", json={"raw": raw})


def _do(world: World, client: TestClient, **body: Any) -> tuple[str, dict[str, Any]]:
    """Prepare, sign with Alice's key (here, never at the node), send: (prompt, result)."""
    prepared = _prepare(client, **body)
    assert prepared["tx"]["chainId"] == world.net.ledger.chain_id
    assert prepared["tx"]["nonce"] == world.pending_nonce(world.alice)
    r = _send(client, _sign(prepared, world.alice))
    assert r.status_code == 200, r.text
    sent = r.json()
    assert sent["action"] == body["action"] and sent["tx_hash"].startswith("0x")
    return prepared["prompt"], sent["result"]


def _plain(prompt: str) -> str:
    """One plain sentence: a capital first, one full stop at the end, no hex address."""
    assert re.fullmatch(r"[A-Z](?:[^.]|\.(?=\d))*\.", prompt), prompt
    assert "0x" not in prompt, prompt
    return prompt


def _problem(r: Any) -> tuple[int, str, str]:
    assert r.headers["content-type"] == "application/problem+json", r.text
    doc = r.json()
    return r.status_code, doc["code"], doc["detail"]


def test_the_node_holds_no_patient_key(world: World) -> None:
    keystores = {p.stem.lower() for p in (world.home / "keystore").glob("*.json")}
    for who in (world.alice, world.mallory):
        assert who.address.lower() not in keystores
        assert not world.net.has_key(who.address)
    assert world.hospital.lower() in keystores  # the institutions' keys are the node's own


def test_share_then_revoke(world: World) -> None:
    client = world.client(world.alice)
    labs = world.tokens("laboratory")[:3]
    prompt, result = _do(world, client, action="share", to=world.research, purpose="research",
                         days=30, token_ids=labs)  # fmt: skip
    assert _plain(prompt) == ("Give Research Institute read access to 3 lab results for 30 "
                              "days for research.")  # fmt: skip
    gid = result["grant_id"]
    grant = world.consent().grant(gid)
    assert grant.owner == world.alice.address and grant.grantee == world.research
    assert all(world.consent().can_access(gid, world.research, t) for t in labs)
    # The web API lists it with the rest of her grants.
    assert [g["grant_id"] for g in client.get("/api/grants").json()] == [gid]

    prompt, result = _do(world, client, action="revoke", grant_id=gid)
    assert _plain(prompt).startswith("Stop Research Institute's read access to 3 lab results")
    assert world.consent().grant(gid).revoked
    assert not world.consent().can_access(gid, world.research, labs[0])
    # Revoked already: one clear error, nothing prepared.
    status, code, detail = _problem(client.post("/api/tx/prepare",
                                                json={"action": "revoke", "grant_id": gid}))
    assert (status, code) == (409, "conflict") and "already revoked" in detail


def test_the_same_signed_bytes_twice_answer_the_first_result(world: World) -> None:
    client = world.client(world.alice)
    prepared = _prepare(client, action="share", to=world.research, purpose="treatment",
                        days=7, token_ids=world.tokens("immunization")[:1])  # fmt: skip
    assert _plain(prepared["prompt"]).startswith(
        "Give Research Institute read access to your vaccination of ")
    raw = _sign(prepared, world.alice)
    first, again = _send(client, raw), _send(client, raw)
    assert first.status_code == again.status_code == 200, again.text
    assert first.json() == again.json()
    grants = [e for e in world.net.ledger.logs("GrantCreated", owner=world.alice.address)
              if int(e["args"]["grant_id"]) == first.json()["result"]["grant_id"]]
    assert len(grants) == 1


def test_share_a_category(world: World) -> None:
    client = world.client(world.alice)
    n = len(world.tokens("laboratory"))
    prompt, result = _do(world, client, action="share-category", to=world.research,
                         purpose="public-health", category="laboratory", days=90)  # fmt: skip
    assert _plain(prompt) == (f"Give Research Institute read access to all your lab results "
                              f"({n} now, and any added later) for 90 days for public health.")
    grant = world.consent().grant(result["grant_id"])
    assert grant.category == "laboratory" and grant.purpose == "public-health"


def test_approve_and_decline_requests_an_institution_made(world: World) -> None:
    svc = world.app.state.service
    lab, vaccination = world.tokens("laboratory")[0], world.tokens("immunization")[0]
    with svc.lock:
        asked = sharing.request_access(svc.net, world.research, world.alice.address,
                                       "research", days=60, token_id=lab,
                                       reward_wei=10**15)  # fmt: skip
        other = sharing.request_access(svc.net, world.research, world.alice.address,
                                       "insurance", token_id=vaccination)  # fmt: skip
    client = world.client(world.alice)
    balance = world.net.ledger.w3.eth.get_balance(world.alice.address)
    prompt, result = _do(world, client, action="approve-request", request_id=asked.request_id)
    assert re.fullmatch(r"Give Research Institute read access to your lab result of \d+ \w+ "
                        r"\d{4} for 60 days for research, as they asked, and receive the "
                        r"0\.001 ETH they offered\.", _plain(prompt)), prompt
    req = world.consent().get_request(asked.request_id)
    assert req.state == "approved" and result["grant_id"] == req.grant_id
    assert world.consent().can_access(req.grant_id, world.research, lab)
    assert world.net.ledger.w3.eth.get_balance(world.alice.address) > balance  # paid, net of gas

    prompt, _ = _do(world, client, action="decline-request", request_id=other.request_id)
    assert _plain(prompt).startswith("Decline Research Institute's request to read your "
                                     "vaccination of ")
    assert world.consent().get_request(other.request_id).state == "declined"
    status, code, _ = _problem(client.post("/api/tx/prepare", json={
        "action": "decline-request", "request_id": other.request_id}))
    assert (status, code) == (409, "conflict")


def test_add_and_remove_a_policy(world: World) -> None:
    client = world.client(world.alice)
    prompt, result = _do(world, client, action="add-policy", kind="research",
                         purpose="research", category="laboratory", days=30,
                         valid_days=180)  # fmt: skip
    assert _plain(prompt) == ("Let research institutes who ask read your lab results for up "
                              "to 30 days for research, approved without asking you, for the "
                              "next 180 days.")  # fmt: skip
    number = result["policy"]
    assert [p["active"] for p in client.get("/api/policies").json()][number - 1] is True
    prompt, _ = _do(world, client, action="remove-policy", number=number)
    assert _plain(prompt) == (f"Turn off your policy {number}, which lets research "
                              "institutes read your lab results for research without asking "
                              "you; grants it already made stay until you revoke them.")
    assert client.get("/api/policies").json()[number - 1]["active"] is False


def test_approve_an_amendment(world: World) -> None:
    client = world.client(world.alice)
    token = world.tokens("condition")[0]
    prompt, _ = _do(world, client, action="approve-amendment", token_id=token,
                    issuer="General Hospital")  # fmt: skip
    assert re.fullmatch(r"Allow General Hospital to correct your condition of \d+ \w+ \d{4} "
                        r"once, with a new version that replaces it\.", _plain(prompt)), prompt
    assert world.net.ledger.amendment_approved(token) == world.hospital


def test_transfer_to_an_institution(world: World) -> None:
    client = world.client(world.alice)
    token = world.tokens("laboratory")[-1]
    prompt, result = _do(world, client, action="transfer", token_id=token, to=world.research)
    assert re.fullmatch(r"Move your lab result of \d+ \w+ \d{4} to Research Institute: it "
                        r"becomes theirs, and you can no longer open or share it\.",
                        _plain(prompt)), prompt
    assert result == {"token_id": token, "owner": world.research}
    net = world.net
    assert net.ledger.owner_of(token) == world.research
    assert net.catalog.record(token).owner == world.research  # the node's catalogue followed
    assert net.catalog.staged_transfer(token) is None
    # Re-encrypted for the new owner: the research institute opens it with its own key.
    with world.app.state.service.lock:
        rec = records_service.open_record(net, world.research, token)
    assert rec.resource["resourceType"] == "Observation"
    assert token not in world.tokens("laboratory")


def test_burn(world: World) -> None:
    client = world.client(world.alice)
    token = world.tokens("encounter")[0]
    status, code, _ = _problem(client.post("/api/tx/prepare", json={
        "action": "burn", "token_id": token, "confirm": False}))
    assert (status, code) == (400, "invalid_input")
    prompt, result = _do(world, client, action="burn", token_id=token, confirm=True)
    assert re.fullmatch(r"Destroy your visit record of \d+ \w+ \d{4} permanently: it cannot "
                        r"be undone\.", _plain(prompt)), prompt
    assert result == {"token_id": token, "burned": True}
    assert world.net.ledger.is_burned(token)
    assert world.net.catalog.record(token).status == "burned"  # shredded at the node
    # Burned already: said to its last owner; anyone else learns nothing.
    status, code, _ = _problem(client.post("/api/tx/prepare", json={
        "action": "burn", "token_id": token, "confirm": True}))
    assert (status, code) == (409, "conflict")
    status, code, _ = _problem(world.client(world.mallory).post("/api/tx/prepare", json={
        "action": "burn", "token_id": token, "confirm": True}))
    assert (status, code) == (404, "not_found")


def test_another_key_cannot_act_through_the_node(world: World) -> None:
    alice, mallory = world.client(world.alice), world.client(world.mallory)
    lab = world.tokens("laboratory")[0]
    prepared = _prepare(alice, action="share", to=world.research, purpose="research",
                        token_ids=[lab])  # fmt: skip
    before = (world.pending_nonce(world.alice), world.pending_nonce(world.mallory))
    # Alice's transaction signed by Mallory's key, sent in Alice's session: refused.
    status, code, detail = _problem(_send(alice, _sign(prepared, world.mallory)))
    assert (status, code) == (403, "access_denied") and "another key" in detail
    # Mallory's own session cannot prepare a share of Alice's record…
    status, code, _ = _problem(mallory.post("/api/tx/prepare", json={
        "action": "share", "to": world.research, "purpose": "research", "token_ids": [lab]}))
    assert (status, code) == (404, "not_found")
    # …and a share of it she signs herself is relayed, but the contract refuses it.
    call = world.consent().share_tokens_call(world.research, [lab], "research",
                                             int(time.time()) + 86400)  # fmt: skip
    forged = {**prepared["tx"], "data": "0x" + call_data(call).hex(), "gas": 400_000,
              "nonce": world.pending_nonce(world.mallory)}  # fmt: skip
    grants = len(world.net.ledger.logs("GrantCreated"))
    status, code, detail = _problem(_send(mallory, _sign({"tx": forged}, world.mallory)))
    assert (status, code) == (502, "ledger")
    assert "caller does not own the token" in detail, detail
    assert len(world.net.ledger.logs("GrantCreated")) == grants
    assert world.pending_nonce(world.alice) == before[0]


def test_what_the_node_refuses_to_relay(world: World) -> None:
    client = world.client(world.alice)
    ledger = world.net.ledger
    prepared = _prepare(client, action="share", to=world.research, purpose="research",
                        token_ids=world.tokens("laboratory")[:1])  # fmt: skip
    nonce = world.pending_nonce(world.alice)
    mint = ledger.mint_call(world.alice.address, 1, ledger.next_token_id(), b"\x01" * 32)
    register = ledger.registry.functions.register(world.alice.address, 2, b"\x00" * 32)
    cases = {
        "another chain": (_sign(prepared, world.alice, chainId=ledger.chain_id + 1),
                          "signed for chain id"),
        "another contract": (_sign(prepared, world.alice, to=ledger.registry.address),
                             "not addressed to this network's"),
        "a registration": (_sign(prepared, world.alice, to=ledger.registry.address,
                                 data="0x" + call_data(register).hex()),
                           "not addressed to this network's"),
        "a mint": (_sign(prepared, world.alice, data="0x" + call_data(mint).hex(),
                         to=ledger.token.address), "not a patient's action"),
        "a payment": (_sign(prepared, world.alice, value=1), "carries a payment"),
        "not hex": ("0xnothex", "not hex"),
        "not a transaction": ("0x" + "ab" * 40, "cannot be decoded"),
        "empty": ("0x", "empty"),
    }
    for what, (raw, reason) in cases.items():
        status, code, detail = _problem(_send(client, raw))
        assert (status, code) == (400, "invalid_input"), (what, detail)
        assert reason in detail, (what, detail)
        assert "\n" not in detail
    assert world.pending_nonce(world.alice) == nonce  # nothing was sent
    # An unknown action and a missing argument: refused before anything is prepared.
    assert client.post("/api/tx/prepare", json={"action": "mint"}).status_code == 400
    assert client.post("/api/tx/prepare", json={"action": "share", "to": world.research,
                                                "purpose": "research"}).status_code == 400
    # A hospital's session prepares nothing here: these are a patient's actions.
    hospital = world.client(world.net.identity(world.hospital))
    status, code, _ = _problem(hospital.post("/api/tx/prepare", json={
        "action": "burn", "token_id": 1, "confirm": True}))
    assert (status, code) == (403, "access_denied")


def test_the_node_learns_the_nonces_it_relays(world: World) -> None:
    """A relayed nonce is never handed out again by the node's own signing, even where the
    node's pending count lags (a slow node): the shared manager is told of it."""
    from healthnft.ledger.nonces import NonceManager

    client = world.client(world.alice)
    _do(world, client, action="add-policy", kind="pharma", purpose="research")
    ledger = world.net.ledger
    sent = world.pending_nonce(world.alice) - 1
    assert ledger.nonces._next[world.alice.address] == sent + 1  # the relay told it
    assert ledger.nonces.peek(world.alice.address) == sent + 1
    lagging = NonceManager(ledger.w3)  # what the node does with a count that lags
    lagging.observe(world.alice.address, sent + 5)
    assert lagging.peek(world.alice.address) == lagging.reserve(world.alice.address) == sent + 6


def test_the_hosted_routes_say_the_key_is_on_the_device(world: World) -> None:
    client = world.client(world.alice)
    r = client.post("/api/grants", json={"to": world.research, "purpose": "research",
                                         "token_ids": world.tokens("laboratory")[:1]})
    status, code, detail = _problem(r)
    assert (status, code) == (403, "access_denied")
    assert "holds no key" in detail and "on its own device" in detail


def test_prepare_refuses_with_one_error_and_sends_nothing(world: World) -> None:
    client = world.client(world.alice)
    lab = world.tokens("laboratory")[0]
    share = {"action": "share", "to": world.research, "purpose": "research", "token_ids": [lab]}
    nonce = world.pending_nonce(world.alice)
    cases = [
        ({**share, "to": "0x" + "12" * 20}, 404, "not a registered participant"),
        ({**share, "purpose": "gossip"}, 400, "unknown purpose"),
        ({**share, "to": world.alice.address}, 400, "with yourself"),
        ({**share, "token_ids": [10**6]}, 404, "no record you may open"),
        ({**share, "days": 4000}, 400, ""),
        ({"action": "share-category", "to": world.research, "purpose": "research",
          "category": "gossip"}, 400, "unknown category"),
        ({"action": "approve-amendment", "token_id": lab, "issuer": "Nowhere Clinic"}, 403,
         "not a registered hospital"),
        ({"action": "transfer", "token_id": lab, "to": world.alice.address}, 400,
         "already yours"),
        ({"action": "transfer", "token_id": lab, "to": world.mallory.address[:-1]}, 404,
         "not a 0x"),
        ({"action": "add-policy", "kind": "patient", "purpose": "research"}, 400,
         "unknown requester kind"),
        ({"action": "remove-policy", "number": 99}, 404, "no such policy"),
        ({"action": "approve-request", "request_id": 999}, 404, "no such request"),
        ({"action": "revoke", "grant_id": 999}, 404, "no such grant"),
    ]
    for body, status, reason in cases:
        got, _code, detail = _problem(client.post("/api/tx/prepare", json=body))
        assert got == status and reason in detail, (body, got, detail)
    assert world.pending_nonce(world.alice) == nonce


def test_a_legacy_transaction_is_relayed_too(world: World) -> None:
    client = world.client(world.alice)
    prepared = _prepare(client, action="add-policy", kind="insurer", purpose="insurance",
                        days=10, valid_days=10)  # fmt: skip
    tx = {k: v for k, v in prepared["tx"].items()
          if k not in ("maxFeePerGas", "maxPriorityFeePerGas", "type")}  # fmt: skip
    tx["gasPrice"] = prepared["tx"]["maxFeePerGas"]
    r = _send(client, "0x" + bytes(world.alice.account.sign_transaction(tx).raw_transaction).hex())
    assert r.status_code == 200, r.text
    number = r.json()["result"]["policy"]
    assert client.get("/api/policies").json()[number - 1]["kind"] == "insurer"


def test_a_transfer_mined_before_the_node_staged_it_is_finished_by_the_retry(world: World) -> None:
    """The signed bytes reached the chain without the node's bookkeeping (sent straight
    to the ledger, as after a crash or through another node): sending them again here
    re-seals the record for its new owner and switches the catalogue, once."""
    from healthnft.services import relay

    client = world.client(world.alice)
    token = world.tokens("immunization")[-1]
    prepared = _prepare(client, action="transfer", token_id=token, to=world.hospital)
    assert prepared["prompt"].endswith("to General Hospital: it becomes theirs, and you can "
                                       "no longer open or share it.")
    raw = _sign(prepared, world.alice)
    tx = relay.decode(raw)
    svc = world.app.state.service
    with svc.lock:
        svc.net.ledger.relay(bytes.fromhex(raw[2:]), tx.sender, tx.nonce, tx.tx_hash)
    assert world.net.ledger.owner_of(token) == world.hospital
    assert world.net.catalog.record(token).owner == world.alice.address  # not followed yet
    first, again = _send(client, raw), _send(client, raw)
    assert first.status_code == 200, first.text
    assert first.json() == again.json()
    assert world.net.catalog.record(token).owner == world.hospital
    with svc.lock:
        rec = records_service.open_record(svc.net, world.hospital, token)
    assert rec.resource["resourceType"] == "Immunization"
