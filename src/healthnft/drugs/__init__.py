"""drugs: medicine packs verified against counterfeits on the network (issue 15).

A manufacturer commissions a batch of packs as one Merkle root over salted commitments
(:mod:`~healthnft.drugs.commitments`, and the ``DrugBatchRegistry`` contract driven by
:mod:`healthnft.ledger.drugs`); dispensers decommission packs as they hand them out;
a regulator quarantines. Serials, counts and dispensers never appear on chain in clear.
"""
