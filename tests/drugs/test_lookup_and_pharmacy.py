"""Issue 15 across homes, on one real home (embedded chain): what a manufacturer's node
answers for a pack (:func:`drugs.lookup`), how an asker rebuilds and refuses a node's
answer, a community pharmacy minting the MedicationDispense into the patient's wallet
(verified there), and the product credential's trust: revoked or expired reads
``unknown``. The HTTP side (the route, its per-client limit) runs over the demo home;
separate processes are ``tests/consortium/test_drugs_across_nodes.py``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from healthnft.drugs.commitments import batch_key, expiry_date
from healthnft.drugs.gs1 import Pack, human_readable
from healthnft.errors import CredentialRejected, InvalidInput, Tampered
from healthnft.network import DEMO_PASSPHRASE, Network
from healthnft.services import drugs, records
from healthnft.services.demo import DEMO_BATCHES, DEMO_PHARMACY

GTIN = "09506000134352"
OTHER_GTIN = "05012345678900"
FAR = "301231"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("lookup") / "home"
    network = Network.create(home, DEMO_PASSPHRASE, demo=True)
    network.add_participant("manufacturer", "Acme")
    network.add_participant("pharmacy", "Corner Pharmacy")  # an issuer by default
    network.add_participant("patient", "pat")
    drugs.commission(network, "Acme", GTIN, "L1", FAR, ["A1", "A2", "A3", "A4", "A5"],
                     product_name="Amoxicillin 500 mg capsules")  # fmt: skip
    yield network
    network.close()


def pack(serial: str, lot: str = "L1", expiry: str = FAR, gtin: str = GTIN) -> Pack:
    return Pack(gtin, serial, lot, expiry_date(expiry), expiry)


def test_the_lookup_answers_one_pack_and_nothing_of_its_batch(net: Network) -> None:
    answer = drugs.lookup(net, GTIN, "L1", FAR, "A3")
    assert answer["commissioned"] is True
    assert set(answer) == {"commissioned", "gtin", "lot", "expiry", "serial", "salt", "index",
                           "proof", "manufacturer", "product"}  # fmt: skip
    assert (answer["gtin"], answer["lot"], answer["expiry"], answer["serial"]) == (
        GTIN, "L1", FAR, "A3")  # fmt: skip
    acme = net.catalog.participant_by_label("Acme", "manufacturer").address
    assert answer["manufacturer"] == acme and answer["product"].count(".") == 2  # a JWS
    # The other lot or expiry given changes nothing: the asker proves a mismatch itself.
    assert drugs.lookup(net, GTIN, "L9", "311231", "A3") == answer
    assert drugs.lookup(net, GTIN, "L1", FAR, "A404") == {"commissioned": False}
    for bad in ((OTHER_GTIN[:-1] + "1", "L1", FAR, "A1"), (GTIN, "L|1", FAR, "A1"),
                (GTIN, "L1", "301332", "A1"), (GTIN, "L1", FAR, "")):  # fmt: skip
        with pytest.raises(InvalidInput):
            drugs.lookup(net, *bad)


def test_an_answer_is_rebuilt_from_the_scanned_pack_and_checked(net: Network) -> None:
    from healthnft.services.drug_lookup import Peer, _answer

    answer = drugs.lookup(net, GTIN, "L1", FAR, "A2")
    peer = Peer("0x" + "11" * 20, "http://maker.example")
    rebuilt = _answer(answer, peer, pack("A2"))
    assert rebuilt is not None and rebuilt.manufacturer == peer.address  # the chain's, not
    assert rebuilt.proof.batch_key == batch_key(GTIN, "L1")  # the node's word
    assert rebuilt.proof.index == answer["index"]
    local = drugs.local_books(net).find(pack("A2"))
    assert local is not None and rebuilt.proof.commitment == local.proof.commitment
    assert _answer({"commissioned": False}, peer, pack("A2")) is None
    with pytest.raises(Tampered, match="another pack"):
        _answer(answer, peer, pack("A1"))  # it answered for another serial
    for broken in ({}, {**answer, "salt": "zz"}, {**answer, "proof": ["ab"]},
                   {**answer, "proof": "not a list"}, {**answer, "lot": "bad|lot"},
                   {**answer, "index": -1}, {**answer, "index": 1 << 20},
                   {**answer, "index": "0"}, {**answer, "index": True},
                   {**answer, "product": 7}, [answer]):  # fmt: skip
        with pytest.raises(Tampered):
            _answer(broken, peer, pack("A2"))


def test_the_node_to_ask_comes_from_the_chain_and_a_silent_one_is_one_error(net: Network) -> None:
    import requests

    from healthnft.errors import Unavailable
    from healthnft.services.drug_lookup import Peer, ask, manufacturer_node

    acme = net.catalog.participant_by_label("Acme", "manufacturer").address
    saved = net.config.get("peers")
    try:
        net.config["peers"] = {"0x" + "22" * 20: "http://elsewhere.example"}
        with pytest.raises(Unavailable, match="no node this home knows of"):
            manufacturer_node(net, pack("A1"))
        net.config["peers"] = {acme.lower(): "http://127.0.0.1:9/"}
        assert manufacturer_node(net, pack("A1")) == Peer(acme, "http://127.0.0.1:9")
        assert manufacturer_node(net, pack("A1", lot="NO-SUCH-LOT")) is None  # unknown
    finally:
        net.config["peers"] = saved
    with requests.Session() as session, pytest.raises(Unavailable, match="does not answer"):
        ask(session, Peer(acme, "http://127.0.0.1:9"), pack("A1"))  # nothing listens


def test_a_pharmacy_mints_the_medication_dispense_into_the_wallet(net: Network) -> None:
    patient = net.catalog.participant_by_label("pat", "patient").address
    pharmacy = net.catalog.participant_by_label("Corner Pharmacy", "pharmacy").address
    assert net.ledger.is_issuer(pharmacy)
    done = drugs.dispense(net, human_readable(pack("A1")), by="Corner Pharmacy",
                          patient=patient)  # fmt: skip
    assert done.outcome == "dispensed" and done.token_id is not None
    check = records.verify_record(net, done.token_id)
    assert check.valid, check  # the attestation by a pharmacy is trusted by the wallet
    opened = net.wallet().open(done.token_id, net.identity(patient))
    resource = opened.resource if hasattr(opened, "resource") else opened
    assert resource["resourceType"] == "MedicationDispense"
    performer = resource["performer"][0]["actor"]["identifier"]["value"]
    assert performer == net.identity(pharmacy).did
    assert resource["contained"][0]["identifier"][0]["value"] == "A1"


def test_a_revoked_product_credential_makes_its_packs_unknown(net: Network) -> None:
    from healthnft.drugs.product import check_product, read_product

    drugs.commission(net, "Acme", OTHER_GTIN, "R1", FAR, ["R1", "R2"],
                     product_name="Paracetamol 500 mg tablets")  # fmt: skip
    text = human_readable(pack("R1", "R1", gtin=OTHER_GTIN))
    assert drugs.verify(net, text).status == "active"
    held = drugs.product_store(net).get(OTHER_GTIN)
    assert held.id and held.id.startswith("urn:uuid:")
    revoked = drugs.revoke_product(net, "Acme", OTHER_GTIN)
    assert revoked.gtin == OTHER_GTIN
    # Served anywhere again, the same credential is refused: the chain has its revocation.
    assert check_product(net.ledger, read_product(held.jws)) == "its manufacturer revoked it"
    after = drugs.verify(net, text)
    assert after.status == "unknown" and "product" not in after.as_dict()
    with pytest.raises(Exception, match="holds no product credential"):
        drugs.revoke_product(net, "Acme", OTHER_GTIN)
    again = drugs.product(net, "Acme", OTHER_GTIN, "Paracetamol 500 mg tablets")
    assert not again.already and drugs.verify(net, text).status == "active"


def test_an_expired_product_credential_is_refused(net: Network) -> None:
    from healthnft.drugs.product import issue_product, read_product

    acme = net.catalog.participant_by_label("Acme", "manufacturer").address
    ident = net.identity(acme)
    now = datetime.now(UTC)
    jws = issue_product(ident.did_private, ident.did, acme, GTIN, "Amoxicillin",
                        valid_from=now - timedelta(days=2),
                        valid_until=now - timedelta(days=1))  # fmt: skip
    with pytest.raises(CredentialRejected, match="expired"):
        read_product(jws, GTIN)


# -- over HTTP (the demo home, served in this process) ------------------------------------


def test_the_lookup_route_and_its_limit(served) -> None:
    from healthnft.api.ratelimit import WindowLimiter

    gtin, lot, expiry, _count = DEMO_BATCHES[0]
    ask = {"gtin": gtin, "lot": lot, "expiry": expiry, "serial": f"{lot[-2:]}00001"}
    client = served.client()  # no session: a node asks, and checks all against the chain
    r = client.post("/node/v1/drugs/lookup", json=ask)
    assert r.status_code == 200 and r.json()["commissioned"] is True, r.text
    assert r.json()["serial"] == ask["serial"]
    r = client.post("/node/v1/drugs/lookup", json={**ask, "serial": "NOPE"})
    assert r.json() == {"commissioned": False}
    r = client.post("/node/v1/drugs/lookup", json={**ask, "gtin": "09506000134353"})
    assert r.status_code == 400 and "check digit" in r.json()["detail"]
    r = client.post("/node/v1/drugs/lookup", json={**ask, "serial": "S" * 21})
    assert r.status_code in (400, 422)
    state = served.app.state
    state.drug_lookup_limiter = WindowLimiter(2, 60.0, clock=lambda: served.clock[0])
    try:
        codes = [client.post("/node/v1/drugs/lookup", json=ask).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        served.clock[0] += 61
        assert client.post("/node/v1/drugs/lookup", json=ask).status_code == 200
    finally:
        del state.drug_lookup_limiter


def test_the_demo_pharmacy_dispenses_into_a_wallet_on_the_web(served) -> None:
    gtin, lot, expiry, _count = DEMO_BATCHES[0]
    net = served.app.state.service.net
    who = net.catalog.participant_by_label(DEMO_PHARMACY, "pharmacy").address
    client = served.client()
    served.sign_in(client, who)
    code = f"(01){gtin}(17){expiry}(10){lot}(21){lot[-2:]}00011"
    r = client.post("/api/drugs/dispense", json={"code": code, "patient": served.patient(1)})
    assert r.status_code == 200 and r.json()["token_id"], r.text
