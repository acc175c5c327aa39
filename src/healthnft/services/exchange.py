"""Ciphertext between institutions: a grantee's node fetches a shared record from the node
that holds it (issue #13, point 7).

The holder answers only a member that proves, over a one-time challenge of the holder,
that it controls the DID bound on chain to its address (a Verifiable Presentation, as
the custodians ask), and only for a record that member holds a live grant for, as the
chain says now. It then hands out the record's public index row (commitment, Merkle
proof, ciphertext digest; never a wrapped key) and one single-use ticket per ciphertext
(the record's, and each chunk of a streamed imaging study), each fetched by digest.

The grantee trusts none of it: the row's commitment must be in the batch root on chain
and its owner the chain's owner; each ciphertext must hash to the digest the row names
(content addressing); the key comes only from k custodians and opens nothing if the
commitment was altered (it is the AEAD's associated data). A forged, replayed or foreign
request, a missing grant and a wrong ciphertext are each one clear error.

Written here: no library speaks this exchange. Presentations are :mod:`healthnft.credentials`'
(JOSE by joserfc), HTTP is ``requests`` with bounded timeouts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from healthnft.errors import (
    AccessDenied,
    CredentialRejected,
    HealthNFTError,
    InvalidInput,
    NotFound,
    Tampered,
    Unavailable,
)

if TYPE_CHECKING:
    from healthnft.keys import Identity
    from healthnft.network import Network
    from healthnft.store.catalogue import RecordRow

#: What a grantee's node learns of a record: enough to verify it against the chain and to
#: fetch its ciphertext; not the holder's de-duplication key nor any wrapped key.
PUBLIC_ROW_FIELDS = ("token_id", "batch_ref", "owner", "issuer", "commitment", "blob_digest",
                     "proof", "resource_type", "category", "effective_date", "status")
#: Ciphertext is sent in pieces of this size (a DICOM study's chunks are separate blobs).
STREAM_PIECE = 1 << 20
TICKET_TTL_S = 120
_TIMEOUT_S = 10.0


def node_domain(origin: str) -> str:
    """The presentation domain of the node served at ``origin``: a presentation made for
    one node is refused by every other."""
    return f"healthnft-node:{origin.rstrip('/')}"


# -- the holder's side ---------------------------------------------------------------


def challenge(net: Network, origin: str) -> dict[str, str]:
    """A one-time challenge for a presentation to this node."""
    domain = node_domain(origin)
    return {"challenge": net.challenges().issue(domain), "domain": domain}


def record_for_peer(net: Network, origin: str, token_id: int, requester: str,
                    presentation: str) -> dict[str, Any]:  # fmt: skip
    """The public row of ``token_id`` and a ticket per ciphertext, for a member that proved
    its DID and holds a live grant. Not held here, or no live grant: :class:`NotFound`
    with the wallet's own words for an id nobody may open (:data:`NOT_VISIBLE`), so a
    non-grantee learns nothing the chain does not say; a bad presentation:
    :class:`CredentialRejected`."""
    from healthnft.consent.custodian import grants_for
    from healthnft.services.access import NOT_VISIBLE, check_token_ids

    check_token_ids(token_id)
    refused = NotFound(NOT_VISIBLE)
    row = net.catalog.catalogue.record(token_id)
    if row is None or row.status == "burned" or net.blobs.get(row.blob_digest) is None:
        raise refused  # which node minted a token is public on chain: nothing more told
    check_presenter(net, origin, requester, presentation)
    original = net.derivatives().original_of(token_id)
    if not grants_for(net.ledger, requester, token_id, row.category, original):
        raise refused
    digests = [row.blob_digest, *_chunks(net, row)]
    tickets = {d.hex(): net.challenges().issue(_ticket_domain(requester, d), TICKET_TTL_S)
               for d in digests}  # fmt: skip
    public = {name: _plain(getattr(row, name)) for name in PUBLIC_ROW_FIELDS}
    return {"row": public, "chunks": [d.hex() for d in digests[1:]], "tickets": tickets}


def ciphertext_for_peer(net: Network, requester: str, digest_hex: str,
                        ticket: str) -> Iterator[bytes]:  # fmt: skip
    """The ciphertext ``digest_hex``, in pieces, for the holder of a valid ticket (used once)."""
    try:
        digest = bytes.fromhex(digest_hex)
    except ValueError:
        raise InvalidInput("a ciphertext is named by its SHA-256 digest in hex") from None
    net.challenges().consume(ticket, _ticket_domain(requester, digest))
    data = net.blobs.get(digest)
    if data is None:
        raise AccessDenied("that ciphertext is no longer held here (burned)")
    return (data[i : i + STREAM_PIECE] for i in range(0, max(len(data), 1), STREAM_PIECE))


def check_presenter(net: Network, origin: str, requester: str, presentation: str) -> None:
    """The presentation answers one of this node's challenges and is signed by the DID
    bound on chain to ``requester``; else :class:`CredentialRejected`."""
    from healthnft.credentials import presentation_nonce, verify_presentation
    from healthnft.credentials.trust import did_address

    try:
        nonce = presentation_nonce(presentation)
    except InvalidInput:
        raise CredentialRejected("a presentation of the requester's DID is needed") from None
    vp = verify_presentation(presentation, challenge=nonce, domain=node_domain(origin),
                             challenges=net.challenges())  # fmt: skip
    holder = did_address(net.ledger, vp.holder)
    if holder is None or holder.lower() != requester.lower():
        raise CredentialRejected("the presentation is not from the requester's DID")


def _ticket_domain(requester: str, digest: bytes) -> str:
    return f"healthnft-blob:{requester.lower()}:{digest.hex()}"


def issue_tickets(net: Network, requester: str, digests: list[bytes]) -> dict[str, str]:
    """One single-use ticket per ciphertext in ``digests`` for ``requester``, redeemed at
    ``/node/v1/blobs`` (:func:`ciphertext_for_peer`). For a caller that has already
    decided the requester may read them (the owner's own route,
    :mod:`healthnft.services.own_records`): one blob door for every reader."""
    return {d.hex(): net.challenges().issue(_ticket_domain(requester, d), TICKET_TTL_S)
            for d in digests}  # fmt: skip


def _chunks(net: Network, row: RecordRow) -> list[bytes]:
    for card in net.blobs.cards(row.token_id):
        if card.digest == row.blob_digest:
            return list(card.chunks)
    return []


def _plain(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes) else value


# -- the grantee's side --------------------------------------------------------------


class PeerBlobs:
    """A study's chunks on the node that holds them, read one by one as a stream asks
    (a read-only blob store: :func:`healthnft.vault.stream.open_stream` pulls each
    chunk, a step ahead, while it decrypts the one before). Each chunk travels with its
    single-use ticket and is checked against its digest on arrival, so a multi-gigabyte
    study never sits whole in memory or on this node's disk."""

    def __init__(self, session: Any, base: str, requester: str, tickets: dict[str, str],
                 digests: list[bytes]) -> None:  # fmt: skip
        self._session, self._base, self._requester = session, base, requester
        self._tickets = tickets
        self.digests = digests

    def get(self, digest: bytes) -> bytes | None:
        if digest not in self.digests:
            return None  # not a chunk of this record: the stream says "missing"
        return _fetch_blob(self._session, self._base, self._requester, digest, self._tickets)

    def put_many(self, blobs: Any) -> list[bytes]:
        raise AccessDenied("another node's chunks are read, never written, here")

    def delete_many(self, digests: Any) -> None:
        raise AccessDenied("another node's chunks are read, never deleted, here")


