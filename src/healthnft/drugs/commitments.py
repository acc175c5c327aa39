"""What a medicine pack is on chain: a salted commitment, a leaf under its batch's root.

For a pack with GTIN ``g`` (14 digits), lot ``l``, expiry ``e`` (YYMMDD, as on the
pack), serial ``s`` and a random 16-byte ``salt``::

    commitment = sha256("healthnft/serial/v1|" g "|" l "|" e "|" s "|" salt)
    leaf       = keccak(0x00 || commitment)[:16]   each node in a 32-byte word,
    node       = keccak(left || right)[:16]        top 16 bytes zero; leaves in index
                                                   order; a missing sibling is zero
    batch_key  = keccak("healthnft/batch/v1|" g "|" l)

and the ``DrugBatchRegistry`` contract stores, per batch, ``batch_key -> root``.
"|" never occurs in a field (GS1 AI 10 and 21 use the 82-character set, which lacks it,
and GTINs and dates are digits), so the encoding is unambiguous.

Why each choice:

- **GTIN, lot and expiry inside the commitment**, not only the serial. A counterfeiter
  copies genuine serials (they are printed on every pack) onto fake packs, or relabels
  an expired lot. Because the leaf binds all four fields, a pack whose serial exists but
  whose lot or expiry differ from what was commissioned does not hash to a leaf of the
  root: the verifier proves ``mismatch`` against the chain, from the salt and proof the
  manufacturer's node hands out, without trusting that node's word; and the
  manufacturer cannot later move a serial to another lot or date (the root fixes them).
  A serial alone would only say "this serial exists somewhere".
- **A salt per pack.** Serials are often sequential or short. A dispense publishes the
  pack's commitment; without a salt anyone could test guessed serials against it, and
  learn which serials (hence roughly how many packs) exist. 16 random bytes (128 bits)
  are out of reach of any search, and 100,000 of them are 1.6 MB for the manufacturer
  to keep (records use 32 because the salt there guards health data for decades).
- **sha256 for the commitment, keccak for the tree.** The commitment is computed off
  chain by every verifier (sha256 is in every standard library and what GS1/EPCIS
  tooling hashes with); the tree is checked on chain, where keccak is the cheap hash.
  A leaf hashes 33 bytes and a node 64, so a node never passes for a leaf. Nodes are
  128 bits (a proof node's calldata costs 320 gas, not 512): forging a pack is a 128-bit
  second preimage, out of reach (see the contract).
- **Proofs read with the leaf's index**, not sorted pairs: the contract keys a pack's
  state by its index, two packs to a storage word (what brings a dispense under
  60,000 gas on average; see the contract and docs/drugs.md). The index is canonical
  (below ``2**depth``), so a pack has one state.
- **One root per batch, nothing per pack at commissioning.** Commissioning costs one
  transaction whatever the count, and the root says nothing of the count. (A dispense
  reveals a proof, whose length is about log2 of the batch size: the size leaks to
  within a factor of two; its leaf index bounds the size from below; and dispense
  events count sold packs; see the contract.)
- **batch_key hashes GTIN and lot** so the chain does not list products and lots in
  clear; it is not a secret (both are printed on the pack: whoever holds one computes
  its key), and it need not be: what must stay private is volumes and serials.

The manufacturer keeps salts and the tree's levels (:class:`PackBook`, in its home's
``drugs.sqlite``) and answers verification requests with :meth:`PackBook.find`.
"""

from __future__ import annotations

import calendar
import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from healthnft.errors import InvalidInput, NotFound
from healthnft.ledger.drugs import pack_leaf, pack_proof, proof_positions, proves, tree_levels
from healthnft.ledger.merkle import keccak
from healthnft.store.serials import DrugBatchRow, SerialBook

SERIAL_DOMAIN = b"healthnft/serial/v1|"
BATCH_DOMAIN = b"healthnft/batch/v1|"
SALT_BYTES = 16
#: GS1 AI 10 (lot) and AI 21 (serial): 1 to 20 characters of GS1's 82-character set.
_GS1_CSET82 = re.compile(r"[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}")


# -- the fields ---------------------------------------------------------------------


def normalize_gtin(gtin: str) -> str:
    """A GTIN-8, -12, -13 or -14 as 14 digits, its check digit verified."""
    digits = gtin.strip()
    if not digits.isascii() or not digits.isdigit() or len(digits) not in (8, 12, 13, 14):
        raise InvalidInput(f"a GTIN is 8, 12, 13 or 14 digits, not {gtin!r}")
    digits = digits.rjust(14, "0")
    body, check = digits[:-1], int(digits[-1])
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(body))
    if (10 - total % 10) % 10 != check:
        raise InvalidInput(f"GTIN {gtin} has a wrong check digit")
    return digits


