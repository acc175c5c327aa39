"""Product credentials (issue 15, point 2) on a real home (embedded chain): the
manufacturer's W3C VC naming a GTIN's product, kept in the home; commissioning needs
it; a pack reads genuine only when its batch's manufacturer on chain issued it. A rogue
registered manufacturer that commissions another's GTIN and lot first reads
``unknown``; a forged or altered credential is refused.

One home for the module; each test uses its own GTIN (GS1 example numbers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import one_error_line, run_cli, run_cli_json
from healthnft.credentials import b64url_decode, b64url_encode, verify_credential
from healthnft.drugs.commitments import build_batch, expiry_date
from healthnft.drugs.gs1 import Pack, format_element_string
from healthnft.drugs.product import ProductStore, check_product, issue_product, read_product
from healthnft.errors import Conflict, CredentialRejected, NotFound
from healthnft.network import DEMO_PASSPHRASE, Network
from healthnft.services import drugs

FAR = "301231"
AMOX = "09506000134352"
PARA = "09506000134376"
IBU = "05012345678900"
GONE = "04006381333931"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("products") / "home"
    network = Network.create(home, DEMO_PASSPHRASE, demo=True)
    for kind, name in (("manufacturer", "Acme"), ("manufacturer", "Rogue"),
                       ("manufacturer", "Gone"), ("pharmacy", "Corner Pharmacy")):  # fmt: skip
        network.add_participant(kind, name)
    yield network
    network.close()


def code(gtin: str, lot: str, serial: str) -> str:
    return format_element_string(Pack(gtin, serial, lot, expiry_date(FAR), FAR))


def member(net: Network, name: str):
    return net.catalog.participant_by_label(name, "manufacturer")


def test_a_product_credential_is_a_w3c_vc_by_the_manufacturers_bound_did(net: Network) -> None:
    done = drugs.product(net, "Acme", AMOX, "Amoxicillin 500 mg capsules", form="capsule",
                         strength="500 mg")  # fmt: skip
    acme = member(net, "Acme")
    vc = verify_credential(done.credential)
    assert vc["type"] == ["VerifiableCredential", "ProductCredential"]
    assert vc["issuer"] == done.issuer == net.identity(acme.address).did
    assert vc["credentialSubject"] == {"gtin": AMOX, "name": "Amoxicillin 500 mg capsules",
                                       "form": "capsule", "strength": "500 mg",
                                       "manufacturer": acme.address}  # fmt: skip
    assert check_product(net.ledger, read_product(done.credential, AMOX)) is None
    kept = Path(net.home) / "products" / f"{AMOX}.vc.jwt"
    assert kept.read_text().strip() == done.credential
    again = drugs.product(net, "Acme", AMOX, "Amoxicillin 500 mg capsules", form="capsule",
                          strength="500 mg")  # fmt: skip
    assert again.already and again.credential == done.credential
    with pytest.raises(Conflict, match="another manufacturer"):
        drugs.product(net, "Rogue", AMOX, "Amoxicillin 500 mg capsules")


def test_commission_needs_the_product_credential_or_a_product_name(net: Network) -> None:
    with pytest.raises(NotFound, match="issue one first"):
        drugs.commission(net, "Acme", PARA, "P1", FAR, ["P1A", "P1B"])
    assert net.pack_book().batch(PARA, "P1") is None  # nothing recorded
    done = drugs.commission(net, "Acme", PARA, "P1", FAR, ["P1A", "P1B"],
                            product_name="Paracetamol 500 mg tablets")  # fmt: skip
    assert done.packs == 2
    verdict = drugs.verify(net, code(PARA, "P1", "P1A")).as_dict()
    assert verdict["status"] == "active"
    assert verdict["product"] == {"name": "Paracetamol 500 mg tablets", "manufacturer": "Acme"}
    fake = drugs.verify(net, code(PARA, "P1", "NOPE")).as_dict()
    assert fake["status"] == "unknown" and "product" not in fake


def test_a_rogue_manufacturer_commissioning_the_lot_first_reads_unknown(net: Network) -> None:
    """Acme holds IBU's product credential; Rogue, a registered manufacturer, commissions
    lot R1 of IBU first, straight on chain (the contract sees only a hash of GTIN and
    lot), and its own book answers for the serials it printed."""
    drugs.product(net, "Acme", IBU, "Ibuprofen 200 mg tablets")
    rogue = member(net, "Rogue")
    batch = build_batch(IBU, "R1", FAR, ["R1A", "R1B"])
    net.drug_registry().commission(net.identity(rogue.address).account, batch.batch_key,
                                   batch.root, batch.expiry_time)  # fmt: skip
    book = net.pack_book()
    book.keep(batch, rogue.address)  # the rogue's book answers as the rogue
    book.close()
    verdict = drugs.verify(net, code(IBU, "R1", "R1A")).as_dict()
    assert verdict["status"] == "unknown" and "product" not in verdict
    assert "not commissioned by the product's manufacturer" in verdict["reason"]
    with pytest.raises(Conflict):  # and the genuine maker cannot take the lot back
        drugs.commission(net, "Acme", IBU, "R1", FAR, ["A1"])


def _altered(jws: str, **subject: str) -> str:
    header, payload, signature = jws.split(".")
    doc = json.loads(b64url_decode(payload))
    doc["credentialSubject"].update(subject)
    return ".".join([header, b64url_encode(json.dumps(doc).encode()), signature])


def test_a_forged_or_altered_product_credential_is_refused(net: Network) -> None:
    done = drugs.product(net, "Acme", AMOX, "Amoxicillin 500 mg capsules", form="capsule",
                         strength="500 mg")  # fmt: skip
    rogue = member(net, "Rogue")
    altered = _altered(done.credential, manufacturer=rogue.address)
    with pytest.raises(CredentialRejected, match="forged"):
        read_product(altered)
    store = ProductStore(Path(net.home) / "products")
    with pytest.raises(CredentialRejected, match="forged"):
        store.keep(altered)
    # Signed by Rogue's own key but naming Acme: the DID is not the one bound to Acme.
    ident = net.identity(rogue.address)
    forged = issue_product(ident.did_private, ident.did, member(net, "Acme").address, AMOX,
                           "Amoxicillin 500 mg capsules")  # fmt: skip
    assert "not the manufacturer it names" in check_product(net.ledger, read_product(forged))
    with pytest.raises(CredentialRejected, match="another GTIN"):
        read_product(done.credential, PARA)
    # An altered file in the home: the verification refuses it and says the pack is suspect.
    drugs.commission(net, "Acme", AMOX, "A1", FAR, ["A1A"])
    assert drugs.verify(net, code(AMOX, "A1", "A1A")).status == "active"
    kept = Path(net.home) / "products" / f"{AMOX}.vc.jwt"
    kept.write_text(_altered(done.credential, name="Something else"))
    try:
        verdict = drugs.verify(net, code(AMOX, "A1", "A1A")).as_dict()
        assert verdict["status"] == "unknown" and "refused" in verdict["reason"]
    finally:
        kept.write_text(done.credential)
    assert drugs.verify(net, code(AMOX, "A1", "A1A")).status == "active"


def test_a_manufacturer_no_longer_a_member_makes_its_packs_suspect(net: Network) -> None:
    drugs.commission(net, "Gone", GONE, "G1", FAR, ["G1A"], product_name="Cetirizine 10 mg")
    assert drugs.verify(net, code(GONE, "G1", "G1A")).status == "active"
    gone = member(net, "Gone")
    net.ledger.transact(net.admin().account, net.ledger.registry.functions.deactivate(
        gone.address))  # fmt: skip
    verdict = drugs.verify(net, code(GONE, "G1", "G1A")).as_dict()
    assert verdict["status"] == "unknown" and "no longer an active member" in verdict["reason"]


def test_cli_product_and_commission_refusal(net: Network, tmp_path: Path) -> None:
    home = Path(net.home)
    gtin = "00012345600012"
    got = run_cli_json(home, "drug", "product", "--manufacturer", "Acme", "--gtin", gtin,
                       "--name", "Aspirin 100 mg tablets")  # fmt: skip
    assert (got["gtin"], got["name"], got["manufacturer"], got["already"]) == (
        gtin, "Aspirin 100 mg tablets", "Acme", False)
    serials = tmp_path / "serials.txt"
    serials.write_text("X1\n")
    line = one_error_line(run_cli(home, "drug", "commission", "--manufacturer", "Rogue",
                                  "--gtin", "09506000134369", "--lot", "L", "--expiry", FAR,
                                  "--serials", str(serials)), NotFound)  # fmt: skip
    assert "no product credential" in line and "drug product" in line
