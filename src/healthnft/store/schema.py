"""The ladders: every schema version of every SQLite file of a home.

``index.sqlite`` (the catalogue, the mint journal, custody, transfers, derivative links,
request reasons, challenges):

1. *adopt*: today's tables, exactly as healthnft wrote them before files had a version
   (``CREATE TABLE IF NOT EXISTS``: a home written then keeps every row; a fresh file
   gets them all). A table that exists but lacks a column this code reads is refused
   with :class:`~healthnft.errors.Conflict` instead of failing later.
2. ``challenges``: one-time presentation challenges (:mod:`healthnft.store.challenges`),
   until now a separate ``challenges.sqlite``.
3. ``operations``: state-changing calls by idempotency key, with the signed transaction
   kept before it is sent (:mod:`healthnft.store.operations`).
4. ``chain_events``, ``event_blocks``: the contracts' events, indexed from the chain's
   logs by block range (:mod:`healthnft.ledger.events`).
5. ``share_deliveries`` (an issuer's record of which batch's shares reached which remote
   custodian) and ``held_shares`` (a custodian home's own shares, as delivered to it):
   :mod:`healthnft.store.custody`, :mod:`healthnft.store.held`.
6. ``access_logs``: a custodian's signed ``log_access`` transactions, kept before they
   are sent and until their receipt is confirmed (:mod:`healthnft.store.accesslogs`).

``vault.sqlite`` (ciphertexts): 1. *adopt* ``blobs``. ``chain.sqlite`` (the embedded
chain's key-value store): 1. *adopt* ``kv``. ``drugs.sqlite`` (a manufacturer's packs:
salts and Merkle trees, :mod:`healthnft.store.serials`): 1. ``drug_batches``,
``drug_serials``, ``drug_tree``.

Append a step to change a schema; never edit a released one.
"""

from __future__ import annotations

import sqlite3

from healthnft.errors import Conflict
from healthnft.store.migrations import Ladder, Step, sql_step

# Version 1 of index.sqlite: the schema of vault/catalog.py and vault/derivatives.py as
# they were when versions began. Do not edit: a later change is a new step.
_INDEX_V1 = """
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

CREATE TABLE IF NOT EXISTS derivatives (
    derived   INTEGER PRIMARY KEY,
    original  INTEGER NOT NULL,
    method    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS derivatives_original ON derivatives (original);
"""

#: The columns this code reads, per table of version 1 (what adopting checks).
_INDEX_V1_COLUMNS: dict[str, tuple[str, ...]] = {
    "participants": ("address", "kind", "label", "enc_key", "created"),
    "batches": ("batch_ref", "issuer", "owner", "start_token", "count", "root", "state",
                "raw_tx", "tx_hash", "nonce", "chain_batch_id", "gas_used", "created"),
    "batch_keys": ("batch_ref", "reader", "wrapped"),
    "records": ("token_id", "batch_ref", "record_key", "owner", "issuer", "commitment",
                "blob_digest", "sealed_dek", "proof", "resource_type", "category",
                "effective_date", "status", "key_ref"),
    "custodian_keys": ("key_ref", "custodian", "wrapped"),
    "custodian_shares": ("token_id", "custodian", "key_ref", "sealed_share"),
    "request_reasons": ("request_id", "reason"),
    "staged_transfers": ("token_id", "new_owner", "key_ref", "blob_digest", "sealed_dek"),
    "record_blobs": ("token_id", "key_ref", "digest"),
    "derivatives": ("derived", "original", "method"),
}  # fmt: skip

_INDEX_V2 = """
CREATE TABLE IF NOT EXISTS challenges (
    challenge TEXT PRIMARY KEY,
    domain TEXT NOT NULL,
    expires REAL NOT NULL,
    used INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS challenges_expires ON challenges(expires);
"""


_INDEX_V3 = """
CREATE TABLE IF NOT EXISTS operations (
    key TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    raw_tx BLOB NOT NULL,
    tx_hash BLOB NOT NULL,
    nonce INTEGER NOT NULL,
    result TEXT,
    created REAL NOT NULL
);
"""


_INDEX_V4 = """
CREATE TABLE IF NOT EXISTS chain_events (
    block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    block_hash BLOB NOT NULL,
    tx_hash BLOB NOT NULL,
    address TEXT NOT NULL,
    topic0 BLOB NOT NULL,
    topic1 BLOB,
    topic2 BLOB,
    topic3 BLOB,
    data BLOB NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX IF NOT EXISTS chain_events_t1 ON chain_events(topic0, topic1);
CREATE INDEX IF NOT EXISTS chain_events_t2 ON chain_events(topic0, topic2);
CREATE INDEX IF NOT EXISTS chain_events_t3 ON chain_events(topic0, topic3);
CREATE TABLE IF NOT EXISTS event_blocks (
    block_number INTEGER PRIMARY KEY,
    block_hash BLOB NOT NULL
)
"""


