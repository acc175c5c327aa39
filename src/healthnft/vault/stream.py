"""Streaming envelope encryption for records too large to hold in memory (imaging studies).

:mod:`~healthnft.vault.envelope` seals a record in one AES-GCM call, so the whole
plaintext and ciphertext sit in memory: fine for a FHIR resource, not for a 2 GB CT
study. Here the plaintext is cut into fixed-size chunks (1 MiB by default) and each
chunk is sealed on its own, following the STREAM construction (Hoang, Reyhanitabar,
Rogaway, Vizár, "Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance",
CRYPTO 2015), as age and Tink's streaming AEAD do:

- a fresh random 256-bit stream key (DEK) per record, and a random 7-byte nonce prefix;
- chunk *i* is sealed with AES-256-GCM under nonce ``prefix ‖ i (4 bytes, big-endian) ‖
  last`` where ``last`` is 1 for the final chunk and 0 otherwise;
- its associated data binds the record's commitment, ``i`` and ``last`` again, so a chunk
  cannot move to another record or another position, and the last-chunk flag makes a
  truncated stream (dropped final chunks) or an extended one (a chunk added after the
  real end) fail authentication instead of decrypting to a plausible prefix.

Memory stays flat: a handful of chunks are held at a time (the one being sealed, the one
read ahead to know whether it is the last, and two queued for the helper thread that
writes them to the content-addressed blob store, :class:`~healthnft.vault.blobstore.
BlobStore`, while the next ones are sealed). Decryption likewise fetches one step ahead.

What comes back is a :class:`StreamIndex`: the stream key, the nonce prefix and the
list of chunk digests and sizes. It is small (~40 bytes per MiB) and **secret** (it holds
the key): it is meant to travel *inside* the record's sealed plaintext, in its metadata
(:meth:`StreamIndex.to_meta`), so that the record's own DEK — already shareable with
HPKE, splittable among custodians and crypto-shreddable — governs the stream too. A
grantee who may open the record can open the stream; burning the record destroys the
only copies of the stream key; :func:`delete_stream` removes the chunks as well.

Decryption (:func:`open_stream`) streams chunk by chunk to a writable and raises
:class:`~healthnft.errors.Tampered` on any altered, reordered, duplicated, missing or
extra chunk, on a wrong commitment and on a wrong key. Like every online AEAD, it writes
each chunk once that chunk authenticates, so on ``Tampered`` the sink may hold a verified
*prefix* of the plaintext: callers discard what they wrote (``StudyWriter`` in
:mod:`healthnft.records.dicom` writes ``.part`` files and renames only verified ones).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from healthnft.errors import Tampered
from healthnft.vault import _primitives as p
from healthnft.vault.blobstore import BlobStore

#: Plaintext bytes per chunk: large enough that per-chunk costs (a GCM call, a blob
#: store row, 40 index bytes) vanish, small enough that memory stays a few MiB.
CHUNK_SIZE = 1 << 20
MAX_CHUNK_SIZE = 1 << 26
_TAG_BYTES = 16
_PREFIX_BYTES = 7
_MAX_CHUNKS = 1 << 32  # the counter's 4 bytes in the nonce
_IN_FLIGHT = 2  # chunks queued between a helper thread and the caller
_AAD = b"healthnft/stream-chunk/v1|"
_FORMAT = "healthnft/stream/v1"


class SupportsRead(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class SupportsWrite(Protocol):
    def write(self, data: bytes, /) -> Any: ...


@dataclass(frozen=True)
class StreamIndex:
    """How to find and open one sealed stream. Secret: store it only inside a sealed record."""

    key: bytes = field(repr=False)
    nonce_prefix: bytes
    chunk_size: int
    plaintext_size: int
    #: (sha256 digest of the ciphertext chunk in the blob store, its size), in order.
    chunks: tuple[tuple[bytes, int], ...]

    @property
    def digests(self) -> list[bytes]:
        return [digest for digest, _ in self.chunks]

    @property
    def ciphertext_size(self) -> int:
        return sum(size for _, size in self.chunks)

    def to_meta(self) -> dict[str, Any]:
        """A JSON-ready form, for the sealed record's metadata."""
        return {
            "format": _FORMAT,
            "key": self.key.hex(),
            "nonce_prefix": self.nonce_prefix.hex(),
            "chunk_size": self.chunk_size,
            "plaintext_size": self.plaintext_size,
            "chunks": [[digest.hex(), size] for digest, size in self.chunks],
        }

    @classmethod
    def from_meta(cls, meta: Any) -> StreamIndex:
        """Parse :meth:`to_meta`'s output; anything malformed is ``Tampered``."""
        try:
            if meta["format"] != _FORMAT:
                raise ValueError
            index = cls(
                key=bytes.fromhex(meta["key"]),
                nonce_prefix=bytes.fromhex(meta["nonce_prefix"]),
                chunk_size=int(meta["chunk_size"]),
                plaintext_size=int(meta["plaintext_size"]),
                chunks=tuple((bytes.fromhex(d), int(s)) for d, s in meta["chunks"]),
            )
        except (KeyError, TypeError, ValueError):
            raise Tampered("stream index is malformed") from None
        if (
            len(index.key) != p.KEY_BYTES
            or len(index.nonce_prefix) != _PREFIX_BYTES
            or not 0 < index.chunk_size <= MAX_CHUNK_SIZE
            or not 0 < len(index.chunks) <= _MAX_CHUNKS
        ):
            raise Tampered("stream index is malformed")
        return index


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + counter.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _aad(commitment: bytes, counter: int, last: bool) -> bytes:
    return _AAD + commitment + counter.to_bytes(8, "big") + (b"\x01" if last else b"\x00")


