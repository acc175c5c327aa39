"""Opening a home as a node: the handle every service call takes.

Adapters open a home here (and only here) and pass the handle to the services;
they never compose the lower layers themselves.
"""

from __future__ import annotations

from pathlib import Path

from healthnft.home import Home
from healthnft.network import DEMO_PASSPHRASE, Network
from healthnft.store.writer import WriterLock

__all__ = ["DEMO_PASSPHRASE", "Network", "open_network", "staging_folder", "writer_lock"]


def open_network(home: Path, *, check_index: bool = True) -> Network:
    """The home at ``home``, opened: a clear ``NotFound`` when there is none,
    ``ChainMissing`` when its chain file is gone (never replaced by a new, empty one), and
    ``Conflict`` when its index is behind the chain (unless ``check_index`` is off, for
    the doctor that repairs it)."""
    return Network.open(home, check_index=check_index)


def writer_lock(home: Path, holder: str, wait_s: float = 5.0) -> WriterLock:
    """The home's writer lock (a context manager), held in ``holder``'s name: one
    program changes a home at a time (see :mod:`healthnft.store.writer`)."""
    return WriterLock(home, holder, wait_s)


def staging_folder(home: Path) -> Path:
    """Where a server stages uploads: inside the home, never the system's temp folder."""
    return Home(home).uploads_dir
