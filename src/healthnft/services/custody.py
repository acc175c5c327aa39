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
    """Open a record shared with ``reader`` (each custodian's release logged on chain)."""
    from healthnft.consent import open_as_grantee

    threshold, members = _custody(net)
    return open_as_grantee(reader, token_id, net.custodian_services(), threshold, net.ledger,
                           net.catalog, net.blobs, net.derivatives().original_of,
                           members)  # fmt: skip


def release_shared(net: Network, reader: Identity, token_id: int) -> tuple[Any, Any]:
    """The catalogue row and the decrypted plaintext of a shared record, for streaming."""
    from healthnft.consent.custodian import release_as_grantee

    threshold, members = _custody(net)
    return release_as_grantee(reader, token_id, net.custodian_services(), threshold,
                              net.ledger, net.catalog, net.blobs,
                              net.derivatives().original_of, members)  # fmt: skip