def _read_full(source: SupportsRead, size: int) -> bytes:
    """Exactly ``size`` bytes, or fewer only at the end (``read`` may return short)."""
    data = source.read(size)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = source.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


class _StoreWriter:
    """Puts sealed chunks into the store from one helper thread, in order.

    Sealing (reading, hashing the source, AES-GCM) and storing (SQLite's write and the
    content digest) then overlap on two cores: ~40 % faster than one after the other in
    ``bench/dicom_stream.py``, for ``_IN_FLIGHT`` more chunks of memory. The store is
    used by that one thread only until :meth:`close` returns.
    """

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_IN_FLIGHT)
        self.chunks: list[tuple[bytes, int]] = []
        self.error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="stream-store", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (blob := self._queue.get()) is not None:
            if self.error is None:  # after a failure, drain without storing
                try:
                    [digest] = self._store.put_many([blob])
                    self.chunks.append((digest, len(blob)))
                except BaseException as exc:
                    self.error = exc

    def put(self, blob: bytes) -> None:
        if self.error is not None:
            raise self.error
        self._queue.put(blob)

    def close(self) -> None:
        """Wait for every chunk to be stored; re-raise the store's error, if any."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()
        if self.error is not None:
            raise self.error


def seal_stream(
    source: SupportsRead,
    commitment: bytes,
    store: BlobStore,
    *,
    chunk_size: int = CHUNK_SIZE,
    progress: Callable[[int], None] | None = None,
) -> StreamIndex:
    """Encrypt everything ``source`` yields, chunk by chunk, into ``store``.

    ``commitment`` is the record's (over its manifest): every chunk is bound to it.
    ``progress`` is called with the plaintext bytes of each sealed chunk. If reading
    or storing fails, the chunks already stored are deleted before the error propagates,
    so a failed seal leaves nothing behind. ``store.put_many`` is called from a helper
    thread (one call at a time, in order), so the store must allow use from another
    thread (``SqliteBlobStore`` does).
    """
    if len(commitment) != 32:
        raise ValueError("commitment must be 32 bytes")
    if not 0 < chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk size must be between 1 and {MAX_CHUNK_SIZE} bytes")
    key = p.random_key()
    prefix = os.urandom(_PREFIX_BYTES)
    aead = AESGCM(key)
    total = 0
    writer = _StoreWriter(store)
    try:
        current = _read_full(source, chunk_size)
        counter = 0
        while True:
            # Read one chunk ahead: only then is it known whether `current` is the last.
            following = _read_full(source, chunk_size) if len(current) == chunk_size else b""
            last = not following
            if counter >= _MAX_CHUNKS:
                raise ValueError("stream too long for its chunk size")
            writer.put(
                aead.encrypt(
                    _nonce(prefix, counter, last), current, _aad(commitment, counter, last)
                )
            )
            total += len(current)
            if progress is not None:
                progress(len(current))
            if last:
                break
            current = following
            counter += 1
        writer.close()
    except BaseException:
        with contextlib.suppress(BaseException):
            writer.close()
        # Best effort: if the store cannot delete either, the original error matters more,
        # and chunks left behind are unreadable (their key dies with this call).
        with contextlib.suppress(Exception):
            store.delete_many(digest for digest, _ in writer.chunks)
        raise
    return StreamIndex(key, prefix, chunk_size, total, tuple(writer.chunks))


class _Prefetcher:
    """Fetches chunks from the store one step ahead, in a helper thread, checking each
    against its digest there, so fetching overlaps decrypting and writing."""

    def __init__(self, store: BlobStore, chunks: tuple[tuple[bytes, int], ...]) -> None:
        self._queue: queue.Queue[tuple[bytes | None, bool] | BaseException] = queue.Queue(
            maxsize=_IN_FLIGHT
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(store, chunks), name="stream-fetch", daemon=True
        )
        self._thread.start()

    def _run(self, store: BlobStore, chunks: tuple[tuple[bytes, int], ...]) -> None:
        for digest, size in chunks:
            item: tuple[bytes | None, bool] | BaseException
            try:
                blob = store.get(digest)
                item = (
                    blob,
                    blob is not None
                    and len(blob) == size
                    and hashlib.sha256(blob).digest() == digest,
                )
            except BaseException as exc:
                item = exc
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if self._stop.is_set() or isinstance(item, BaseException):
                return

    def next(self) -> tuple[bytes | None, bool]:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def open_stream(
    index: StreamIndex,
    commitment: bytes,
    store: BlobStore,
    sink: SupportsWrite,
    *,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Decrypt a sealed stream into ``sink`` chunk by chunk; returns the bytes written.

    Every chunk is authenticated before it is written; any mismatch raises
    :class:`Tampered` naming the chunk's position (see the module docstring about
    what ``sink`` may already hold then). ``store.get`` is called from a helper thread.
    """
    n = len(index.chunks)
    if n == 0:
        raise Tampered("stream index lists no chunks")
    full = index.chunk_size + _TAG_BYTES
    for counter, (_, size) in enumerate(index.chunks):
        if size > full or (counter < n - 1 and size != full):
            raise Tampered(f"stream chunk {counter + 1} of {n}: wrong size for its chunk size")
    aead = AESGCM(index.key)
    written = 0
    fetch = _Prefetcher(store, index.chunks)
    try:
        for counter in range(n):
            where = f"stream chunk {counter + 1} of {n}"
            last = counter == n - 1
            blob, intact = fetch.next()
            if blob is None:
                raise Tampered(f"{where}: missing from the blob store")
            if not intact:
                raise Tampered(f"{where}: stored bytes do not match their digest")
            try:
                plain = aead.decrypt(
                    _nonce(index.nonce_prefix, counter, last), blob, _aad(commitment, counter, last)
                )
            except InvalidTag:
                raise Tampered(
                    f"{where}: does not authenticate (altered, moved, truncated or extended "
                    "stream, wrong key, or another record's commitment)"
                ) from None
            sink.write(plain)
            written += len(plain)
            if progress is not None:
                progress(len(plain))
    finally:
        fetch.close()
    if written != index.plaintext_size:
        raise Tampered("stream decrypted to a different size than its index says")
    return written


def delete_stream(index: StreamIndex, store: BlobStore) -> None:
    """Remove every chunk of a stream (with its key gone too, that is crypto-shredding)."""
    store.delete_many(index.digests)
