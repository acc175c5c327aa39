"""``index.sqlite`` opened once, with one repository per concern over it.

Every repository shares the file's one :class:`~healthnft.store.connection.Database`
(one connection, one lock, one write door), so a transaction that spans concerns (a
burn forgets the record's key, its custodian shares and its staged transfer) is still
one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from healthnft.store.accesslogs import AccessLogs
from healthnft.store.catalogue import Catalogue
from healthnft.store.challenges import Challenges
from healthnft.store.connection import Database
from healthnft.store.custody import Custody
from healthnft.store.derivatives import DerivativeLinks
from healthnft.store.held import HeldShares
from healthnft.store.journal import MintJournal
from healthnft.store.migrations import open_database
from healthnft.store.operations import Operations
from healthnft.store.requests import RequestReasons
from healthnft.store.schema import INDEX
from healthnft.store.transfers import Transfers


class Repositories(Protocol):
    """What code that reads or writes the index needs: the repositories by concern.

    :class:`Index` is one; so is ``healthnft.vault.catalog.Catalog`` (the old facade),
    so a caller typed with this accepts either while callers move over.
    """

    @property
    def catalogue(self) -> Catalogue: ...
    @property
    def journal(self) -> MintJournal: ...
    @property
    def custody(self) -> Custody: ...
    @property
    def transfers(self) -> Transfers: ...
    @property
    def derivatives(self) -> DerivativeLinks: ...
    @property
    def requests(self) -> RequestReasons: ...

    def checkpoint(self) -> None: ...


@dataclass(frozen=True)
class Index:
    """A home's index: its database and the repositories over it."""

    db: Database
    catalogue: Catalogue
    journal: MintJournal
    custody: Custody
    transfers: Transfers
    derivatives: DerivativeLinks
    requests: RequestReasons
    challenges: Challenges
    operations: Operations
    #: A custodian home's own shares (empty in any other home).
    held: HeldShares
    #: A custodian home's access-log transactions until confirmed (empty elsewhere).
    access_logs: AccessLogs

    @classmethod
    def open(cls, path: Path) -> Index:
        """Open (creating or migrating) ``path``; see :mod:`healthnft.store.schema`."""
        db = open_database(path, INDEX)
        return cls(db, Catalogue(db), MintJournal(db), Custody(db), Transfers(db),
                   DerivativeLinks(db), RequestReasons(db), Challenges(db),
                   Operations(db), HeldShares(db), AccessLogs(db))  # fmt: skip

    def checkpoint(self) -> None:
        self.db.checkpoint()

    def close(self) -> None:
        self.db.close()
