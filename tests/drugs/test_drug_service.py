"""The drug service on a real home (embedded chain): every verification status, the
dispense rules (refusal with its status, the alert on a second dispense, the 10-day
undo by the same dispenser), recall, the regulator's quarantine, bad input refused
before anything is recorded, DataMatrix photos drawn here, the EPCIS export, and the
MedicationDispense record minted into the patient's wallet and verified there.

One home for the module; each test commissions its own lot, so tests do not depend on
one another (only the time-travel tests move the chain's clock, and every other lot
expires years later).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from healthnft.drugs.gs1 import Pack, digital_link, format_element_string, human_readable
from healthnft.drugs.scan import datamatrix_png
from healthnft.errors import (
    AccessDenied,
    Conflict,
    DispenseRefused,
    InvalidInput,
    NotAnIssuer,
    UnknownParticipant,
)
from healthnft.network import DEMO_PASSPHRASE, Network
from healthnft.services import drugs, records

GTIN = "09506000134352"
OTHER_GTIN = "05012345678900"
FAR = "301231"
DAY = 86400


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("drugs") / "home"
    network = Network.create(home, DEMO_PASSPHRASE, demo=True)
    network.add_participant("manufacturer", "Acme")
    network.add_participant("manufacturer", "Rogue")
    network.add_participant("pharmacy", "Corner Pharmacy")
    network.add_participant("pharmacy", "Other Pharmacy")
    network.add_participant("hospital", "City Hospital")
    network.add_participant("government", "Medicines Agency")
    network.add_participant("patient", "pat")
    drugs.product(network, "Acme", GTIN, "Amoxicillin 500 mg capsules")  # issue 15, point 2
    yield network
    network.close()


def code(lot: str, serial: str, expiry: str = FAR, gtin: str = GTIN) -> str:
    from healthnft.drugs.commitments import expiry_date

    return format_element_string(Pack(gtin, serial, lot, expiry_date(expiry), expiry))


def lot_of(net: Network, lot: str, n: int = 4, expiry: str = FAR, maker: str = "Acme",
           gtin: str = GTIN) -> drugs.BatchCommissioned:  # fmt: skip
    return drugs.commission(net, maker, gtin, lot, expiry, [f"{lot}S{i}" for i in range(n)])


def status(net: Network, text: str) -> str:
    """The service's verdict; and the event-index read path it uses agrees with the
    contract's own view (``status_of`` through eth_call) on the chain facts."""
    from healthnft.ledger.drugs import IndexedStatus

    checked = drugs.verify(net, text)
    if checked.proof is not None:
        p = checked.proof
        registry = net.drug_registry()
        indexed = IndexedStatus(registry)
        indexed.refresh()
        a = registry.pack_status(p.batch_key, p.index, p.commitment, p.proof)
        b = indexed.pack_status(p.batch_key, p.index, p.commitment, p.proof)
        assert (a.known, a.expiry, a.recalled, a.quarantined, a.dispensed_at, a.now) == (
            b.known, b.expiry, b.recalled, b.quarantined, b.dispensed_at, b.now)
        assert registry.manufacturer_of(p.batch_key) == indexed.manufacturer_of(p.batch_key)
    return checked.status


def travel(net: Network, seconds: int) -> None:
    w3 = net.ledger.w3
    now = int(w3.eth.get_block("latest")["timestamp"])
    w3.provider.ethereum_tester.time_travel(now + seconds + 1)


def yymmdd_in(net: Network, days: int) -> str:
    now = int(net.ledger.w3.eth.get_block("latest")["timestamp"])
    return (datetime.fromtimestamp(now, UTC) + timedelta(days=days)).strftime("%y%m%d")


