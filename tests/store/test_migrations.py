"""The ladder: a fresh file gets the latest schema, a newer one is refused, steps are atomic."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from healthnft.errors import Conflict
from healthnft.store import CHAIN, INDEX, VAULT, Database, Ladder, Step, migrate, open_database
from healthnft.store import sql_step as step


def _tables(db: Database) -> set[str]:
    return {r[0] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")}


LADDER = Ladder("x.sqlite", (
    step("one", "CREATE TABLE a (k INTEGER PRIMARY KEY)"),
    step("two", "CREATE TABLE b (k INTEGER PRIMARY KEY); INSERT INTO b VALUES (1)"),
))  # fmt: skip


def test_a_fresh_file_gets_every_step(tmp_path: Path) -> None:
    db = Database(tmp_path / "x.sqlite")
    assert db.user_version == 0
    assert migrate(db, LADDER) == [1, 2]
    assert db.user_version == 2 and {"a", "b"} <= _tables(db)
    assert migrate(db, LADDER) == []
    db.close()


def test_only_the_missing_steps_run(tmp_path: Path) -> None:
    db = Database(tmp_path / "x.sqlite")
    migrate(db, Ladder("x.sqlite", LADDER.steps[:1]))
    assert db.user_version == 1
    assert migrate(db, LADDER) == [2]
    assert db.query("SELECT k FROM b") == [(1,)]
    db.close()


@pytest.mark.parametrize("ladder", [INDEX, VAULT, CHAIN], ids=lambda lad: lad.name)
def test_the_home_files_open_at_their_latest_version(tmp_path: Path, ladder: Ladder) -> None:
    db = open_database(tmp_path / ladder.name, ladder)
    assert db.user_version == ladder.latest >= 1
    db.close()
    db = open_database(tmp_path / ladder.name, ladder)  # again: nothing to do
    assert migrate(db, ladder) == []
    db.close()


def test_a_file_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    open_database(path, INDEX).close()
    conn = sqlite3.connect(str(path))
    conn.execute(f"PRAGMA user_version = {INDEX.latest + 1}")
    conn.close()
    with pytest.raises(Conflict) as caught:
        open_database(path, INDEX)
    message = str(caught.value)
    assert str(path) in message
    assert f"schema version {INDEX.latest + 1}" in message and "upgrade healthnft" in message
    assert caught.value.code == "conflict"


def test_a_failing_step_leaves_the_file_at_the_step_before(tmp_path: Path) -> None:
    def boom(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE c (k INTEGER)")
        conn.execute("INSERT INTO a VALUES (7)")
        raise RuntimeError("crash in the middle of step 3")

    db = Database(tmp_path / "x.sqlite")
    with pytest.raises(RuntimeError):
        migrate(db, Ladder("x.sqlite", (*LADDER.steps, Step("three", boom))))
    assert db.user_version == 2
    assert "c" not in _tables(db) and db.query("SELECT * FROM a") == []
    db.close()


def test_two_openers_at_once_run_each_step_once(tmp_path: Path) -> None:
    first, second = Database(tmp_path / "x.sqlite"), Database(tmp_path / "x.sqlite")
    assert migrate(first, LADDER) == [1, 2]
    assert migrate(second, LADDER) == []  # sees the version inside its own transaction
    assert second.query("SELECT k FROM b") == [(1,)]
    first.close()
    second.close()
