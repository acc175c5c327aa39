"""Reading a shared record through the key custodians (k of n), for a grantee.

A grantee holds no key of the record: each custodian checks a fresh DID
presentation from the grantee and a live grant on chain, logs its release on
chain, and re-wraps its key share for the grantee. This module asks them and is
the only service that does; records and files call it for a grantee's reads. A
custodian with a URL in the home's config is asked over HTTP, the others in-process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from healthnft.errors import Unavailable

if TYPE_CHECKING:
    from healthnft.keys import Identity
    from healthnft.network import Network
    from healthnft.wallet.wallet import OpenedRecord


def _custody(net: Network) -> tuple[int, tuple[str, ...]]:
    """The threshold k and the custodians' addresses in split order."""
    custody = net.custodians()
    if custody is None:
        raise Unavailable("this network has no key custodians: sharing needs them")
    return custody.threshold, tuple(a for a, _ in custody.members)


def open_shared(net: Network, reader: Identity, token_id: int) -> OpenedRecord:
    """Open a record shared with ``reader`` (each custodian's release logged on chain).

    A record this home does not hold is fetched from the node of the institution that
    minted it (the home's ``peers``: member address -> node URL), checked against the
    chain and its digest on arrival, and opened here with the custodians' shares."""
    from healthnft.consent import open_as_grantee
    from healthnft.wallet.wallet import OpenedRecord

    threshold, members = _custody(net)
    holder = _remote_holder(net, token_id)
    if holder is not None:
        _, plain, _ = _release_from_peer(net, reader, token_id, holder, threshold, members)
        return OpenedRecord.from_plaintext(token_id, plain.meta, plain.canonical)
    return open_as_grantee(reader, token_id, net.custodian_services(), threshold, net.ledger,
                           net.catalog, net.blobs, net.derivatives().original_of,
                           members)  # fmt: skip


def _remote_holder(net: Network, token_id: int) -> str | None:
    """The peer node to fetch ``token_id`` from, when this home does not hold it."""
    row = net.catalog.catalogue.record(token_id)
    if row is not None and net.blobs.get(row.blob_digest) is not None:
        return None
    return holder_url(net, token_id)


def holder_url(net: Network, token_id: int) -> str | None:
    """The node URL of the institution that minted ``token_id`` (its batch's issuer, as
    the chain's ``BatchMinted`` event says), if this home knows it as a peer."""
    peers = {a.lower(): u for a, u in (net.config.get("peers") or {}).items()}
    if not peers:
        return None
    info = net.ledger.batch_of(token_id)
    if info is None:
        return None
    minted = net.ledger.logs("BatchMinted", batch_id=info.batch_id)
    issuer = str(minted[0]["args"]["issuer"]).lower() if minted else ""
    return peers.get(issuer)


def _release_from_peer(net: Network, reader: Identity, token_id: int, url: str, threshold: int,
                       members: tuple[str, ...]) -> tuple[Any, Any, Any]:  # fmt: skip
    """The row, the plaintext and the chunk source of a record held by the node at
    ``url``: fetched and checked there, opened here with k custodians' shares."""
    from healthnft.consent.custodian import gather_and_open, grants_for
    from healthnft.errors import AccessDenied
    from healthnft.services.exchange import fetch_from_peer

    fetched = fetch_from_peer(net, reader, token_id, url)
    grants = grants_for(net.ledger, reader.address, token_id, fetched.row.category)
    if not grants:
        raise AccessDenied(f"token {token_id}: no valid grant for {reader.address}")
    plain = gather_and_open(reader, token_id, grants[0], fetched.row.commitment,
                            fetched.ciphertext, net.custodian_services(), threshold,
                            members)  # fmt: skip
    return fetched.row, plain, fetched.chunks


def release_shared(net: Network, reader: Identity, token_id: int) -> tuple[Any, Any, Any]:
    """The catalogue row, the decrypted plaintext and where the chunks are read from
    (this home's vault, or the holder's node, streamed) of a shared record."""
    from healthnft.consent.custodian import release_as_grantee

    threshold, members = _custody(net)
    holder = _remote_holder(net, token_id)
    if holder is not None:
        return _release_from_peer(net, reader, token_id, holder, threshold, members)
    row, plain = release_as_grantee(reader, token_id, net.custodian_services(), threshold,
                                    net.ledger, net.catalog, net.blobs,
                                    net.derivatives().original_of, members)  # fmt: skip
    return row, plain, net.blobs
