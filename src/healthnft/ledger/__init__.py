"""ledger: the contracts and the chain they run on.

``client.Ledger`` is the one web3.py client for every backend; ``embedded``
is the default backend (py-evm in-process, persisted under the home);
``compiler`` builds the Vyper sources under ``contracts/`` offline;
``governance`` drives the founding institutions' council (k of n) that may own the
registry and the consent manager instead of the deploying admin key;
``recovery`` drives guardian recovery (a patient's guardians move a lost key's account,
its tokens and its consent to a new address after a delay the old key may cancel).
"""

from healthnft.ledger.client import KIND_CODES, BatchInfo, Ledger
from healthnft.ledger.governance import Governance
from healthnft.ledger.recovery import GuardianRecovery

__all__ = ["KIND_CODES", "BatchInfo", "GuardianRecovery", "Governance", "Ledger"]