_INDEX_V5 = """
CREATE TABLE IF NOT EXISTS share_deliveries (
    batch_ref BLOB NOT NULL,
    custodian TEXT NOT NULL,
    delivered REAL NOT NULL,
    PRIMARY KEY (batch_ref, custodian)
);
CREATE TABLE IF NOT EXISTS held_shares (
    token_id INTEGER NOT NULL,
    key_ref BLOB NOT NULL,
    wrapped_key BLOB NOT NULL,
    sealed_share BLOB NOT NULL,
    commitment BLOB NOT NULL,
    category TEXT NOT NULL,
    issuer TEXT NOT NULL,
    original INTEGER,
    received REAL NOT NULL,
    PRIMARY KEY (token_id, key_ref)
);
"""


def _adopt_index(conn: sqlite3.Connection) -> None:
    require_columns(conn, "index.sqlite", _INDEX_V1_COLUMNS)  # before indexes refer to them
    sql_step("", _INDEX_V1).apply(conn)
    require_columns(conn, "index.sqlite", _INDEX_V1_COLUMNS)


_INDEX_V6 = """
CREATE TABLE IF NOT EXISTS access_logs (
    release_id TEXT PRIMARY KEY,
    grant_id INTEGER NOT NULL,
    token_id INTEGER NOT NULL,
    raw BLOB NOT NULL,
    tx_hash BLOB NOT NULL,
    nonce INTEGER NOT NULL,
    state TEXT NOT NULL,
    created REAL NOT NULL,
    sent REAL NOT NULL,
    settled REAL,
    block_number INTEGER,
    attempts INTEGER NOT NULL DEFAULT 1,
    error TEXT
);
CREATE INDEX IF NOT EXISTS access_logs_state ON access_logs(state)
"""


def require_columns(conn: sqlite3.Connection, file: str,
                    tables: dict[str, tuple[str, ...]]) -> None:  # fmt: skip
    """Refuse a file whose tables lack a column this code reads (an unknown layout).

    Tables that do not exist (yet) pass: creating them is the step's job.
    """
    for table, wanted in tables.items():
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if not have:
            continue
        missing = [c for c in wanted if c not in have]
        if missing:
            raise Conflict(
                f"{file}: table {table} lacks column(s) {', '.join(missing)}: this home was "
                "written by a healthnft this version cannot adopt"
            )


INDEX = Ladder(
    "index.sqlite",
    (
        Step("adopt the unversioned catalogue, journal and derivative links", _adopt_index),
        sql_step("one-time presentation challenges move into the index", _INDEX_V2),
        sql_step("state-changing calls remembered by idempotency key", _INDEX_V3),
        sql_step("the contracts' events, indexed from the chain's logs by block range",
                 _INDEX_V4),
        sql_step("remote custodians: deliveries made, shares held", _INDEX_V5),
        sql_step("a custodian's access-log transactions, kept until confirmed", _INDEX_V6),
    ),
)


def _adopt_vault(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS blobs (digest BLOB PRIMARY KEY, data BLOB NOT NULL)")
    require_columns(conn, "vault.sqlite", {"blobs": ("digest", "data")})


_VAULT_V2 = """
CREATE TABLE IF NOT EXISTS key_cards (
    digest BLOB PRIMARY KEY,
    token_id INTEGER NOT NULL,
    card BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS key_cards_token ON key_cards(token_id);
"""

VAULT = Ladder("vault.sqlite", (
    Step("adopt the unversioned blob table", _adopt_vault),
    sql_step("key cards: what opens each ciphertext, kept beside it", _VAULT_V2),
))  # fmt: skip


def _adopt_chain(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL)")
    require_columns(conn, "chain.sqlite", {"kv": ("k", "v")})


CHAIN = Ladder("chain.sqlite", (Step("adopt the unversioned key-value table", _adopt_chain),))


_DRUGS_V1 = """
CREATE TABLE IF NOT EXISTS drug_batches (
    batch_key BLOB PRIMARY KEY,
    gtin TEXT NOT NULL,
    lot TEXT NOT NULL,
    expiry TEXT NOT NULL,
    root BLOB NOT NULL,
    count INTEGER NOT NULL,
    manufacturer TEXT NOT NULL,
    created REAL NOT NULL,
    commissioned_tx BLOB,
    UNIQUE (gtin, lot)
);
CREATE TABLE IF NOT EXISTS drug_serials (
    gtin TEXT NOT NULL,
    serial TEXT NOT NULL,
    batch_key BLOB NOT NULL REFERENCES drug_batches(batch_key),
    idx INTEGER NOT NULL,
    salt BLOB NOT NULL,
    PRIMARY KEY (gtin, serial)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS drug_tree (
    batch_key BLOB NOT NULL REFERENCES drug_batches(batch_key),
    level INTEGER NOT NULL,
    chunk INTEGER NOT NULL,
    nodes BLOB NOT NULL,
    PRIMARY KEY (batch_key, level, chunk)
) WITHOUT ROWID
"""

DRUGS = Ladder("drugs.sqlite", (
    sql_step("a manufacturer's batches, pack salts and Merkle trees", _DRUGS_V1),
))  # fmt: skip
