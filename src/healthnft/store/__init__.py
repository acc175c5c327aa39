"""store: the SQLite files of a home, one policy, versioned schemas, one repository per concern.

The lowest layer with state: it imports only :mod:`healthnft.errors` and the standard
library, and knows tables, not cryptography or the chain.

- :mod:`~healthnft.store.connection`: how every file is opened (WAL, busy timeout,
  foreign keys, secure delete) and the one write door (``BEGIN IMMEDIATE``).
- :mod:`~healthnft.store.migrations`: the ladder over ``PRAGMA user_version``;
  :mod:`~healthnft.store.schema` holds every version of every file.
- Repositories over ``index.sqlite``: :mod:`~healthnft.store.catalogue` (participants,
  records), :mod:`~healthnft.store.journal` (mint batches and their blobs),
  :mod:`~healthnft.store.custody`, :mod:`~healthnft.store.transfers`,
  :mod:`~healthnft.store.derivatives`, :mod:`~healthnft.store.requests`,
  :mod:`~healthnft.store.challenges`; :class:`Index` opens the file and all of them.
"""

from healthnft.store.catalogue import Catalogue, Participant, RecordRow
from healthnft.store.challenges import Challenges
from healthnft.store.connection import BUSY_TIMEOUT_S, Database, connect
from healthnft.store.custody import Custody
from healthnft.store.derivatives import DerivativeLinks
from healthnft.store.index import Index, Repositories
from healthnft.store.journal import BatchRow, MintJournal
from healthnft.store.migrations import Ladder, Step, migrate, open_database, sql_step
from healthnft.store.requests import RequestReasons
from healthnft.store.schema import CHAIN, DRUGS, INDEX, VAULT
from healthnft.store.transfers import StagedTransfer, Transfers

__all__ = [
    "BUSY_TIMEOUT_S",
    "CHAIN",
    "DRUGS",
    "INDEX",
    "VAULT",
    "BatchRow",
    "Catalogue",
    "Challenges",
    "Custody",
    "Database",
    "DerivativeLinks",
    "Index",
    "Ladder",
    "MintJournal",
    "Participant",
    "RecordRow",
    "RequestReasons",
    "Repositories",
    "StagedTransfer",
    "Step",
    "Transfers",
    "connect",
    "migrate",
    "open_database",
    "sql_step",
]
