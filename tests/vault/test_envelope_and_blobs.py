"""vault: envelope encryption round-trips and refuses every alteration."""

from __future__ import annotations

from pathlib import Path

import pytest

from healthnft.errors import Tampered
from healthnft.keys import identity_from_secret
from healthnft.records import commit, new_salt
from healthnft.vault import BatchKey, RecordPlaintext, SqliteBlobStore, open_sealed, seal


def _record(text: bytes = b'{"resourceType":"Observation"}') -> tuple[RecordPlaintext, bytes]:
    salt = new_salt()
    plain = RecordPlaintext(salt, {"category": "laboratory"}, text)
    return plain, commit(text, salt)


def test_round_trip_through_hpke_wrapped_batch_key() -> None:
    owner = identity_from_secret(b"\x11" * 32)
    plain, commitment = _record()
    key = BatchKey.new()
    sealed = seal(plain, commitment, key)
    assert plain.canonical not in sealed.ciphertext
    wrapped = key.wrap_for(owner.enc_public, b"batch-1")
    unwrapped = BatchKey.unwrap(owner.enc_private, wrapped, b"batch-1")
    opened = open_sealed(sealed.ciphertext, sealed.sealed_dek, commitment, unwrapped)
    assert opened == plain


def test_seal_refuses_a_commitment_that_does_not_open() -> None:
    plain, _ = _record()
    with pytest.raises(ValueError):
        seal(plain, b"\x00" * 32, BatchKey.new())


def test_every_flipped_byte_is_detected() -> None:
    plain, commitment = _record()
    key = BatchKey.new()
    sealed = seal(plain, commitment, key)
    for i in range(0, len(sealed.ciphertext), 7):
        bad = bytearray(sealed.ciphertext)
        bad[i] ^= 0x01
        with pytest.raises(Tampered):
            open_sealed(bytes(bad), sealed.sealed_dek, commitment, key)
    bad_dek = bytearray(sealed.sealed_dek)
    bad_dek[-1] ^= 0x80
    with pytest.raises(Tampered):
        open_sealed(sealed.ciphertext, bytes(bad_dek), commitment, key)


def test_ciphertext_cannot_move_to_another_token() -> None:
    key = BatchKey.new()
    a, ca = _record(b'{"a":1}')
    b, cb = _record(b'{"b":2}')
    sa, sb = seal(a, ca, key), seal(b, cb, key)
    with pytest.raises(Tampered):
        open_sealed(sa.ciphertext, sa.sealed_dek, cb, key)
    with pytest.raises(Tampered):
        open_sealed(sa.ciphertext, sb.sealed_dek, ca, key)


def test_batch_key_is_bound_to_reader_and_batch() -> None:
    owner = identity_from_secret(b"\x11" * 32)
    stranger = identity_from_secret(b"\x22" * 32)
    wrapped = BatchKey.new().wrap_for(owner.enc_public, b"batch-1")
    with pytest.raises(Tampered):
        BatchKey.unwrap(stranger.enc_private, wrapped, b"batch-1")
    with pytest.raises(Tampered):
        BatchKey.unwrap(owner.enc_private, wrapped, b"batch-2")


def test_blob_store_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    store = SqliteBlobStore(tmp_path / "vault.sqlite")
    d1 = store.put_many([b"alpha", b"beta"])
    d2 = store.put_many([b"alpha"])
    assert d1[0] == d2[0]
    assert store.get(d1[1]) == b"beta"
    store.delete_many([d1[0]])
    assert store.get(d1[0]) is None
    store.close()
    reopened = SqliteBlobStore(tmp_path / "vault.sqlite")
    assert reopened.get(d1[1]) == b"beta"
    reopened.close()