def test_commission_is_idempotent_and_checks_its_input(net: Network, tmp_path: Path) -> None:
    serials = tmp_path / "serials.txt"
    serials.write_text("C1\nC2\n\n  C3  \n")
    first = drugs.commission(net, "Acme", GTIN, "LOTC", FAR, serials)
    assert (first.packs, first.lot, first.expiry, first.already) == (3, "LOTC", "2030-12-31",
                                                                     False)  # fmt: skip
    assert first.gas_used and first.tx and first.manufacturer == "Acme"
    blocks = net.ledger.w3.eth.block_number
    again = drugs.commission(net, "Acme", GTIN, "LOTC", FAR, serials)
    assert again.already and again.tx == first.tx and again.batch_key == first.batch_key
    assert net.ledger.w3.eth.block_number == blocks  # nothing sent twice
    with pytest.raises(Conflict):
        drugs.commission(net, "Acme", GTIN, "LOTC", FAR, ["C1", "C9"])
    with pytest.raises(Conflict, match="another manufacturer"):
        drugs.commission(net, "Rogue", GTIN, "LOTR", FAR, ["R1"])
    for bad in (dict(gtin="09506000134353"), dict(expiry="301332"), dict(lot="bad|lot"),
                dict(serials=["A", "A"]), dict(serials=[])):  # fmt: skip
        args = dict(gtin=GTIN, lot="LOTBAD", expiry=FAR, serials=["B1"]) | bad
        with pytest.raises(InvalidInput):
            drugs.commission(net, "Acme", args["gtin"], args["lot"], args["expiry"],
                             args["serials"])  # fmt: skip
    with pytest.raises(AccessDenied, match="pharmacy"):
        drugs.commission(net, "Corner Pharmacy", GTIN, "LOTX", FAR, ["X1"])
    with pytest.raises(UnknownParticipant):
        drugs.commission(net, "Nobody", GTIN, "LOTX", FAR, ["X1"])
    assert net.pack_book().batch(GTIN, "LOTBAD") is None  # nothing recorded
    assert net.ledger.w3.eth.block_number == blocks


def test_statuses_active_unknown_mismatch(net: Network) -> None:
    lot_of(net, "LOTA")
    assert status(net, code("LOTA", "LOTAS0")) == "active"
    verdict = drugs.verify(net, code("LOTA", "LOTAS1")).as_dict()
    assert set(verdict) == {"status", "reason", "gtin", "lot", "expiry", "serial", "product"}
    assert verdict["serial"] == "LOTAS1" and verdict["expiry"] == "2030-12-31"
    assert status(net, code("LOTA", "INVENTED")) == "unknown"
    assert status(net, code("LOTZ", "LOTAS0")) == "mismatch"  # a genuine serial, another lot
    assert status(net, code("LOTA", "LOTAS0", expiry="291231")) == "mismatch"
    # The three textual forms and a photo all read the same pack.
    from healthnft.drugs.gs1 import parse_pack

    pack = parse_pack(code("LOTA", "LOTAS2"))
    for text in (human_readable(pack), digital_link(pack)):
        assert status(net, text) == "active"
    png = datamatrix_png(code("LOTA", "LOTAS2"))
    assert drugs.verify(net, image=png).as_dict()["serial"] == "LOTAS2"


def test_a_squatter_batch_reads_unknown(net: Network) -> None:
    """A batch on chain owned by another manufacturer than the one whose book answers."""
    from healthnft.drugs.commitments import build_batch

    batch = build_batch(OTHER_GTIN, "SQ1", FAR, ["Q1", "Q2"])
    registry = net.drug_registry()
    rogue = net.catalog.participant_by_label("Rogue", "manufacturer")
    acme = net.catalog.participant_by_label("Acme", "manufacturer")
    registry.commission(net.identity(rogue.address).account, batch.batch_key, batch.root,
                        batch.expiry_time)  # fmt: skip
    book = net.pack_book()
    book.keep(batch, acme.address)  # Acme's book, the genuine manufacturer's
    book.close()
    checked = drugs.verify(net, code("SQ1", "Q1", gtin=OTHER_GTIN))
    assert checked.status == "unknown" and "manufacturer" in checked.verdict.reason