@dataclass(frozen=True)
class FetchedRecord:
    """A shared record's row, checked against the chain, and its ciphertext, checked
    against its digest; a study's chunks are fetched as they are read (``chunks``)."""

    row: RecordRow
    ciphertext: bytes
    chunks: PeerBlobs


def fetch_from_peer(net: Network, reader: Identity, token_id: int, url: str) -> FetchedRecord:
    """Fetch ``token_id`` from the node at ``url`` as ``reader`` (a grantee), verified."""
    import requests

    from healthnft.store.catalogue import RecordRow

    base = url.rstrip("/")
    session = requests.Session()  # kept by the chunks' reader (PeerBlobs)
    answer = ask_peer(reader, base, f"/node/v1/records/{int(token_id)}", session)
    try:
        raw = answer["row"]
        values = {f.name: raw.get(f.name) for f in fields(RecordRow)}
        for name in ("batch_ref", "commitment", "blob_digest", "proof"):
            values[name] = bytes.fromhex(values[name])
        values.update(record_key=b"", sealed_dek=b"", key_ref=None)
        row = RecordRow(**values)
        chunk_digests = [bytes.fromhex(c) for c in answer.get("chunks", [])]
        tickets = dict(answer["tickets"])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise Tampered(f"the node at {base} answered something that is not a record") from None
    if row.token_id != token_id:
        raise Tampered(f"the node at {base} answered another record than token {token_id}")
    problem = net.wallet().chain_problem(row)
    if problem:
        raise Tampered(f"token {token_id} from {base}: {problem}")
    ciphertext = _fetch_blob(session, base, reader.address, row.blob_digest, tickets)
    return FetchedRecord(row, ciphertext,
                         PeerBlobs(session, base, reader.address, tickets, chunk_digests))


