"""A patient's own records, opened on the patient's device (issue #14, points 1-2).

On a network of separate nodes the ciphertext of a record stays at the node of the
hospital that minted it; the patient's own home holds only the patient's keys and a
cache. To open one of its records, the patient's home asks that node (the issuer's
``peers`` entry) for what is needed and nothing more: the record's public row
(commitment, Merkle proof, ciphertext digest), its DEK sealed under the batch key, that
batch key HPKE-wrapped for the owner's encryption key (as the mint wrapped it: no
custodian is asked, the owner is a reader of its own records by construction) and one
single-use ticket per ciphertext. The request is a DID presentation over the node's
one-time challenge, signed with the key bound on chain to the owner's address; the node
answers only the token's owner on chain now.

The patient's home trusts none of it: the row's commitment must be in the batch root it
reads from the chain through JSON-RPC (Merkle proof) and the owner the chain's owner;
the ciphertext must hash to its digest; the batch key opens the DEK only under that
commitment; the record opens only under that commitment (AEAD associated data) and the
salted commitment is recomputed from the decrypted bytes. Any failure is one
:class:`~healthnft.errors.Tampered` saying "tampered", and nothing is shown. Secrets and
plaintext exist only in this process; the node never sees either.

The holder's side is :func:`record_for_owner` (route ``POST /node/v1/own/{token}``);
the ciphertext itself is fetched at the one blob door of
:mod:`healthnft.services.exchange`, with that module's tickets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from healthnft.errors import (
    CredentialRejected,
    HealthNFTError,
    InvalidInput,
    NotFound,
    Tampered,
    Unavailable,
)
from healthnft.services.access import NOT_VISIBLE, check_token_ids, same

if TYPE_CHECKING:
    from healthnft.keys import Identity
    from healthnft.network import Network
    from healthnft.store.catalogue import RecordRow
    from healthnft.vault import RecordPlaintext
    from healthnft.wallet.wallet import OpenedRecord, Verification

#: The patient home's cache of what it learnt by opening its records (coarse metadata
#: only: type, category, date), so a listing needs no round trip to the issuer's node.
CACHE_FILE = "cache/own-records.json"


# -- the holder's side ----------------------------------------------------------------


def record_for_owner(net: Network, origin: str, token_id: int, requester: str,
                     presentation: str) -> dict[str, Any]:  # fmt: skip
    """What the owner of ``token_id`` needs to open it on its own device: the public row,
    the sealed DEK and the batch key wrapped (at mint) for the owner's encryption key,
    and a ticket per ciphertext. Never a key the owner could not already open.

    Not held here, or the requester is not the owner on chain now: :class:`NotFound`
    with the words for an id nobody may open; a presentation that is not the
    requester's DID: :class:`CredentialRejected`."""
    from healthnft.services.exchange import PUBLIC_ROW_FIELDS, check_presenter, issue_tickets

    check_token_ids(token_id)
    refused = NotFound(NOT_VISIBLE)
    row = net.catalog.catalogue.record(token_id)
    if row is None or row.status == "burned" or not row.sealed_dek:
        raise refused
    check_presenter(net, origin, requester, presentation)
    if not same(net.ledger.owner_of(token_id), requester):
        raise refused  # a grantee uses /node/v1/records and the custodians
    wrapped = net.catalog.journal.batch_key(row.key_id, requester)
    if wrapped is None or net.blobs.get(row.blob_digest) is None:
        raise refused  # re-keyed for an owner elsewhere, or shredded: not for this door
    chunks = next((list(c.chunks) for c in net.blobs.cards(token_id)
                   if c.digest == row.blob_digest), [])  # fmt: skip
    public = {name: _plain(getattr(row, name)) for name in PUBLIC_ROW_FIELDS}
    return {"row": public,
            "key": {"key_id": row.key_id.hex(), "sealed_dek": row.sealed_dek.hex(),
                    "wrapped": wrapped.hex()},
            "chunks": [d.hex() for d in chunks],
            "tickets": issue_tickets(net, requester, [row.blob_digest, *chunks])}  # fmt: skip


def _plain(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes) else value


# -- the owner's side ------------------------------------------------------------------


def held_elsewhere(net: Network, token_id: int) -> bool:
    """Whether ``token_id`` is not in this home's catalogue but a node of its issuer is
    known (a patient's own home on a network of nodes)."""
    from healthnft.services.custody import holder_url

    return net.catalog.catalogue.record(token_id) is None and holder_url(net, token_id) is not None


@dataclass(frozen=True)
class OwnFetched:
    """An own record opened here: its row (checked against the chain), its plaintext
    (checked against the commitment) and the holder's chunks of a study (streamed)."""

    row: RecordRow
    plain: RecordPlaintext
    chunks: Any


