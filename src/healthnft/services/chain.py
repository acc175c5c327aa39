"""The ledger as an auditor sees it: a full export of what the chain holds."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from healthnft.network import Network


def export_chain(net: Network, path: Path) -> dict[str, Any]:
    """Every block, transaction, receipt, log and contract storage slot as JSON at ``path``.

    What it holds is what the chain holds: addresses, token ranges, Merkle roots,
    public keys and kind codes; never health data (tests search it for every value).
    """
    from healthnft.ledger.export import export_chain as dump

    return dump(net.ledger.w3, path)