def ask_peer(reader: Identity, url: str, path: str, session: Any = None) -> dict[str, Any]:
    """POST ``path`` at the node at ``url`` as ``reader``: its challenge answered with a
    presentation of ``reader``'s DID; the JSON answer, or one clear error. ``session``:
    a ``requests.Session`` to keep using after (a new one, closed after, if None)."""
    import requests

    from healthnft.credentials import create_presentation

    base = url.rstrip("/")
    if session is None:
        with requests.Session() as own:
            return ask_peer(reader, base, path, own)
    offer = _json(_send(session, "GET", f"{base}/node/v1/challenge", base), base)
    try:
        vp = create_presentation(reader.did_private, reader.did, [],
                                 challenge=str(offer["challenge"]),
                                 domain=str(offer["domain"]))  # fmt: skip
    except KeyError:
        raise Tampered(f"the node at {base} answered something that is not a challenge") from None
    return _json(_send(session, "POST", f"{base}{path}", base,
                       json={"requester": reader.address, "presentation": vp}), base)


def _fetch_blob(session: Any, base: str, requester: str, digest: bytes,
                tickets: dict[str, str]) -> bytes:  # fmt: skip
    """One ciphertext, streamed and hashed on arrival; refused unless it is ``digest``."""
    ticket = tickets.get(digest.hex())
    if not ticket:
        raise Tampered(f"the node at {base} gave no ticket for a ciphertext of the record")
    import requests

    response = _ok(_send(session, "GET", f"{base}/node/v1/blobs/{digest.hex()}", base,
                         stream=True, headers={"Authorization": f"Bearer {ticket}",
                                               "X-Requester": requester}), base)  # fmt: skip
    hasher, pieces = hashlib.sha256(), []
    try:
        for piece in response.iter_content(STREAM_PIECE):
            hasher.update(piece)
            pieces.append(piece)
    except requests.RequestException:
        raise Unavailable(f"the node at {base} stopped sending the ciphertext; retry") from None
    if hasher.digest() != digest:
        raise Tampered(f"the ciphertext from {base} does not match its address (digest)")
    return b"".join(pieces)


def _send(session: Any, method: str, url: str, base: str, **kwargs: Any) -> Any:
    """One request with a bounded timeout; an unreachable node is :class:`Unavailable`."""
    import requests

    try:
        return session.request(method, url, timeout=_TIMEOUT_S, **kwargs)
    except requests.RequestException as exc:
        raise Unavailable(f"the node at {base} does not answer ({type(exc).__name__})") from None


def _ok(response: Any, base: str) -> Any:
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            body = None
        detail = str(body.get("detail", ""))[:300] if isinstance(body, dict) else ""
        status = response.status_code
        error: type[HealthNFTError] = (
            AccessDenied if status in (401, 403) else NotFound if status == 404
            else InvalidInput if status in (400, 422) else Unavailable)  # fmt: skip
        raise error(f"the node at {base} refused: {detail or response.status_code}")
    return response


def _json(response: Any, base: str) -> dict[str, Any]:
    try:
        body = _ok(response, base).json()
    except ValueError:
        raise Tampered(f"the node at {base} answered something that is not JSON") from None
    if not isinstance(body, dict):
        raise Tampered(f"the node at {base} answered something unexpected")
    return body
