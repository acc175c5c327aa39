"""Schema versions: a ladder of steps per database, over ``PRAGMA user_version``.

Each SQLite file of a home has an ordered list of steps; step *n* takes the file from
version *n-1* to version *n*, and the version lives in the file's header
(``PRAGMA user_version``, 0 in a file nobody versioned). Opening a file runs the
steps it is missing, each in one write transaction that also sets the new version, so
a crash leaves the file at the last finished step and the next open carries on. A file
whose version is *newer* than the ladder was written by a later healthnft: it is
refused with :class:`~healthnft.errors.Conflict` rather than misread.

To change a schema, append a step; never edit a released one. The ladders themselves
live in :mod:`healthnft.store.schema`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from healthnft.errors import Conflict
from healthnft.store.connection import Database

#: A step's work: DDL and data moves on the connection, inside the step's transaction.
Apply = Callable[[sqlite3.Connection], None]


@dataclass(frozen=True)
class Step:
    """One rung: what it does (for humans) and the code that does it."""

    summary: str
    apply: Apply


@dataclass(frozen=True)
class Ladder:
    """The ordered steps of one kind of database (named after its file)."""

    name: str
    steps: tuple[Step, ...]

    @property
    def latest(self) -> int:
        return len(self.steps)


def sql_step(summary: str, script: str) -> Step:
    """A step that runs the statements of ``script`` one by one.

    (Not ``executescript``: it commits any open transaction first, which would break
    the step's all-or-nothing.) Statements are split on ``;``: keep them free of
    semicolons in literals and of triggers.
    """
    statements = [s.strip() for s in script.split(";") if s.strip()]

    def apply(conn: sqlite3.Connection) -> None:
        for statement in statements:
            conn.execute(statement)

    return Step(summary, apply)


def migrate(db: Database, ladder: Ladder) -> list[int]:
    """Bring ``db`` to ``ladder.latest``; return the versions applied (empty: up to date).

    Safe when several processes open the same file at once: each step re-reads the
    version inside its ``BEGIN IMMEDIATE`` transaction and skips what another did.
    """
    _refuse_newer(db, ladder, db.user_version)
    applied: list[int] = []
    for version, step in enumerate(ladder.steps, start=1):
        if db.user_version >= version:
            continue
        with db.write() as conn:
            current = int(conn.execute("PRAGMA user_version").fetchone()[0])
            _refuse_newer(db, ladder, current)
            if current >= version:
                continue
            if current != version - 1:  # pragma: no cover - steps run in order
                raise Conflict(f"{db.name}: schema version {current} skipped a step")
            step.apply(conn)
            conn.execute(f"PRAGMA user_version = {version}")
        applied.append(version)
    return applied


def open_database(path: Path | str, ladder: Ladder) -> Database:
    """Open ``path`` under the connection policy and migrate it to the ladder's latest."""
    db = Database(path)
    try:
        migrate(db, ladder)
    except BaseException:
        db.close()
        raise
    return db


def _refuse_newer(db: Database, ladder: Ladder, version: int) -> None:
    if version > ladder.latest:
        raise Conflict(
            f"{db.name} has schema version {version}, newer than this healthnft knows for "
            f"{ladder.name} (up to {ladder.latest}): it was written by a later healthnft; "
            "upgrade healthnft to open this home"
        )
