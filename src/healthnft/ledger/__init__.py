"""ledger: the contracts and the chain they run on.

``client.Ledger`` is the one web3.py client for every backend; ``embedded``
is the default backend (py-evm in-process, persisted under the home);
``compiler`` builds the Vyper sources under ``contracts/`` offline.
"""

from healthnft.ledger.client import KIND_CODES, BatchInfo, Ledger

__all__ = ["KIND_CODES", "BatchInfo", "Ledger"]