def check_lot(lot: str) -> str:
    if not _GS1_CSET82.fullmatch(lot):
        raise InvalidInput(f"a lot is 1 to 20 GS1 characters (letters, digits, -./ ...), "
                           f"not {lot!r}")  # fmt: skip
    return lot


def check_serial(serial: str) -> str:
    if not _GS1_CSET82.fullmatch(serial):
        raise InvalidInput(f"a serial is 1 to 20 GS1 characters (letters, digits, -./ ...), "
                           f"not {serial!r}")  # fmt: skip
    return serial


def expiry_date(yymmdd: str, today: date | None = None) -> date:
    """The last day a pack may be used, from GS1 AI 17 (``DD`` = 00: the month's last
    day). The century follows GS1 General Specifications 7.12: the year closest to
    ``today`` within 49 years back and 50 ahead."""
    if len(yymmdd) != 6 or not yymmdd.isascii() or not yymmdd.isdigit():
        raise InvalidInput(f"an expiry is YYMMDD, not {yymmdd!r}")
    yy, mm, dd = int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:])
    now = today or datetime.now(UTC).date()
    century = now.year - now.year % 100
    diff = yy - now.year % 100
    if diff >= 51:
        century -= 100
    elif diff <= -50:
        century += 100
    year = century + yy
    if not 1 <= mm <= 12:
        raise InvalidInput(f"expiry {yymmdd} has no month {mm}")
    last = calendar.monthrange(year, mm)[1]
    if dd > last:
        raise InvalidInput(f"expiry {yymmdd}: {year}-{mm:02d} has no day {dd}")
    return date(year, mm, dd or last)


def expiry_time(yymmdd: str, today: date | None = None) -> int:
    """The unix time from which a pack is expired: the start (UTC) of the day after its
    expiry date (the contract compares block time with it)."""
    d = expiry_date(yymmdd, today)
    return calendar.timegm(d.timetuple()) + 86400


def batch_key(gtin: str, lot: str) -> bytes:
    """The batch's key on chain (GTIN normalized to 14 digits)."""
    return keccak(BATCH_DOMAIN + f"{normalize_gtin(gtin)}|{check_lot(lot)}".encode())


def commitment(gtin: str, lot: str, expiry: str, serial: str, salt: bytes) -> bytes:
    """The pack's commitment (fields as on the pack; the GTIN is normalized)."""
    if len(salt) != SALT_BYTES:
        raise InvalidInput(f"a pack's salt is {SALT_BYTES} bytes")
    expiry_date(expiry)
    text = f"{normalize_gtin(gtin)}|{check_lot(lot)}|{expiry}|{check_serial(serial)}|"
    return hashlib.sha256(SERIAL_DOMAIN + text.encode() + salt).digest()


def leaf(commitment_: bytes) -> bytes:
    return pack_leaf(commitment_)


def in_batch(commitment_: bytes, index: int, proof: list[bytes], root: bytes) -> bool:
    """Whether ``commitment_`` is the pack at leaf ``index`` under ``root`` (what the
    contract checks)."""
    return proves(commitment_, index, proof, root)


# -- a batch ------------------------------------------------------------------------


@dataclass(frozen=True)
class PackProof:
    """One pack as its manufacturer answers for it: enough for anyone to check it
    against the chain (recompute the commitment, follow the proof to the root)."""

    gtin: str
    lot: str
    expiry: str
    serial: str
    salt: bytes
    batch_key: bytes
    index: int
    proof: list[bytes]

    @property
    def commitment(self) -> bytes:
        return commitment(self.gtin, self.lot, self.expiry, self.serial, self.salt)

    def matches(self, lot: str, expiry: str) -> bool:
        """Whether a scanned lot and expiry are the commissioned ones."""
        return (lot, expiry) == (self.lot, self.expiry)


@dataclass(frozen=True)
class BatchTree:
    """A batch ready to commission: its packs' salts, in leaf order, and its tree."""

    gtin: str
    lot: str
    expiry: str
    serials: list[str]
    salts: list[bytes]
    levels: list[list[bytes]] = field(repr=False)

    @property
    def batch_key(self) -> bytes:
        return batch_key(self.gtin, self.lot)

    @property
    def root(self) -> bytes:
        return self.levels[-1][0]

    @property
    def count(self) -> int:
        return len(self.serials)

    @property
    def expiry_time(self) -> int:
        return expiry_time(self.expiry)

    def pack(self, index: int) -> PackProof:
        return PackProof(self.gtin, self.lot, self.expiry, self.serials[index],
                         self.salts[index], self.batch_key, index,
                         pack_proof(self.levels, index))  # fmt: skip