def fetch_own(net: Network, owner: Identity, token_id: int) -> OwnFetched:
    """Fetch ``token_id`` from its issuer's node and open it with ``owner``'s keys, every
    check made here; anything that does not check out is :class:`Tampered` ("tampered")."""
    from healthnft.services.custody import holder_url

    url = holder_url(net, token_id)
    if url is None:
        raise Unavailable(f"token {token_id}: this home knows no node of the hospital that "
                          "minted it (peers in the network file)")  # fmt: skip
    try:
        return _fetch_and_open(net, owner, token_id, url.rstrip("/"))
    except Tampered as exc:
        raise _tampered(token_id, exc) from None


def _tampered(token_id: int, exc: Tampered) -> Tampered:
    """One error for every check that failed: it says "tampered" and that nothing of the
    record is shown, whichever check refused."""
    said = str(exc)
    while said.startswith(f"token {token_id}: "):
        said = said.removeprefix(f"token {token_id}: ")
    said = said.removesuffix("; nothing shown")
    if not said.startswith("tampered"):
        said = f"tampered: {said}"
    return Tampered(f"token {token_id}: {said}; nothing shown")


class _OwnChunks:
    """The holder's chunks of a study (:class:`~healthnft.services.exchange.PeerBlobs`),
    each refused as :func:`_tampered` when it does not match its digest: a study written
    as files is streamed after :func:`fetch_own` returned, and says so alike."""

    def __init__(self, blobs: Any, token_id: int) -> None:
        self._blobs, self._token_id = blobs, token_id

    def get(self, digest: bytes) -> bytes | None:
        try:
            return self._blobs.get(digest)
        except Tampered as exc:
            raise _tampered(self._token_id, exc) from None

    def put_many(self, blobs: Any) -> list[bytes]:
        return self._blobs.put_many(blobs)

    def delete_many(self, digests: Any) -> None:
        self._blobs.delete_many(digests)


def _fetch_and_open(net: Network, owner: Identity, token_id: int, base: str) -> OwnFetched:
    import requests

    from healthnft.services.exchange import PeerBlobs, ask_peer
    from healthnft.store.catalogue import RecordRow
    from healthnft.vault import BatchKey, open_sealed

    session = requests.Session()  # kept by the chunks' reader (PeerBlobs)
    answer = ask_peer(owner, base, f"/node/v1/own/{int(token_id)}", session)
    try:
        raw, key = answer["row"], answer["key"]
        values = {f.name: raw.get(f.name) for f in fields(RecordRow)}
        for name in ("batch_ref", "commitment", "blob_digest", "proof"):
            values[name] = bytes.fromhex(values[name])
        key_id = bytes.fromhex(key["key_id"])
        values.update(record_key=b"", sealed_dek=bytes.fromhex(key["sealed_dek"]),
                      key_ref=None if key_id == values["batch_ref"] else key_id)  # fmt: skip
        row = RecordRow(**values)
        wrapped = bytes.fromhex(key["wrapped"])
        chunks = [bytes.fromhex(c) for c in answer.get("chunks", [])]
        tickets = dict(answer["tickets"])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise Tampered(f"the node at {base} answered something that is not a record") from None
    if row.token_id != token_id or not same(row.owner, owner.address):
        raise Tampered(f"the node at {base} answered another record than yours")
    problem = net.wallet().chain_problem(row)  # proof vs the batch root read from the chain
    if problem:
        raise Tampered(problem)
    blobs = PeerBlobs(session, base, owner.address, tickets, [row.blob_digest, *chunks])
    ciphertext = blobs.get(row.blob_digest)  # hashed on arrival against the row's digest
    if ciphertext is None:
        raise Tampered(f"the node at {base} did not serve the record's ciphertext")
    batch_key = BatchKey.unwrap(owner.enc_private, wrapped, row.key_id)
    # AES-GCM under the commitment, then the salted commitment recomputed from the bytes:
    plain = open_sealed(ciphertext, row.sealed_dek, row.commitment, batch_key)
    return OwnFetched(row, plain, _OwnChunks(blobs, token_id))


def open_own(net: Network, owner: Identity, token_id: int, *,
             check_imaging: bool = True) -> OpenedRecord:  # fmt: skip
    """Open an own record held at its issuer's node (see :func:`fetch_own`); a study's
    chunks are all authenticated first unless ``check_imaging`` is off (a listing)."""
    from healthnft.wallet.wallet import OpenedRecord, public_meta

    got = fetch_own(net, owner, token_id)
    if check_imaging:
        _check_study(net, got, token_id)
    rec = OpenedRecord.from_plaintext(token_id, public_meta(got.plain.meta), got.plain.canonical)
    remember(net, token_id, rec.meta)
    return rec


def _check_study(net: Network, got: OwnFetched, token_id: int) -> None:
    """Every chunk of a study authenticates and every instance matches its manifest."""
    from healthnft.minting.pipeline import STREAM_META
    from healthnft.records.dicom import StudyWriter

    if STREAM_META not in got.plain.meta:
        return
    checkers: list[StudyWriter] = []

    def checker(manifest: Any) -> StudyWriter:  # verifies, writes nothing
        checkers.append(StudyWriter(manifest, None))
        return checkers[0]

    try:
        net.wallet(got.chunks).stream_row(got.row, got.plain, checker)
        checkers[0].finish()
    except Tampered as exc:
        raise _tampered(token_id, exc) from None


