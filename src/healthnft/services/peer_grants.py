"""What a category grant covers at the other institutions' nodes (issue #13).

A category grant ("my lab results, to Riverside Research, for 30 days") names no token:
the chain keeps the category, and only the node that holds a record knows the record's
category (it is private metadata, never on chain). On a network of separate nodes the
grantee's own home holds none of the owner's records minted elsewhere, so its list of
"shared with me" would miss them. The grantee's node therefore asks each peer node,
with the same proof as for a ciphertext (a Verifiable Presentation over the peer's
one-time challenge, signed by the DID bound on chain to the grantee), which records of
that grant's owner it holds in that category.

The holder answers only the grantee of a live category grant, and only with records
its own catalogue puts in that category whose current owner on chain is the grant's
owner (each confirmed with the contract's ``can_access``): the coarse metadata the
grantee may read anyway (type, category, date), never a key or a ciphertext. A peer
that does not answer is skipped (the listing says so), so one node down never hides
what the others hold.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from healthnft.errors import AccessDenied, HealthNFTError, NotFound

if TYPE_CHECKING:
    from healthnft.keys import Identity
    from healthnft.ledger.consent import Consent, Grant
    from healthnft.network import Network

log = logging.getLogger(__name__)

#: What a grantee learns of a record under a category grant, listing it.
LISTED_FIELDS = ("token_id", "owner", "category", "resource_type", "effective_date")


# -- the holder's side ----------------------------------------------------------------


def records_for_grant(net: Network, origin: str, grant_id: int, requester: str,
                      presentation: str) -> dict[str, Any]:  # fmt: skip
    """The records held here that ``grant_id`` (a live category grant of ``requester``)
    covers, for a requester that proved its DID. Any other grant: :class:`NotFound`, the
    same answer whatever the reason, so a stranger learns nothing the chain does not say."""
    from healthnft.consent.custodian import grants_for
    from healthnft.services.exchange import check_presenter

    check_presenter(net, origin, requester, presentation)
    consent = _consent(net)
    grant = consent.grant(grant_id)
    if not _live_category_grant(grant, requester):
        raise NotFound(f"grant {grant_id}: no live category grant of yours")
    assert grant is not None and grant.category is not None
    rows = [r for r in net.catalog.records_of(grant.owner)
            if r.category == grant.category and r.status != "burned"
            and net.blobs.get(r.blob_digest) is not None]  # fmt: skip
    owners = net.ledger.owners_of([r.token_id for r in rows]) if rows else []
    listed = []
    for row, owner in zip(rows, owners, strict=True):
        if owner is None or owner.lower() != grant.owner.lower():
            continue  # moved on since: the grant no longer covers it
        if grant_id in grants_for(net.ledger, requester, row.token_id, row.category):
            listed.append({**{name: getattr(row, name) for name in LISTED_FIELDS},
                           "owner": owner})  # fmt: skip
    return {"grant_id": grant_id, "records": listed}


def _live_category_grant(grant: Grant | None, requester: str) -> bool:
    return (grant is not None and grant.category is not None and not grant.revoked
            and grant.expires > time.time()
            and grant.grantee.lower() == requester.lower())  # fmt: skip


def _consent(net: Network) -> Consent:
    from healthnft.ledger.consent import Consent

    return Consent(net.ledger)


# -- the grantee's side ---------------------------------------------------------------


def listed_at_peers(net: Network, reader: Identity, grant_id: int) -> tuple[list[dict], list[str]]:
    """The records every peer node holds under ``reader``'s category grant ``grant_id``,
    and the peers that could not answer. Each answer is checked: a listed record must
    belong, on chain, to the grant's owner (a peer cannot slip in someone else's)."""
    from healthnft.services.exchange import ask_peer

    grant = _consent(net).grant(grant_id)
    if not _live_category_grant(grant, reader.address):
        return [], []
    assert grant is not None
    found: dict[int, dict] = {}
    missed: list[str] = []
    for address, url in sorted((net.config.get("peers") or {}).items()):
        if address.lower() == reader.address.lower():
            continue  # the grantee's own node: its catalogue was read already
        try:
            answer = ask_peer(reader, url, f"/node/v1/grants/{int(grant_id)}/records")
        except NotFound:
            continue  # it holds none of them
        except (AccessDenied, HealthNFTError) as exc:
            log.warning("peer node %s skipped listing a category grant: %s", url,
                        type(exc).__name__)  # fmt: skip
            missed.append(url)
            continue
        for item in _records_in(answer):
            found.setdefault(item["token_id"], item)
    tokens = sorted(found)
    owners = net.ledger.owners_of(tokens) if tokens else []
    checked = [found[t] for t, owner in zip(tokens, owners, strict=True)
               if owner is not None and owner.lower() == grant.owner.lower()]  # fmt: skip
    return checked, missed


def _records_in(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The well-formed entries of a peer's answer (anything else is dropped)."""
    out = []
    for item in answer.get("records") or []:
        if not isinstance(item, dict) or not isinstance(item.get("token_id"), int):
            continue
        out.append({name: item.get(name) for name in LISTED_FIELDS})
    return out