def build_batch(gtin: str, lot: str, expiry: str, serials: list[str],
                salts: list[bytes] | None = None) -> BatchTree:  # fmt: skip
    """Check the fields, draw a salt per pack (unless given) and build the tree.

    Every field is checked before anything is hashed (:class:`InvalidInput`: a bad
    GTIN check digit, an impossible expiry, a serial outside GS1's characters, a serial
    twice). 100,000 packs take well under a second on one core."""
    g, lot = normalize_gtin(gtin), check_lot(lot)
    expiry_date(expiry)
    if not serials:
        raise InvalidInput("a batch needs at least one serial")
    seen: set[str] = set()
    for s in serials:
        check_serial(s)
        if s in seen:
            raise InvalidInput(f"serial {s} appears twice in the batch")
        seen.add(s)
    if salts is None:
        pool = os.urandom(SALT_BYTES * len(serials))
        salts = [pool[i:i + SALT_BYTES] for i in range(0, len(pool), SALT_BYTES)]
    elif len(salts) != len(serials) or any(len(x) != SALT_BYTES for x in salts):
        raise InvalidInput(f"one {SALT_BYTES}-byte salt per serial")
    head = SERIAL_DOMAIN + f"{g}|{lot}|{expiry}|".encode()
    sha = hashlib.sha256
    leaves = [pack_leaf(sha(head + s.encode() + b"|" + salt).digest())
              for s, salt in zip(serials, salts, strict=True)]  # fmt: skip
    return BatchTree(g, lot, expiry, list(serials), list(salts), tree_levels(leaves))


# -- the manufacturer's book --------------------------------------------------------


class PackBook:
    """What a manufacturer keeps of its batches (its home's ``drugs.sqlite``)."""

    def __init__(self, path: Path | str) -> None:
        self.serials = SerialBook.open(path)

    def close(self) -> None:
        self.serials.close()

    def keep(self, batch: BatchTree, manufacturer: str) -> DrugBatchRow:
        """Keep a batch before it is commissioned (a crash after the transaction must
        not lose the salts: without them no pack of the batch can ever be verified)."""
        row = DrugBatchRow(batch.batch_key, batch.gtin, batch.lot, batch.expiry, batch.root,
                           batch.count, manufacturer, time.time())  # fmt: skip
        self.serials.add_batch(row, list(zip(batch.serials, batch.salts, strict=True)),
                               batch.levels)  # fmt: skip
        return row

    def find(self, gtin: str, serial: str) -> PackProof | None:
        """The pack ``serial`` of ``gtin`` with its proof, or None (never commissioned
        here: for a verifier, ``unknown``)."""
        g = normalize_gtin(gtin)
        row = self.serials.serial(g, serial)
        if row is None:
            return None
        batch = self.serials.batch(row.batch_key)
        if batch is None:  # pragma: no cover - foreign keys keep this from happening
            raise NotFound(f"drugs.sqlite lost the batch of serial {serial}")
        path = proof_positions(batch.count, row.index)
        stored = iter(self.serials.nodes(row.batch_key, [p for p in path if p is not None]))
        proof = [bytes(32) if p is None else next(stored) for p in path]
        return PackProof(g, batch.lot, batch.expiry, serial, row.salt, row.batch_key,
                         row.index, proof)  # fmt: skip

    def batch(self, gtin: str, lot: str) -> DrugBatchRow | None:
        return self.serials.batch_by_lot(normalize_gtin(gtin), lot)

    def serials_by_commitment(self, batch_key: bytes) -> dict[bytes, str]:
        """commitment -> serial for every pack of a batch: the chain's pack events name
        commitments only, and only the manufacturer can say which serial each one is
        (what an EPCIS export of the batch's history needs). ~0.2 s for 100,000 packs."""
        batch = self.serials.batch(batch_key)
        if batch is None:
            return {}
        head = SERIAL_DOMAIN + f"{batch.gtin}|{batch.lot}|{batch.expiry}|".encode()
        return {hashlib.sha256(head + s.encode() + b"|" + salt).digest(): s
                for s, salt in self.serials.salts(batch_key)}  # fmt: skip
