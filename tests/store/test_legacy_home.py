"""A home written by the code before schema versions opens, migrates, and keeps every row.

``TODAY_INDEX_SCHEMA`` is copied verbatim from ``vault/catalog.py`` and
``vault/derivatives.py`` as they were when the store began (commit 3ca88e9): the
exact tables an existing home has, with ``user_version`` 0. Do not update it when the
schema changes: it is the past, and the ladder must keep adopting it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from healthnft.errors import Conflict
from healthnft.store import INDEX, Index, migrate
from healthnft.vault.catalog import Catalog

# vault/catalog.py _SCHEMA, verbatim
TODAY_CATALOG_SCHEMA = """
CREATE TABLE IF NOT EXISTS participants (
    address TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    label TEXT NOT NULL,
    enc_key BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS participants_label ON participants(kind, label);
CREATE TABLE IF NOT EXISTS batches (
    batch_ref BLOB PRIMARY KEY,
    issuer TEXT NOT NULL,
    owner TEXT NOT NULL,
    start_token INTEGER NOT NULL,
    count INTEGER NOT NULL,
    root BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('prepared', 'sent', 'minted')),
    raw_tx BLOB,
    tx_hash BLOB,
    nonce INTEGER,
    chain_batch_id INTEGER,
    gas_used INTEGER,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS batch_keys (
    batch_ref BLOB NOT NULL,
    reader TEXT NOT NULL,
    wrapped BLOB NOT NULL,
    PRIMARY KEY (batch_ref, reader)
);
CREATE TABLE IF NOT EXISTS records (
    token_id INTEGER PRIMARY KEY,
    batch_ref BLOB NOT NULL,
    record_key BLOB NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    issuer TEXT NOT NULL,
    commitment BLOB NOT NULL,
    blob_digest BLOB NOT NULL,
    sealed_dek BLOB NOT NULL,
    proof BLOB NOT NULL,
    resource_type TEXT NOT NULL,
    category TEXT NOT NULL,
    effective_date TEXT,
    status TEXT NOT NULL DEFAULT 'active',
    key_ref BLOB
);
CREATE TABLE IF NOT EXISTS custodian_keys (
    key_ref BLOB NOT NULL,
    custodian TEXT NOT NULL,
    wrapped BLOB NOT NULL,
    PRIMARY KEY (key_ref, custodian)
);
CREATE TABLE IF NOT EXISTS custodian_shares (
    token_id INTEGER NOT NULL,
    custodian TEXT NOT NULL,
    key_ref BLOB NOT NULL,
    sealed_share BLOB NOT NULL,
    PRIMARY KEY (token_id, custodian, key_ref)
);
CREATE TABLE IF NOT EXISTS request_reasons (
    request_id INTEGER PRIMARY KEY,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS staged_transfers (
    token_id INTEGER PRIMARY KEY,
    new_owner TEXT NOT NULL,
    key_ref BLOB NOT NULL,
    blob_digest BLOB NOT NULL,
    sealed_dek BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS record_blobs (
    token_id INTEGER NOT NULL,
    key_ref BLOB NOT NULL,
    digest BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS record_blobs_token ON record_blobs(token_id);
CREATE INDEX IF NOT EXISTS record_blobs_key ON record_blobs(key_ref);
CREATE INDEX IF NOT EXISTS records_owner ON records(owner);
CREATE INDEX IF NOT EXISTS records_batch ON records(batch_ref);

"""

# vault/derivatives.py _SCHEMA, verbatim
TODAY_DERIVATIVES_SCHEMA = """
CREATE TABLE IF NOT EXISTS derivatives (
    derived   INTEGER PRIMARY KEY,   -- the copy's token id
    original  INTEGER NOT NULL,      -- the record it was made from
    method    TEXT NOT NULL          -- e.g. 'HIPAA Safe Harbor'
);
CREATE INDEX IF NOT EXISTS derivatives_original ON derivatives (original);

"""

PATIENT = "0x00000000000000000000000000000000000000A1"
HOSPITAL = "0x00000000000000000000000000000000000000B2"
CUSTODIAN = "0x00000000000000000000000000000000000000C3"
BATCH, UNFINISHED, MOVED = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32

_TABLES = ("participants", "batches", "batch_keys", "records", "custodian_keys",
           "custodian_shares", "request_reasons", "staged_transfers", "record_blobs",
           "derivatives")  # fmt: skip


def _record(token: int, batch: bytes, status: str = "active",
            key_ref: bytes | None = None) -> tuple:  # fmt: skip
    return (token, batch, b"rk%d" % token, PATIENT, HOSPITAL, b"c%d" % token, b"d%d" % token,
            b"dek%d" % token, b"proof%d" % token, "Observation", "laboratory",
            f"2024-01-0{token}", status, key_ref)  # fmt: skip


def write_todays_home(path: Path, *, with_derivatives: bool = True) -> None:
    """An index.sqlite exactly as today's code leaves it: its DDL, its pragmas, no version."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(TODAY_CATALOG_SCHEMA)
    if with_derivatives:
        conn.executescript(TODAY_DERIVATIVES_SCHEMA)
    x = conn.execute
    x("INSERT INTO participants VALUES (?, 'patient', 'alice', x'aa', 1.0)", (PATIENT,))
    x("INSERT INTO participants VALUES (?, 'hospital', 'general', x'bb', 2.0)", (HOSPITAL,))
    x("INSERT INTO participants VALUES (?, 'custodian', 'c1', x'cc', 3.0)", (CUSTODIAN,))
    x("INSERT INTO batches VALUES (?, ?, ?, 1, 4, x'11', 'minted', NULL, x'22', 0, 7, 900, 4.0)",
      (BATCH, HOSPITAL, PATIENT))  # fmt: skip
    x("INSERT INTO batches VALUES (?, ?, ?, 5, 1, x'12', 'sent', x'99', x'23', 1, NULL, NULL, 5.0)",
      (UNFINISHED, HOSPITAL, PATIENT))  # fmt: skip
    x("INSERT INTO batch_keys VALUES (?, ?, x'5a')", (BATCH, PATIENT))
    x("INSERT INTO batch_keys VALUES (?, ?, x'5b')", (BATCH, HOSPITAL))
    x("INSERT INTO batch_keys VALUES (?, ?, x'5c')", (MOVED, PATIENT))
    q = "INSERT INTO records VALUES (" + ",".join("?" * 14) + ")"
    x(q, _record(1, BATCH))
    x(q, _record(2, BATCH, status="superseded"))
    x(q, _record(3, BATCH))
    x(q, _record(4, BATCH))
    x(q, _record(5, UNFINISHED))
    x("INSERT INTO custodian_keys VALUES (?, ?, x'6a')", (BATCH, CUSTODIAN))
    x("INSERT INTO custodian_shares VALUES (1, ?, ?, x'6b')", (CUSTODIAN, BATCH))
    x("INSERT INTO request_reasons VALUES (42, 'second opinion')")
    x("INSERT INTO staged_transfers VALUES (4, ?, ?, x'7a', x'7b')", (HOSPITAL, MOVED))
    for n in range(3):
        x("INSERT INTO record_blobs VALUES (3, ?, ?)", (BATCH, b"chunk%d" % n))
    x("INSERT INTO record_blobs VALUES (5, ?, x'8a')", (b"\x09" * 32,))  # stale: crashed mint
    if with_derivatives:
        x("INSERT INTO derivatives VALUES (3, 1, 'HIPAA Safe Harbor')")
    conn.close()


def _counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(str(path))
    try:
        return {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in _TABLES
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (t,)).fetchone()
        }
    finally:
        conn.close()


@pytest.fixture
def todays_home(tmp_path: Path) -> Path:
    path = tmp_path / "index.sqlite"
    write_todays_home(path)
    return path


def test_todays_home_has_no_version(todays_home: Path) -> None:
    conn = sqlite3.connect(str(todays_home))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    conn.close()


def test_a_home_of_today_migrates_without_losing_a_row(todays_home: Path) -> None:
    before = _counts(todays_home)
    index = Index.open(todays_home)
    try:
        assert index.db.user_version == INDEX.latest
        # participants
        cat = index.catalogue
        assert [p.label for p in cat.participants()] == ["alice", "general", "c1"]
        assert cat.participant(PATIENT.lower()).enc_key == b"\xaa"  # type: ignore[union-attr]
        assert cat.participant_by_label("general", "hospital").address == HOSPITAL  # type: ignore[union-attr]
        # records: the minted batch's four are visible, the unfinished one is not
        assert [r.token_id for r in cat.records_of(PATIENT)] == [1, 2, 3, 4]
        one = cat.record(1)
        assert one is not None and one.sealed_dek == b"dek1" and one.key_id == BATCH
        assert one.effective_date == "2024-01-01" and one.category == "laboratory"
        assert cat.record(5) is None
        assert cat.token_with_record_key(b"rk5") == 5
        assert cat.known_record_keys([b"rk1", b"rk5", b"nope"]) == {b"rk1", b"rk5"}
        assert cat.retired_before(3) == [2]
        assert cat.counts() == {"records": 4, "batches": 1, "unfinished": 1,
                                "all_record_rows": 5}  # fmt: skip
        # the mint journal
        journal = index.journal
        assert [b.batch_ref for b in journal.unfinished_batches()] == [UNFINISHED]
        sent = journal.batch(UNFINISHED)
        assert sent is not None and sent.state == "sent" and sent.raw_tx == b"\x99"
        assert journal.batch(BATCH).gas_used == 900  # type: ignore[union-attr]
        assert journal.batch_key(BATCH, HOSPITAL.lower()) == b"\x5b"
        assert journal.record_blobs(3) == [b"chunk0", b"chunk1", b"chunk2"]
        assert journal.stale_blobs() == [b"\x8a"]
        assert journal.minted_gas() == (900, 4)
        # custody, transfers, derivatives, request reasons
        assert index.custody.custodian_share(1, CUSTODIAN) == (BATCH, b"\x6a", b"\x6b")
        staged = index.transfers.staged_transfer(4)
        assert staged is not None and staged.new_owner == HOSPITAL and staged.key_ref == MOVED
        assert index.derivatives.original_of(3) == 1
        assert index.derivatives.copies_of(1) == [3]
        assert index.requests.reason(42) == "second opinion"
        # and the new table is there, empty and usable
        c = index.challenges.issue("https://verifier.example")
        index.challenges.consume(c, "https://verifier.example")
    finally:
        index.close()
    after = _counts(todays_home)
    assert {t: n for t, n in after.items() if t in before} == before


def test_opening_twice_is_a_no_op(todays_home: Path) -> None:
    Index.open(todays_home).close()
    before = _counts(todays_home)
    index = Index.open(todays_home)
    try:
        assert migrate(index.db, INDEX) == []
        assert index.db.user_version == INDEX.latest
    finally:
        index.close()
    assert _counts(todays_home) == before


def test_the_catalog_facade_reads_a_migrated_home(todays_home: Path) -> None:
    catalog = Catalog(todays_home)
    try:
        assert catalog.record(3).resource_type == "Observation"  # type: ignore[union-attr]
        assert catalog.request_reason(42) == "second opinion"
        assert catalog.staged_transfer(4)[1] == MOVED  # type: ignore[index]
        assert catalog.derivatives.original_of(3) == 1
        assert catalog.referenced_digests() >= {b"d1", b"chunk0", b"\x7a"}
    finally:
        catalog.close()


def test_a_home_that_never_made_a_copy_gets_the_derivatives_table(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    write_todays_home(path, with_derivatives=False)
    index = Index.open(path)
    try:
        assert index.derivatives.copies_of(1) == []
        index.derivatives.add(1, 3, "HIPAA Safe Harbor")
        assert index.derivatives.method_of(3) == "HIPAA Safe Harbor"
        assert index.catalogue.counts()["records"] == 4
    finally:
        index.close()


def test_an_unknown_layout_is_refused_not_misread(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    conn = sqlite3.connect(str(path))
    conn.execute("CREATE TABLE records (token_id INTEGER PRIMARY KEY, owner TEXT)")
    conn.close()
    with pytest.raises(Conflict, match=r"index\.sqlite: table records lacks column"):
        Index.open(path)
    conn = sqlite3.connect(str(path))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0  # nothing was changed
    assert (
        conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'batches'").fetchone()[0] == 0
    )
    conn.close()
