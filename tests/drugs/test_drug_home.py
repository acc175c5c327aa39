"""A home made by ``healthnft init`` has the drug registry: deployed with the network's
contracts, named in ``config.json``, found again when the home is reopened, its events
indexed in the home's index like the other contracts'."""

from __future__ import annotations

from pathlib import Path

from healthnft.drugs.commitments import build_batch
from healthnft.network import DEMO_PASSPHRASE, Network


def test_init_deploys_the_drug_registry_and_a_reopened_home_finds_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    net = Network.create(home, DEMO_PASSPHRASE, demo=True)
    try:
        address = net.config["drugs"]
        assert net.drug_registry().address == address
        maker = net.add_participant("manufacturer", "Acme Pharma Manufacturing")
        pharmacy = net.add_participant("pharmacy", "Corner Pharmacy")
        batch = build_batch("09506000134352", "LOT7", "301231", ["S1", "S2", "S3"])
        book = net.pack_book()
        book.keep(batch, maker.address)
        book.close()
        drugs = net.drug_registry()
        drugs.commission(net.identity(maker.address).account, batch.batch_key, batch.root,
                         batch.expiry_time)  # fmt: skip
    finally:
        net.close()

    net = Network.open(home)
    try:
        drugs = net.drug_registry()
        assert drugs.address == address and net.ledger.missing_contracts() == []
        book = net.pack_book()
        pack = book.find("09506000134352", "S2")
        book.close()
        assert pack is not None
        drugs.dispense(net.identity(pharmacy.address).account, pack.batch_key, pack.index,
                       pack.commitment, pack.proof)  # fmt: skip
        assert drugs.pack_status(pack.batch_key, pack.index, pack.commitment,
                                 pack.proof).status == "dispensed"  # fmt: skip
        events = drugs.events(pack.batch_key)
        assert [e["event"] for e in events] == ["Commissioned", "Dispensed"]
        assert events[1]["commitment"] == "0x" + pack.commitment.hex()
        assert (home / "drugs.sqlite").exists()
    finally:
        net.close()
