"""vault.stream: chunked STREAM encryption round-trips, refuses every alteration, stays flat."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from healthnft.errors import Tampered
from healthnft.records import commit, new_salt
from healthnft.vault import SqliteBlobStore, StreamIndex, delete_stream, open_stream, seal_stream

CHUNK = 4096


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteBlobStore]:
    s = SqliteBlobStore(tmp_path / "vault.sqlite")
    yield s
    s.close()


def _commitment(label: bytes = b"manifest") -> bytes:
    return commit(label, new_salt())


def _sealed(
    store: SqliteBlobStore, size: int = 5 * CHUNK + 123
) -> tuple[bytes, bytes, StreamIndex]:
    data = os.urandom(size)
    commitment = _commitment()
    index = seal_stream(io.BytesIO(data), commitment, store, chunk_size=CHUNK)
    return data, commitment, index


def _open(index: StreamIndex, commitment: bytes, store: SqliteBlobStore) -> bytes:
    out = io.BytesIO()
    open_stream(index, commitment, store, out)
    return out.getvalue()


def _with_chunks(index: StreamIndex, chunks: list[tuple[bytes, int]]) -> StreamIndex:
    return StreamIndex(
        index.key, index.nonce_prefix, index.chunk_size, index.plaintext_size, tuple(chunks)
    )


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 7 * CHUNK + 5])
def test_round_trip_at_every_boundary(store: SqliteBlobStore, size: int) -> None:
    data, commitment, index = _sealed(store, size)
    assert index.plaintext_size == size
    assert len(index.chunks) == max(1, -(-size // CHUNK))  # an empty stream is one empty chunk
    assert _open(index, commitment, store) == data


def test_ciphertext_is_in_the_blob_store_and_the_index_survives_json(
    store: SqliteBlobStore,
) -> None:
    data, commitment, index = _sealed(store)
    for digest, size in index.chunks:
        blob = store.get(digest)
        assert blob is not None and len(blob) == size
        assert data[:64] not in blob
    again = StreamIndex.from_meta(json.loads(json.dumps(index.to_meta())))
    assert again == index
    assert index.key.hex() not in repr(index)  # the key never lands in a log line
    assert _open(again, commitment, store) == data


def test_progress_reports_plaintext_bytes(store: SqliteBlobStore) -> None:
    seen: list[int] = []
    data = os.urandom(2 * CHUNK + 10)
    index = seal_stream(
        io.BytesIO(data), _commitment(), store, chunk_size=CHUNK, progress=seen.append
    )
    assert seen == [CHUNK, CHUNK, 10] and index.plaintext_size == len(data)


def test_every_flipped_byte_in_a_stored_chunk_is_tampered(
    store: SqliteBlobStore, tmp_path: Path
) -> None:
    _, commitment, index = _sealed(store)
    conn = sqlite3.connect(tmp_path / "vault.sqlite")
    for i, (digest, _) in enumerate(index.chunks):
        original = store.get(digest)
        assert original is not None
        bad = bytearray(original)
        bad[(i * 997) % len(bad)] ^= 0x01
        # 1. altered in place in the store: caught by the content address...
        with conn:
            conn.execute("UPDATE blobs SET data = ? WHERE digest = ?", (bytes(bad), digest))
        with pytest.raises(Tampered, match=f"chunk {i + 1} of"):
            _open(index, commitment, store)
        with conn:
            conn.execute("UPDATE blobs SET data = ? WHERE digest = ?", (original, digest))
        # 2. ...and stored under its own digest with the index rewritten: caught by GCM.
        [bad_digest] = store.put_many([bytes(bad)])
        chunks = list(index.chunks)
        chunks[i] = (bad_digest, len(bad))
        with pytest.raises(Tampered, match="does not authenticate"):
            _open(_with_chunks(index, chunks), commitment, store)
    conn.close()
    assert _open(index, commitment, store)  # restored: opens again


def test_swapped_dropped_duplicated_and_extra_chunks_are_tampered(
    store: SqliteBlobStore,
) -> None:
    data, commitment, index = _sealed(store, 4 * CHUNK)  # four full chunks, the last full too
    c = list(index.chunks)
    other_data, other_commitment, other = _sealed(store, 2 * CHUNK)
    cases = {
        "swapped": [c[1], c[0], *c[2:]],
        "dropped last": c[:-1],
        "dropped middle": [c[0], *c[2:]],
        "duplicated": [c[0], c[0], *c[1:]],
        "extra chunk at the end": [*c, c[-1]],
        "another stream's chunk": [c[0], other.chunks[1], *c[2:]],
        "another stream's tail": [*c[:-1], other.chunks[-1]],
    }
    for name, chunks in cases.items():
        with pytest.raises(Tampered):
            _open(_with_chunks(index, chunks), commitment, store)
            pytest.fail(f"{name}: opened")
    assert _open(index, commitment, store) == data
    assert _open(other, other_commitment, store) == other_data


def test_truncated_stream_writes_nothing_unverified(store: SqliteBlobStore) -> None:
    data, commitment, index = _sealed(store, 3 * CHUNK)
    out = io.BytesIO()
    with pytest.raises(Tampered, match="chunk 2 of 2"):
        open_stream(_with_chunks(index, list(index.chunks[:2])), commitment, store, out)
    assert out.getvalue() == data[:CHUNK]  # only the chunk that authenticated


def test_wrong_commitment_wrong_key_and_missing_chunk_are_tampered(
    store: SqliteBlobStore,
) -> None:
    _, commitment, index = _sealed(store)
    with pytest.raises(Tampered, match="chunk 1 of"):
        _open(index, _commitment(b"another record"), store)
    wrong_key = StreamIndex(
        os.urandom(32), index.nonce_prefix, index.chunk_size, index.plaintext_size, index.chunks
    )
    with pytest.raises(Tampered):
        _open(wrong_key, commitment, store)
    wrong_prefix = StreamIndex(
        index.key, os.urandom(7), index.chunk_size, index.plaintext_size, index.chunks
    )
    with pytest.raises(Tampered):
        _open(wrong_prefix, commitment, store)
    lying_size = StreamIndex(
        index.key, index.nonce_prefix, index.chunk_size, index.plaintext_size + 1, index.chunks
    )
    with pytest.raises(Tampered, match="different size"):
        _open(lying_size, commitment, store)
    store.delete_many([index.chunks[2][0]])
    with pytest.raises(Tampered, match="chunk 3 of .*missing"):
        _open(index, commitment, store)


def test_malformed_index_is_tampered() -> None:
    good = {
        "format": "healthnft/stream/v1",
        "key": "00" * 32,
        "nonce_prefix": "00" * 7,
        "chunk_size": CHUNK,
        "plaintext_size": 1,
        "chunks": [["00" * 32, 17]],
    }
    assert StreamIndex.from_meta(good).plaintext_size == 1
    for bad in (
        {**good, "format": "v0"},
        {**good, "key": "00"},
        {**good, "chunks": []},
        {**good, "chunk_size": 0},
        {**good, "chunks": [["zz", 1]]},
        None,
        [],
    ):
        with pytest.raises(Tampered, match="malformed"):
            StreamIndex.from_meta(bad)


def test_delete_stream_removes_every_chunk(store: SqliteBlobStore) -> None:
    _, commitment, index = _sealed(store)
    delete_stream(index, store)
    assert all(store.get(d) is None for d in index.digests)
    with pytest.raises(Tampered, match="missing"):
        _open(index, commitment, store)


def test_a_failing_source_leaves_no_chunks(store: SqliteBlobStore, tmp_path: Path) -> None:
    class Failing(io.RawIOBase):
        def __init__(self) -> None:
            self.sent = 0

        def readable(self) -> bool:
            return True

        def readinto(self, b: bytearray) -> int:  # type: ignore[override]
            if self.sent >= 3 * CHUNK:
                raise OSError("disk went away")
            n = min(len(b), CHUNK)
            b[:n] = b"\x07" * n
            self.sent += n
            return n

    with pytest.raises(OSError):
        seal_stream(Failing(), _commitment(), store, chunk_size=CHUNK)
    conn = sqlite3.connect(tmp_path / "vault.sqlite")
    assert conn.execute("SELECT COUNT(*) FROM blobs").fetchone()[0] == 0
    conn.close()


def test_a_full_store_fails_the_seal_and_leaves_no_chunks(
    store: SqliteBlobStore, tmp_path: Path
) -> None:
    """A real failure of the store (SQLite's 'database or disk is full') mid-stream."""
    store._conn.execute("PRAGMA max_page_count = 64")  # ~256 KiB with 4 KiB pages
    with pytest.raises(sqlite3.OperationalError, match="full"):
        seal_stream(io.BytesIO(os.urandom(200 * CHUNK)), _commitment(), store, chunk_size=CHUNK)
    conn = sqlite3.connect(tmp_path / "vault.sqlite")
    assert conn.execute("SELECT COUNT(*) FROM blobs").fetchone()[0] == 0
    conn.close()


_MEMORY_PROBE = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from healthnft.records import commit, new_salt
    from healthnft.vault import SqliteBlobStore, open_stream, seal_stream

    def peak_kib():
        # VmHWM: this process's own high-water mark. Not ru_maxrss: Linux carries the
        # parent's peak across fork+exec into it, so a child of a big pytest looks big.
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

    src, out, db = (Path(a) for a in sys.argv[1:4])
    store = SqliteBlobStore(db)
    commitment = commit(b"manifest", new_salt())
    base = peak_kib()
    t0 = time.perf_counter()
    with src.open("rb") as f:
        index = seal_stream(f, commitment, store)
    t1 = time.perf_counter()
    after_seal = peak_kib()
    with out.open("wb") as f:
        open_stream(index, commitment, store, f)
    t2 = time.perf_counter()
    peak = peak_kib()
    whole = src.read_bytes()  # the control: what holding the file in memory would cost
    control = peak_kib()
    print(json.dumps({"base_kib": base, "after_seal_kib": after_seal, "peak_kib": peak,
                      "control_kib": control, "chunks": len(index.chunks),
                      "seal_s": t1 - t0, "open_s": t2 - t1, "size": len(whole)}))
    """
)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_memory_stays_flat_on_a_300_mb_file(tmp_path: Path) -> None:
    """Peak RSS of a fresh process (VmHWM, exact) grows < 100 MiB over 300 MiB of data.

    A fresh process, because the high-water mark is a lifetime peak and pytest's own is
    higher; the probe then reads the whole file once as a control, to show it would
    have seen the memory had the stream held it.
    """
    size_mib = 300
    src = tmp_path / "big.bin"
    block = os.urandom(1 << 20)
    want = hashlib.sha256()
    with src.open("wb") as f:
        for i in range(size_mib):
            piece = i.to_bytes(8, "big") + block[8:]  # every MiB distinct
            f.write(piece)
            want.update(piece)
    out = tmp_path / "back.bin"
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(src), str(out), str(tmp_path / "v.sqlite")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(proc.stdout)
    growth_mib = (report["peak_kib"] - report["base_kib"]) / 1024
    control_mib = (report["control_kib"] - report["base_kib"]) / 1024
    assert report["chunks"] == size_mib
    assert growth_mib < 100, report
    assert control_mib > size_mib * 0.9, report  # the probe does see memory held
    with out.open("rb") as f:
        assert hashlib.file_digest(f, "sha256").digest() == want.digest()
