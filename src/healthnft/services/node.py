"""Opening a home as a node: the handle every service call takes.

Adapters open a home here (and only here) and pass the handle to the services;
they never compose the lower layers themselves.
"""

from __future__ import annotations

from pathlib import Path

from healthnft.network import DEMO_PASSPHRASE, Network

__all__ = ["DEMO_PASSPHRASE", "Network", "open_network"]


def open_network(home: Path) -> Network:
    """The home at ``home``, opened: a clear ``NotFound`` when there is none, and
    ``ChainMissing`` when its chain file is gone (never replaced by a new, empty one)."""
    return Network.open(home)
