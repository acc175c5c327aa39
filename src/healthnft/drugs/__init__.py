"""drugs: medicine packs traceable and verifiable on the network (issue 15).

Off chain: :mod:`~healthnft.drugs.gs1` reads what a scanner gives (element string,
printed form, GS1 Digital Link) into a pack, :mod:`~healthnft.drugs.scan` decodes a
DataMatrix photo, :mod:`~healthnft.drugs.status` decides one status per pack,
:mod:`~healthnft.drugs.epcis` exports a batch's history as EPCIS 2.0,
:mod:`~healthnft.drugs.product` issues and checks the manufacturer's product
credential (a W3C VC naming a GTIN's product) and keeps it in the home.

On chain: a manufacturer commissions a batch as one Merkle root over salted pack
commitments (:mod:`~healthnft.drugs.commitments`, which also keeps the manufacturer's
salts and trees; the ``DrugBatchRegistry`` contract is driven by
:mod:`healthnft.ledger.drugs`); dispensers decommission packs as they hand them out; a
regulator quarantines. Serials, counts and dispensers never appear on chain in clear.
"""
