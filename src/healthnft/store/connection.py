"""One connection policy for every SQLite file of a home.

A home keeps its state in a few SQLite files (``index.sqlite``, ``vault.sqlite``,
``chain.sqlite``); every one of them is opened here, the same way, so a rule about
durability or concurrency is written once.

The policy:

- **WAL** (``journal_mode=WAL``, ``synchronous=NORMAL``). Readers never block the
  writer and the writer never blocks readers, so the web API can serve a wallet while
  a batch mints in another process; a killed process loses at most its open
  transaction, never a committed one (with ``NORMAL``, a *power loss* may lose the last
  commits but never corrupts the file: the minting journal is written to survive that).
- **One writer at a time.** SQLite allows one writer per file anyway; we make it
  explicit and early: every write is a ``BEGIN IMMEDIATE`` transaction, which takes the
  write lock when it starts instead of failing half-way at the first ``INSERT`` with
  ``database is locked``. Another process's writer is waited for up to
  :data:`BUSY_TIMEOUT_S` (``busy_timeout``), then :class:`~healthnft.errors.Unavailable`.
- **All or nothing.** Writes go through :meth:`Database.write` only: the block commits
  when it ends and rolls back when it raises. Nested blocks are savepoints, so an inner
  failure that the outer block catches undoes the inner writes only.
- **Private files.** A database file is created 0600 (its folder 0700) before SQLite
  opens it, whatever the umask; SQLite gives the WAL and shared-memory files it creates
  beside it the database's own mode.
- **Foreign keys on, secure delete on.** ``secure_delete`` zeroes freed pages: a burned
  record's sealed key and ciphertext must not linger in the file.
- **Threads.** A :class:`Database` has one connection, shared by the threads of the
  process (``check_same_thread=False``), and one re-entrant lock. A write holds the lock
  from ``BEGIN`` to ``COMMIT``; reads (:meth:`Database.query`, :meth:`Database.one`) take
  it too and fetch every row before releasing it, so no thread ever sees another
  thread's half-done transaction or interleaves statements inside it.

Schema versions are :mod:`healthnft.store.migrations`' job; this module only connects.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from healthnft.errors import Unavailable

#: How long a write waits for another process's write transaction before giving up.
BUSY_TIMEOUT_S = 30.0

#: The in-memory database (tests, and stores that need no file).
MEMORY = ":memory:"


def connect(path: Path | str) -> sqlite3.Connection:
    """A raw connection to ``path`` under the policy (see the module docstring).

    ``isolation_level=None``: the module never opens transactions behind our back; only
    :meth:`Database.write` does, explicitly.
    """
    if str(path) != MEMORY:
        Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _create_private(Path(path))
    conn = sqlite3.connect(
        str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA secure_delete = ON")
    return conn


def _create_private(path: Path) -> None:
    """Create ``path`` empty and 0600 if it does not exist (an empty file is an empty
    SQLite database): SQLite itself would create it with the umask's mode."""
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class Database:
    """One SQLite file under the policy: a shared connection, a lock, one write door."""

    def __init__(self, path: Path | str) -> None:
        self.path = path if str(path) == MEMORY else Path(path)
        self._conn = connect(path)
        self._lock = threading.RLock()
        self._depth = 0

    @property
    def connection(self) -> sqlite3.Connection:
        """The raw connection, for code that must hand it on (hold :attr:`lock` to use it)."""
        return self._conn

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    @property
    def name(self) -> str:
        """The file's name, for messages (never its contents)."""
        return str(self.path)

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: ``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` on error.

        Re-entrant: a nested block is a ``SAVEPOINT`` inside the outer transaction.
        """
        with self._lock:
            depth = self._depth
            if depth == 0:
                self._begin()
            else:
                self._conn.execute(f"SAVEPOINT s{depth}")
            self._depth += 1
            try:
                yield self._conn
            except BaseException:
                self._depth -= 1
                # Some errors (SQLITE_FULL, IOERR, NOMEM…) already rolled the whole
                # transaction back: then there is nothing left to undo here.
                if self._conn.in_transaction:
                    if depth == 0:
                        self._conn.execute("ROLLBACK")
                    else:
                        self._conn.execute(f"ROLLBACK TO s{depth}")
                        self._conn.execute(f"RELEASE s{depth}")
                raise
            self._depth -= 1
            if depth == 0:
                self._conn.execute("COMMIT")
            else:
                self._conn.execute(f"RELEASE s{depth}")

    def _begin(self) -> None:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise Unavailable(
                    f"{self.name} is busy: another process held its write lock for more "
                    f"than {BUSY_TIMEOUT_S:.0f} s; try again"
                ) from None
            raise

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        """Every row of one ``SELECT`` (fetched under the lock)."""
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def one(self, sql: str, args: Sequence[Any] = ()) -> tuple | None:
        """The first row of one ``SELECT``, or None."""
        with self._lock:
            return self._conn.execute(sql, args).fetchone()

    def scalar(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """The first column of the first row (None when there is no row)."""
        row = self.one(sql, args)
        return row[0] if row else None

    def pragma(self, name: str) -> Any:
        """The value of ``PRAGMA name`` (e.g. ``user_version``, ``journal_mode``)."""
        return self.scalar(f"PRAGMA {name}")

    @property
    def user_version(self) -> int:
        return int(self.pragma("user_version"))

    def checkpoint(self) -> None:
        """Fold the WAL into the database, so deleted (zeroed) pages do not linger in it."""
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
