"""ledger: the contracts and the chain they run on.

``client.Ledger`` is the one web3.py client for every backend; ``embedded``
is the default backend (py-evm in-process, persisted under the home);
``compiler`` builds the Vyper sources under ``contracts/`` offline;
``governance`` drives the founding institutions' council (k of n) that may own the
registry and the consent manager instead of the deploying admin key.
"""

from healthnft.ledger.client import KIND_CODES, BatchInfo, Ledger
from healthnft.ledger.governance import Governance

__all__ = ["KIND_CODES", "BatchInfo", "Governance", "Ledger"]