def test_dispense_alert_undo_window(net: Network) -> None:
    lot_of(net, "LOTD")
    blocks = net.ledger.w3.eth.block_number
    with pytest.raises(DispenseRefused) as refused:
        drugs.dispense(net, code("LOTD", "NOPE"), by="Corner Pharmacy")
    assert refused.value.status == "unknown" and net.ledger.w3.eth.block_number == blocks
    first = drugs.dispense(net, code("LOTD", "LOTDS0"), by="Corner Pharmacy")
    assert first.outcome == "dispensed" and not first.alert and first.gas_used < 80_000
    checked = drugs.verify(net, code("LOTD", "LOTDS0"))
    assert checked.status == "dispensed"
    assert "Corner" not in json.dumps(checked.as_dict())  # never who dispensed
    second = drugs.dispense(net, code("LOTD", "LOTDS0"), by="Other Pharmacy")
    assert second.alert and "ALERT" in second.message
    for who in ("Acme", "Medicines Agency"):  # the manufacturer and the regulator see it
        seen = drugs.alerts(net, GTIN, "LOTD", by=who)
        assert len(seen) == 1
    assert drugs.alerts(net, GTIN, "LOTD", by="Acme")[0]["serial"] == "LOTDS0"
    with pytest.raises(AccessDenied):
        drugs.alerts(net, GTIN, "LOTD", by="Rogue")
    with pytest.raises(AccessDenied):
        drugs.alerts(net, GTIN, "LOTD", by="Corner Pharmacy")
    # Undo: only the same dispenser, within 10 days.
    with pytest.raises(AccessDenied):
        drugs.undo(net, code("LOTD", "LOTDS0"), by="Other Pharmacy")
    done = drugs.undo(net, code("LOTD", "LOTDS0"), by="Corner Pharmacy")
    assert done.action == "undone" and status(net, code("LOTD", "LOTDS0")) == "active"
    drugs.dispense(net, code("LOTD", "LOTDS1"), by="City Hospital")  # a hospital dispenses
    travel(net, 10 * DAY)
    with pytest.raises(Conflict, match="10-day"):
        drugs.undo(net, code("LOTD", "LOTDS1"), by="City Hospital")
    assert status(net, code("LOTD", "LOTDS1")) == "dispensed"


def test_expired(net: Network) -> None:
    soon = yymmdd_in(net, 2)
    lot_of(net, "LOTE", expiry=soon)
    assert status(net, code("LOTE", "LOTES0", expiry=soon)) == "active"
    travel(net, 4 * DAY)
    assert status(net, code("LOTE", "LOTES0", expiry=soon)) == "expired"
    with pytest.raises(DispenseRefused, match="expired"):
        drugs.dispense(net, code("LOTE", "LOTES0", expiry=soon), by="Corner Pharmacy")


def test_recall_by_its_manufacturer_only(net: Network) -> None:
    lot_of(net, "LOTR")
    with pytest.raises(AccessDenied):
        drugs.recall(net, "Rogue", GTIN, "LOTR")
    with pytest.raises(AccessDenied):
        drugs.recall(net, "Medicines Agency", GTIN, "LOTR")
    assert drugs.recall(net, "Acme", GTIN, "LOTR").action == "recalled"
    assert status(net, code("LOTR", "LOTRS0")) == "recalled"
    with pytest.raises(DispenseRefused) as refused:
        drugs.dispense(net, code("LOTR", "LOTRS0"), by="Corner Pharmacy")
    assert refused.value.status == "recalled"


def test_quarantine_by_a_regulator_only(net: Network) -> None:
    lot_of(net, "LOTQ")
    for who in ("Acme", "Corner Pharmacy"):
        with pytest.raises(AccessDenied):
            drugs.quarantine(net, who, GTIN, "LOTQ")
    assert drugs.quarantine(net, "Medicines Agency", GTIN, "LOTQ").action == "quarantined"
    assert status(net, code("LOTQ", "LOTQS0")) == "quarantined"
    with pytest.raises(DispenseRefused, match="quarantined"):
        drugs.dispense(net, code("LOTQ", "LOTQS0"), by="Corner Pharmacy")
    assert drugs.release(net, "Medicines Agency", GTIN, "LOTQ").action == "released"
    assert status(net, code("LOTQ", "LOTQS0")) == "active"


