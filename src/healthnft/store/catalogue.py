"""The catalogue: which participants this home knows, and which token is which record.

Tables ``participants`` and ``records`` of ``index.sqlite``. A record row holds what a
wallet needs to find, open and verify a record without scanning the chain: the token
id, the record's commitment, the ciphertext's digest, the DEK sealed under its key, the
Merkle proof, and private metadata (type, category, date) that never goes on chain.
Rows are *written* by the mint journal (:mod:`healthnft.store.journal`), with their
batch; a record whose batch is not ``minted`` is invisible here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from healthnft.store.connection import Database


@dataclass(frozen=True)
class Participant:
    address: str
    kind: str
    label: str
    enc_key: bytes


@dataclass(frozen=True)
class RecordRow:
    token_id: int
    batch_ref: bytes
    record_key: bytes
    owner: str
    issuer: str
    commitment: bytes
    blob_digest: bytes
    sealed_dek: bytes
    proof: bytes
    resource_type: str
    category: str
    effective_date: str | None
    status: str
    key_ref: bytes | None = None  # set when re-keyed (transfer); else the batch's key

    @property
    def key_id(self) -> bytes:
        """Which wrapped key opens this record's DEK (batch_keys.batch_ref)."""
        return self.key_ref or self.batch_ref


RECORD_FIELDS: tuple[str, ...] = tuple(RecordRow.__dataclass_fields__)
_R_COLS = ", ".join("r." + c for c in RECORD_FIELDS)
_PARTICIPANT = "SELECT address, kind, label, enc_key FROM participants"


class Catalogue:
    """Participants and minted records of one home (over its ``index.sqlite``)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- participants -----------------------------------------------------

    def add_participant(self, p: Participant) -> None:
        with self._db.write() as c:
            c.execute(
                "INSERT OR REPLACE INTO participants (address, kind, label, enc_key, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (p.address, p.kind, p.label, p.enc_key, time.time()),
            )

    def participant(self, address: str) -> Participant | None:
        row = self._db.one(_PARTICIPANT + " WHERE lower(address) = lower(?)", (address,))
        return Participant(*row) if row else None

    def participant_by_label(self, label: str, kind: str | None = None) -> Participant | None:
        sql, args = _PARTICIPANT + " WHERE label = ?", (label,)
        if kind:
            sql, args = sql + " AND kind = ?", (label, kind)
        row = self._db.one(sql, args)
        return Participant(*row) if row else None

    def participants(self, kind: str | None = None) -> list[Participant]:
        if kind:
            rows = self._db.query(_PARTICIPANT + " WHERE kind = ? ORDER BY created", (kind,))
        else:
            rows = self._db.query(_PARTICIPANT + " ORDER BY created")
        return [Participant(*r) for r in rows]

    # -- records ------------------------------------------------------------

    def record(self, token_id: int) -> RecordRow | None:
        """A minted record by token id (unminted batches are invisible)."""
        row = self._db.one(
            f"SELECT {_R_COLS} FROM records r JOIN batches b ON b.batch_ref = r.batch_ref "
            "WHERE r.token_id = ? AND b.state = 'minted'",
            (token_id,),
        )
        return RecordRow(*row) if row else None

    def all_records(self) -> list[RecordRow]:
        """Every minted record of this home, burned ones included (``doctor``)."""
        rows = self._db.query(
            f"SELECT {_R_COLS} FROM records r JOIN batches b ON b.batch_ref = r.batch_ref "
            "WHERE b.state = 'minted' ORDER BY r.token_id"
        )
        return [RecordRow(*r) for r in rows]

    def all_token_ids(self) -> set[int]:
        """Every token id the index has a row for, minted or still on its way."""
        return {r[0] for r in self._db.query("SELECT token_id FROM records")}

    def records_of(self, owner: str) -> list[RecordRow]:
        rows = self._db.query(
            f"SELECT {_R_COLS} FROM records r JOIN batches b ON b.batch_ref = r.batch_ref "
            "WHERE lower(r.owner) = lower(?) AND b.state = 'minted' ORDER BY r.token_id",
            (owner,),
        )
        return [RecordRow(*r) for r in rows]

    def token_with_record_key(self, record_key: bytes) -> int | None:
        """The token catalogued for ``record_key`` (the minter's de-duplication key)."""
        row = self._db.one("SELECT token_id FROM records WHERE record_key = ?", (record_key,))
        return int(row[0]) if row else None

    def known_record_keys(self, keys: Iterable[bytes]) -> set[bytes]:
        """Which of ``keys`` belong to records already catalogued (any batch state)."""
        keys = list(keys)
        found: set[bytes] = set()
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            q = ",".join("?" * len(chunk))
            found.update(
                r[0]
                for r in self._db.query(
                    f"SELECT record_key FROM records WHERE record_key IN ({q})", chunk
                )
            )
        return found

    def set_status(self, token_id: int, status: str) -> None:
        with self._db.write() as c:
            c.execute("UPDATE records SET status = ? WHERE token_id = ?", (status, token_id))

    def retired_before(self, token_id: int) -> list[int]:
        """Ids below ``token_id`` whose records are no longer active (superseded or burned).

        The candidates a correction ``token_id`` may supersede: the chain links
        old to new only, and these few rows spare a scan of its event log.
        """
        rows = self._db.query(
            "SELECT token_id FROM records WHERE token_id < ? AND status != 'active' "
            "ORDER BY token_id DESC",
            (token_id,),
        )
        return [r[0] for r in rows]

    def shred(self, token_id: int) -> bytes | None:
        """Burn: forget the record's sealed DEK, its custodian shares and any staged
        transfer, in one transaction; returns its blob digest to delete (None: unknown)."""
        with self._db.write() as c:
            row = c.execute(
                "SELECT blob_digest FROM records WHERE token_id = ?", (token_id,)
            ).fetchone()
            if row is None:
                return None
            c.execute(
                "UPDATE records SET sealed_dek = x'', status = 'burned' WHERE token_id = ?",
                (token_id,),
            )
            c.execute("DELETE FROM custodian_shares WHERE token_id = ?", (token_id,))
            c.execute("DELETE FROM staged_transfers WHERE token_id = ?", (token_id,))
        return row[0]

    def counts(self) -> dict[str, int]:
        """Totals for summaries: minted records and batches, unfinished batches."""
        scalar = self._db.scalar
        return {
            "records": scalar(
                "SELECT count(*) FROM records r JOIN batches b ON b.batch_ref = r.batch_ref "
                "WHERE b.state = 'minted'"
            ),
            "batches": scalar("SELECT count(*) FROM batches WHERE state = 'minted'"),
            "unfinished": scalar("SELECT count(*) FROM batches WHERE state != 'minted'"),
            "all_record_rows": scalar("SELECT count(*) FROM records"),
        }