def verify_own(net: Network, owner: Identity, token_id: int) -> Verification:
    """What ``verify`` says of an own record held at its issuer's node: fetched and opened
    as :func:`open_own` does (proof, root, owner, digest, commitment), then the issuer's
    attestation and a correction, as for a record held here."""
    from healthnft.errors import BURNED
    from healthnft.wallet.wallet import Verification

    if net.ledger.is_burned(token_id):
        return Verification(token_id, False, BURNED, False)
    newer = net.ledger.superseded_by(token_id)
    if newer:
        return Verification(token_id, False, f"superseded: corrected by token {newer}", False)
    try:
        got = fetch_own(net, owner, token_id)
        _check_study(net, got, token_id)
    except Tampered as exc:
        return Verification(token_id, False, str(exc).removeprefix(f"token {token_id}: "), True)
    from healthnft.minting.pipeline import STREAM_META

    problem = net.wallet().attestation_problem(got.row, got.plain.meta)
    if problem:
        return Verification(token_id, False, problem, True)
    imaging = (", every imaging chunk authenticates and every instance matches the manifest"
               if STREAM_META in got.plain.meta else "")  # fmt: skip
    return Verification(token_id, True, "authentic: fetched from the issuer's node; commitment "
                        "recomputed from the record, Merkle proof, on-chain root, owner and "
                        f"ciphertext digest match, and the issuer's attestation verifies{imaging}",
                        True)  # fmt: skip


# -- the listing and its cache ----------------------------------------------------------


def list_own(net: Network, owner: str | None, passphrase: str | None = None, *,
             fetch: bool = True) -> list[Any]:
    """The records ``owner`` (default: this home's member) owns, as the chain says; those
    held at the issuer's node with their type, category and date from this home's cache,
    or (``fetch``) opened once from the node to learn them. A record that cannot be
    opened now keeps the chain's word only: ``tampered`` if it did not check out."""
    from dataclasses import replace

    from healthnft.services.records import AT_ISSUER, list_records

    owner = owner or member_address(net)
    rows = list_records(net, owner)
    pending = [r for r in rows if r.status == AT_ISSUER]
    if not pending:
        return rows
    cache = _read_cache(net)
    fetch = fetch and net.has_key(owner) and _has_passphrase(net, passphrase)
    ident = None
    done = []
    for r in rows:
        meta = cache.get(str(r.token_id)) if r.status == AT_ISSUER else None
        if r.status == AT_ISSUER and meta is None and fetch:
            if ident is None:  # a wrong passphrase is said, as for any command
                ident = net.identity(net.participant(owner).address, passphrase)
            try:
                meta = open_own(net, ident, r.token_id, check_imaging=False).meta
            except Tampered:
                done.append(replace(r, status="tampered"))
                continue
            except Unavailable:
                fetch = False  # the node is down: list the rest from the chain, at once
            except HealthNFTError:
                meta = None  # refused (not ours any more, burned): the chain's word
        if meta:
            r = replace(r, category=str(meta.get("category") or r.category),
                        resource_type=str(meta.get("resource_type") or ""),
                        effective_date=meta.get("effective_date"))  # fmt: skip
        done.append(r)
    return done


def _has_passphrase(net: Network, passphrase: str | None) -> bool:
    """Whether a passphrase was given: without one a listing shows what it has (the
    chain's word, the cache) instead of failing."""
    try:
        net.passphrase(passphrase)
    except CredentialRejected:
        return False
    return True


def member_address(net: Network) -> str:
    """The address of this home's own member (a joined home has exactly one)."""
    member = net.config.get("member") or {}
    if not member.get("address"):
        raise InvalidInput("name the wallet (--owner ADDRESS): this home has no single member")
    return str(member["address"])


def remember(net: Network, token_id: int, meta: dict[str, Any]) -> None:
    """Keep an opened record's coarse metadata in this home's cache (0600)."""
    from healthnft.home import write_private

    cache = _read_cache(net)
    entry = {k: meta.get(k) for k in ("resource_type", "category", "effective_date")}
    if cache.get(str(token_id)) == entry:
        return
    cache[str(token_id)] = entry
    path = net.home / CACHE_FILE
    path.parent.mkdir(mode=0o700, exist_ok=True)
    write_private(path, json.dumps(cache, indent=1, sort_keys=True).encode())


def _read_cache(net: Network) -> dict[str, Any]:
    try:
        doc = json.loads((net.home / CACHE_FILE).read_text())
    except (OSError, ValueError):
        return {}  # no cache, or a damaged one: it is rebuilt by opening again
    return doc if isinstance(doc, dict) else {}
