"""Check a home's index against its chain and vault, and repair it (``healthnft doctor``).

The service opens nothing itself: the caller opens the home without the index check
(which would refuse it) and, to repair, holds its writer lock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from healthnft.network import Network
    from healthnft.wallet.doctor import Checkup

__all__ = ["checkup"]


def checkup(net: Network, *, repair: bool = False) -> Checkup:
    """What disagrees between the index, the chain and the vault; with ``repair``,
    settled where the chain and the vault can settle it."""
    from healthnft.wallet import doctor

    if repair:
        return doctor.repair(net.ledger, net.catalog, net.blobs)
    return doctor.examine(net.ledger, net.catalog, net.blobs)
