"""The connection policy: WAL, busy timeout, foreign keys, and all-or-nothing writes."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from healthnft.store import BUSY_TIMEOUT_S, Database


@pytest.fixture
def db(tmp_path: Path) -> Database:
    d = Database(tmp_path / "sub" / "x.sqlite")
    with d.write() as c:
        c.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    return d


def test_the_policy_is_on(db: Database) -> None:
    assert db.pragma("journal_mode") == "wal"
    assert db.pragma("busy_timeout") == int(BUSY_TIMEOUT_S * 1000)
    assert db.pragma("foreign_keys") == 1
    assert db.pragma("secure_delete") == 1
    assert db.pragma("synchronous") == 1  # NORMAL


def test_a_failed_write_leaves_nothing(db: Database) -> None:
    with pytest.raises(sqlite3.IntegrityError), db.write() as c:
        c.execute("INSERT INTO t VALUES (1, 'a')")
        c.execute("INSERT INTO t VALUES (2, NULL)")  # NOT NULL fails
    assert db.query("SELECT * FROM t") == []


def test_an_exception_of_the_caller_rolls_back_too(db: Database) -> None:
    with pytest.raises(RuntimeError), db.write() as c:
        c.execute("INSERT INTO t VALUES (1, 'a')")
        raise RuntimeError("crash between two writes")
    assert db.scalar("SELECT count(*) FROM t") == 0
    assert not db.connection.in_transaction


def test_a_nested_write_is_a_savepoint(db: Database) -> None:
    with db.write() as c:
        c.execute("INSERT INTO t VALUES (1, 'outer')")
        with pytest.raises(RuntimeError), db.write() as inner:
            inner.execute("INSERT INTO t VALUES (2, 'inner')")
            raise RuntimeError
        c.execute("INSERT INTO t VALUES (3, 'outer again')")
    assert db.query("SELECT k FROM t ORDER BY k") == [(1,), (3,)]


def test_a_write_takes_the_file_lock_at_begin(db: Database, tmp_path: Path) -> None:
    """BEGIN IMMEDIATE: a second writer is refused at once, readers are not blocked (WAL)."""
    other = sqlite3.connect(str(tmp_path / "sub" / "x.sqlite"), timeout=0,
                            isolation_level=None)  # fmt: skip
    with db.write() as c:
        c.execute("INSERT INTO t VALUES (1, 'a')")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        assert other.execute("SELECT count(*) FROM t").fetchone()[0] == 0  # not yet committed
    assert other.execute("SELECT count(*) FROM t").fetchone()[0] == 1
    other.close()


def test_threads_share_the_connection_one_transaction_at_a_time(db: Database) -> None:
    def writer(base: int) -> None:
        for i in range(50):
            with db.write() as c:
                c.execute("INSERT INTO t VALUES (?, 'x')", (base + i,))
                c.execute("UPDATE t SET v = 'y' WHERE k = ?", (base + i,))

    threads = [threading.Thread(target=writer, args=(n * 1000,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert db.scalar("SELECT count(*) FROM t WHERE v = 'y'") == 200


def test_a_write_in_another_process_is_waited_for(db: Database, tmp_path: Path) -> None:
    other = sqlite3.connect(str(tmp_path / "sub" / "x.sqlite"), isolation_level=None,
                            check_same_thread=False)  # fmt: skip
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1, 'other')")
    timer = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    timer.start()
    with db.write() as c:  # waits (busy timeout) instead of failing
        c.execute("INSERT INTO t VALUES (2, 'mine')")
    timer.join()
    other.close()
    assert db.scalar("SELECT count(*) FROM t") == 2