def test_bad_input_is_one_clear_error_and_nothing_is_recorded(net: Network) -> None:
    blocks = net.ledger.w3.eth.block_number
    for bad in ("", "]d20109506000134353", "(01)09506000134352(21)X(10)L(17)301332",
                "(01)09506000134352(99)X", "not a code"):  # fmt: skip
        with pytest.raises(InvalidInput):
            drugs.verify(net, bad)
        with pytest.raises(InvalidInput):
            drugs.dispense(net, bad, by="Corner Pharmacy")
    with pytest.raises(InvalidInput, match="unreadable image"):
        drugs.verify(net, image=b"\x89PNG not really")
    with pytest.raises(InvalidInput):
        drugs.verify(net, None)
    with pytest.raises(AccessDenied):
        drugs.dispense(net, code("LOTA", "LOTAS3"), by="Acme")
    assert net.ledger.w3.eth.block_number == blocks


def test_epcis_export(net: Network, tmp_path: Path) -> None:
    lot_of(net, "LOTX", n=3)
    drugs.dispense(net, code("LOTX", "LOTXS0"), by="Corner Pharmacy")
    drugs.undo(net, code("LOTX", "LOTXS0"), by="Corner Pharmacy")
    drugs.dispense(net, code("LOTX", "LOTXS1"), by="Corner Pharmacy")
    drugs.dispense(net, code("LOTX", "LOTXS1"), by="Other Pharmacy")  # alert: no event
    drugs.recall(net, "Acme", GTIN, "LOTX")
    out = tmp_path / "lotx.json"
    doc = drugs.export_events(net, GTIN, "LOTX", out)
    assert json.loads(out.read_text()) == doc
    assert doc["type"] == "EPCISDocument" and doc["schemaVersion"] == "2.0"
    events = doc["epcisBody"]["eventList"]
    steps = [(e.get("bizStep"), e.get("disposition"), "errorDeclaration" in e) for e in events]
    assert steps == [("commissioning", "active", False), ("dispensing", "dispensed", False),
                     ("dispensing", "dispensed", True), ("dispensing", "dispensed", False),
                     (None, "recalled", False)]  # fmt: skip
    assert len(events[0]["epcList"]) == 3
    schema = Path(__file__).with_name("epcis-2.0-subset.schema.json")
    import jsonschema

    jsonschema.validate(doc, json.loads(schema.read_text()))
    assert "Corner" not in out.read_text()


def test_dispense_to_a_patient_mints_a_verifiable_medication_dispense(net: Network) -> None:
    lot_of(net, "LOTP")
    patient = net.catalog.participant_by_label("pat", "patient").address
    # A member that dispenses without the issuer role (withdrawn by the admin) cannot mint:
    # refused before anything is sent.
    net.add_participant("pharmacy", "Kiosk", issuer=False)
    with pytest.raises(NotAnIssuer):
        drugs.dispense(net, code("LOTP", "LOTPS0"), by="Kiosk", patient=patient)
    assert status(net, code("LOTP", "LOTPS0")) == "active"  # nothing changed
    done = drugs.dispense(net, code("LOTP", "LOTPS0"), by="City Hospital", patient=patient)
    assert done.outcome == "dispensed" and done.token_id is not None
    assert records.verify_record(net, done.token_id).valid
    opened = net.wallet().open(done.token_id, net.identity(patient))
    resource = opened.resource if hasattr(opened, "resource") else opened
    assert resource["resourceType"] == "MedicationDispense"
    medication = resource["contained"][0]
    assert medication["code"]["coding"][0] == {"system": drugs.GTIN_SYSTEM, "code": GTIN}
    assert medication["batch"] == {"lotNumber": "LOTP", "expirationDate": "2030-12-31"}
