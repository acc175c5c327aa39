"""Pack commitments and the manufacturer's book (issue 15): the fields are checked before
anything is hashed, a relabelled pack (same serial, other lot or expiry) is no leaf of
its batch, and every serial's salt and proof come back from ``drugs.sqlite``."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

from healthnft.drugs.commitments import (
    PackBook,
    batch_key,
    build_batch,
    commitment,
    expiry_date,
    expiry_time,
    in_batch,
    normalize_gtin,
)
from healthnft.errors import Conflict, InvalidInput

GTIN = "09506000134352"


def test_gtin_check_digit_and_lengths() -> None:
    assert normalize_gtin("9506000134352") == GTIN  # GTIN-13 padded to 14
    assert normalize_gtin("96385074") == "00000096385074"  # GTIN-8
    for bad in ("09506000134353", "123", "0950600013435x", ""):
        with pytest.raises(InvalidInput):
            normalize_gtin(bad)
    assert batch_key("9506000134352", "L1") == batch_key(GTIN, "L1") != batch_key(GTIN, "L2")


def test_expiry_day_zero_impossible_dates_and_century() -> None:
    assert expiry_date("280200") == date(2028, 2, 29)  # DD 00: the month's last day
    assert expiry_date("301231") == date(2030, 12, 31)
    assert expiry_date("991231", today=date(2026, 12, 3)) == date(1999, 12, 31)
    assert expiry_date("750101", today=date(2026, 12, 3)) == date(2075, 1, 1)
    assert expiry_time("301231") == expiry_time("310101") - 86400
    for bad in ("271301", "270230", "2712", "27-1-1", "270100x"):
        with pytest.raises(InvalidInput):
            expiry_date(bad)


def test_a_relabelled_pack_is_not_a_leaf_of_its_batch() -> None:
    batch = build_batch(GTIN, "LOT1", "301231", ["A1", "A2", "A3", "A4", "A5"])
    pack = batch.pack(2)
    assert in_batch(pack.commitment, 2, pack.proof, batch.root)
    for lot, expiry in (("LOT2", "301231"), ("LOT1", "311231")):
        relabelled = commitment(GTIN, lot, expiry, pack.serial, pack.salt)
        assert not in_batch(relabelled, 2, pack.proof, batch.root)
        assert not pack.matches(lot, expiry)
    assert not in_batch(commitment(GTIN, "LOT1", "301231", "A3", os.urandom(16)), 2,
                        pack.proof, batch.root)  # the salt is part of it  # fmt: skip
    # The index is part of the proof: another index, or the same one past the tree, fails.
    assert not in_batch(pack.commitment, 3, pack.proof, batch.root)
    assert not in_batch(pack.commitment, 2 + 2 ** len(pack.proof), pack.proof, batch.root)


def test_bad_batches_are_refused_before_hashing() -> None:
    for gtin, lot, expiry, serials in (
        (GTIN, "LOT|1", "301231", ["A"]),  # "|" is not a GS1 character
        (GTIN, "LOT1", "301231", ["A", "A"]),  # a serial twice
        (GTIN, "LOT1", "301231", ["x" * 21]),  # longer than AI 21 allows
        (GTIN, "LOT1", "301231", []),
        (GTIN, "LOT1", "301331", ["A"]),
    ):
        with pytest.raises(InvalidInput):
            build_batch(gtin, lot, expiry, serials)


def test_the_book_answers_every_serial_with_its_proof(tmp_path: Path) -> None:
    serials = [f"S{i:06d}" for i in range(1_000)]
    batch = build_batch(GTIN, "LOT1", "301231", serials)
    book = PackBook(tmp_path / "drugs.sqlite")
    book.keep(batch, "0x" + "11" * 20)
    for s in ("S000000", "S000511", "S000999"):
        found = book.find("9506000134352", s)
        assert found is not None and found.lot == "LOT1" and found.expiry == "301231"
        assert in_batch(found.commitment, found.index, found.proof, batch.root)
        assert found == batch.pack(int(s[1:]))
    assert book.find(GTIN, "NOPE") is None
    by_commitment = book.serials_by_commitment(batch.batch_key)
    assert len(by_commitment) == 1_000
    assert by_commitment[batch.pack(7).commitment] == "S000007"
    assert book.serials_by_commitment(os.urandom(32)) == {}
    assert book.batch(GTIN, "LOT1").root == batch.root
    with pytest.raises(Conflict, match="kept already"):
        book.keep(batch, "0x" + "11" * 20)
    with pytest.raises(Conflict, match="unique per GTIN"):  # same serial, another lot
        book.keep(build_batch(GTIN, "LOT2", "301231", ["S000001"]), "0x" + "11" * 20)
    book.close()


def test_every_leaf_proves_with_a_proof_as_deep_as_the_tree() -> None:
    """Leaf-index trees of 128-bit nodes: every proof is ``depth`` siblings (the zero
    word where a level is odd), each node in a word whose top 16 bytes are zero."""
    from healthnft.ledger.drugs import EMPTY, pack_leaf, pack_proof, proves, tree_levels

    for n in [*range(1, 40), 257, 1000]:
        commitments = [os.urandom(32) for _ in range(n)]
        tree = tree_levels([pack_leaf(c) for c in commitments])
        root, depth = tree[-1][0], (n - 1).bit_length()
        assert len(tree[-1]) == 1 and len(tree) == depth + 1 and root[:16] == bytes(16)
        for i, c in enumerate(commitments):
            proof = pack_proof(tree, i)
            assert len(proof) == depth and all(p[:16] == bytes(16) for p in proof)
            assert proves(c, i, proof, root)
            assert not proves(c, i ^ 1, proof, root) or n == 1
        odd = [p for i in range(n) for p in pack_proof(tree, i) if p == EMPTY]
        assert bool(odd) == any(len(lv) % 2 for lv in tree[:-1])


def test_the_proof_a_book_gives_is_what_the_tree_gives(tmp_path: Path) -> None:
    batch = build_batch(GTIN, "LOT9", "301231", [f"S{i}" for i in range(37)])  # odd levels
    book = PackBook(tmp_path / "drugs.sqlite")
    book.keep(batch, "0x" + "11" * 20)
    for i in range(37):
        found = book.find(GTIN, f"S{i}")
        assert found is not None and found.proof == batch.pack(i).proof
        assert in_batch(found.commitment, i, found.proof, batch.root)
    book.close()
