"""Consent: grants, requests, policies and the access log, for every door.

Grants, requests (with a reward held in escrow) and auto-approving policies live
in the ``ConsentManager`` contract; the only thing kept off chain is a request's
free-text reason. Only a record's owner shares it, only the patient asked
answers a request, and a grant or request that is not the caller's is answered
as one that does not exist.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from healthnft.errors import Conflict, InvalidInput, NotFound
from healthnft.minting.pipeline import crash_point
from healthnft.services.access import DAY, check_token_ids, require_owner, same, unlock
from healthnft.services.idempotency import check_request_id, transact_once

if TYPE_CHECKING:
    from healthnft.ledger.consent import AccessRequest, Consent, Grant
    from healthnft.network import Network
    from healthnft.store.catalogue import Participant

PURPOSES = ("treatment", "research", "insurance", "public-health")
#: The longest access lasts, in days: ten years, the bound the ConsentManager contract
#: puts on a request (``duration <= 10 * 365 * 86400``, "duration out of range"). On
#: chain a share's expiry and a policy's duration and validity are not bounded, but a
#: grant made by sharing must not outlive what asking could get, and a mistyped
#: ``--days 100000`` must not become a grant for ever: so the service refuses more for
#: shares, requests and policies alike, at every door (the web API's fields use it too).
MAX_GRANT_DAYS = 3650


@dataclass(frozen=True)
class GrantMade:
    grant_id: int
    grantee: str
    grantee_kind: str
    purpose: str
    expires: int
    category: str | None
    token_ids: list[int]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RequestView:
    """An on-chain access request (and its off-chain reason, for the patient asked)."""

    request_id: int
    requester: str
    owner: str
    token_id: int | None
    category: str | None
    purpose: str
    days: int
    reward_wei: int
    state: str
    grant_id: int | None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PolicyView:
    policy: int
    kind: str | None
    category: str | None
    purpose: str | None
    days: int
    deidentified_only: bool
    valid_until: int
    active: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _consent(net: Network) -> Consent:
    from healthnft.ledger.consent import Consent

    return Consent(net.ledger)


def _check_days(days: int, what: str = "days") -> None:
    """``days`` within 1 … :data:`MAX_GRANT_DAYS`, or one error naming the limit."""
    if not 1 <= days <= MAX_GRANT_DAYS:
        raise InvalidInput(f"{what} must be from 1 to {MAX_GRANT_DAYS} (ten years, the "
                           "longest access this network grants)")  # fmt: skip


def _check_purpose(purpose: str) -> None:
    if purpose not in PURPOSES:
        raise InvalidInput(f"unknown purpose {purpose!r}; use one of {', '.join(PURPOSES)}")


def _check_category(category: str | None) -> None:
    """None (no category) or one of the network's category codes, else one clear error
    (the ledger's table would refuse it as a ledger failure)."""
    from healthnft.ledger.consent import CATEGORIES

    if category is not None and category not in CATEGORIES:
        raise InvalidInput(f"unknown category {category!r}; use one of {', '.join(CATEGORIES)}")


@dataclass(frozen=True)
class SharePlan:
    """A checked share, ready to be signed: the call, its grantee and expiry."""

    call: Any
    grantee: Participant
    expires: int


def _check_share_input(token_ids: list[int] | None, category: str | None, days: int,
                       purpose: str) -> None:  # fmt: skip
    if bool(token_ids) == bool(category):
        raise InvalidInput("give token ids or a category, not both")
    _check_days(days)
    _check_purpose(purpose)
    _check_category(category)


def plan_share(net: Network, owner: str, to: str, purpose: str, days: int, *,
               token_ids: list[int] | None = None, category: str | None = None,
               deidentified_only: bool = False) -> SharePlan:  # fmt: skip
    """Every check of :func:`share` for the registered ``owner`` (an address; no key
    needed), and the call it makes: the one rule for the hosted path and for a
    transaction the owner signs on their device (:mod:`.relay`)."""
    _check_share_input(token_ids, category, days, purpose)
    for tid in token_ids or []:
        require_owner(net, tid, owner)
    grantee = net.participant(to)
    if same(grantee.address, owner):
        raise InvalidInput("you cannot share a record with yourself")
    expires = int(time.time()) + days * DAY
    consent = _consent(net)
    if category:
        call = consent.share_category_call(grantee.address, category, purpose, expires,
                                           deidentified_only)  # fmt: skip
    else:
        call = consent.share_tokens_call(grantee.address, list(token_ids or []), purpose,
                                         expires, deidentified_only)  # fmt: skip
    return SharePlan(call, grantee, expires)


def share(net: Network, owner: str, to: str, purpose: str, days: int, *,
          token_ids: list[int] | None = None, category: str | None = None,
          deidentified_only: bool = False, passphrase: str | None = None,
          request_id: str | None = None) -> GrantMade:  # fmt: skip
    """Grant ``to`` read access to records (or a category) for a purpose, for ``days``.

    With a ``request_id``, retrying the same share (after a crash, a timeout) answers
    the first grant instead of making a second (see :mod:`.idempotency`)."""
    check_request_id(request_id)
    _check_share_input(token_ids, category, days, purpose)
    ident = unlock(net, owner, passphrase)
    plan = plan_share(net, ident.address, to, purpose, days, token_ids=token_ids,
                      category=category, deidentified_only=deidentified_only)  # fmt: skip
    grantee, expires, consent = plan.grantee, plan.expires, _consent(net)
    made = transact_once(
        net, ident.account, plan.call, action="share", request_id=request_id,
        args={"to": grantee.address, "purpose": purpose, "days": days, "category": category,
              "token_ids": sorted(token_ids or []), "deidentified_only": deidentified_only},
        settle=lambda receipt: {"grant_id": consent.grant_created(receipt), "expires": expires},
    )  # fmt: skip
    return GrantMade(made["grant_id"], grantee.address, grantee.kind, purpose, made["expires"],
                     category, list(token_ids or []))  # fmt: skip


def own_grant(net: Network, owner: str, grant_id: int) -> Grant:
    """``owner``'s grant ``grant_id``; anyone else's (or none) is :class:`NotFound`."""
    grant = _consent(net).grant(grant_id) if 0 < grant_id < 2**256 else None
    if grant is None or not same(grant.owner, owner):
        raise NotFound(f"grant {grant_id}: no such grant of yours")
    return grant


def revoke(net: Network, owner: str, grant_id: int, passphrase: str | None = None) -> None:
    """End a grant now: no custodian releases a key under it afterwards."""
    ident = unlock(net, owner, passphrase)
    own_grant(net, ident.address, grant_id)
    _consent(net).revoke(ident.account, grant_id)


def grants_of(net: Network, owner: str) -> list[dict[str, Any]]:
    """The grants ``owner`` made, newest first, with whether each still holds."""
    who = net.participant(owner).address
    consent = _consent(net)
    now = int(time.time())
    rows = []
    for ev in net.ledger.logs("GrantCreated", owner=who):
        grant = consent.grant(int(ev["args"]["grant_id"]))
        if grant is None:
            continue
        state = "revoked" if grant.revoked else ("expired" if grant.expires <= now else "active")
        local = net.catalog.participant(grant.grantee)
        kind, _, _ = net.ledger.participant(grant.grantee)
        rows.append({"grant_id": grant.grant_id, "grantee": grant.grantee,
                     "grantee_kind": kind, "grantee_name": local.label if local else "",
                     "category": grant.category,
                     "token_ids": _granted_tokens(consent, grant, ev["transactionHash"]),
                     "purpose": grant.purpose, "expires": grant.expires,
                     "deidentified_only": grant.deidentified_only, "state": state})  # fmt: skip
    return sorted(rows, key=lambda r: -r["grant_id"])


def _granted_tokens(consent: Consent, grant: Any, tx_hash: Any) -> list[int]:
    """Which tokens a token grant covers, read back from the transaction that made it.

    The contract keeps them in a map it cannot enumerate, so the creating call's
    input is decoded instead (``share_tokens``, a request auto-approved by a
    policy, or the approval of a request).
    """
    if grant.category is not None:
        return []
    tx = consent.ledger.w3.eth.get_transaction(tx_hash)
    try:
        fn, args = consent.contract.decode_function_input(tx["input"])
    except ValueError:
        return []
    if fn.fn_name == "share_tokens":
        return [int(t) for t in args["token_ids"]]
    if fn.fn_name == "request":
        return [int(args["token_id"])] if args["token_id"] else []
    if fn.fn_name == "approve":
        req = consent.get_request(int(args["request_id"]))
        return [req.token_id] if req and req.token_id else []
    return []


def shared_with(net: Network, grantee: str, passphrase: str | None = None) -> list[dict[str, Any]]:
    """Records ``grantee`` may open now under live grants (for institutions' pages).

    One log query finds the grantee's grants; each live one is expanded to its
    tokens (a token grant's from its creating call, a category grant's from the
    owner's records of that category, here and at the peer nodes, which alone know
    the categories of the records they hold) and every token is confirmed with the
    contract's own ``can_access``.
    """
    who = net.participant(grantee).address
    category_grants: list[tuple[int, str]] = []
    consent = _consent(net)
    now = int(time.time())
    found: dict[int, dict[str, Any]] = {}
    links = net.derivatives()
    for ev in net.ledger.logs("GrantCreated", grantee=who):
        gid = int(ev["args"]["grant_id"])
        grant = consent.grant(gid)
        if grant is None or grant.revoked or grant.expires <= now:
            continue
        if grant.category is None:
            tokens = _granted_tokens(consent, grant, ev["transactionHash"])
            rows = [net.catalog.record(t) for t in tokens]
            if not grant.deidentified_only:
                _held_elsewhere(net, consent, gid, who, grant.purpose,
                                [t for t, r in zip(tokens, rows, strict=True) if r is None],
                                found)  # fmt: skip
        else:
            rows = [r for r in net.catalog.records_of(grant.owner) if r.category == grant.category]
            if not grant.deidentified_only:
                category_grants.append((gid, grant.purpose))
        if grant.deidentified_only:  # only the records' de-identified copies are readable
            copies = [c for r in rows if r is not None and links.original_of(r.token_id) is None
                      for c in links.copies_of(r.token_id)]  # fmt: skip
            rows = [r for r in rows if r is not None and links.original_of(r.token_id)]
            rows += [net.catalog.record(c) for c in copies]
        for row in rows:
            if row is None or row.status == "burned" or row.token_id in found:
                continue
            original = links.original_of(row.token_id)
            if consent.can_access(gid, who, row.token_id) or (
                original is not None and consent.can_access(gid, who, original)
            ):
                found[row.token_id] = {"token_id": row.token_id, "owner": row.owner,
                                       "category": row.category,
                                       "resource_type": row.resource_type,
                                       "effective_date": row.effective_date,
                                       "grant_id": gid, "purpose": grant.purpose}  # fmt: skip
    if category_grants and net.config.get("peers"):
        _listed_at_peers(net, who, passphrase, category_grants, found)
    return [found[t] for t in sorted(found)]


def _listed_at_peers(net: Network, grantee: str, passphrase: str | None,
                     category_grants: list[tuple[int, str]],
                     found: dict[int, dict[str, Any]]) -> None:  # fmt: skip
    """Add to ``found`` what the peer nodes hold under the grantee's category grants
    (asked as the grantee, whose key this node holds: it is the node's institution)."""
    from healthnft.services.access import unlock
    from healthnft.services.peer_grants import listed_at_peers

    reader = unlock(net, grantee, passphrase)
    for gid, purpose in category_grants:
        listed, _missed = listed_at_peers(net, reader, gid)
        for item in listed:
            found.setdefault(item["token_id"], {**item, "grant_id": gid, "purpose": purpose})


def _held_elsewhere(net: Network, consent: Consent, grant_id: int, grantee: str, purpose: str,
                    tokens: list[int], found: dict[int, dict[str, Any]]) -> None:  # fmt: skip
    """Add to ``found`` the granted tokens this home holds no record of (minted at another
    institution's node, from which the grantee's node fetches them when opened), each
    confirmed with the contract's ``can_access``. Only the chain is known of them here:
    the owner; the metadata stays at the node that holds the record (``held_at_issuer``)."""
    for token in tokens:
        if token in found or not consent.can_access(grant_id, grantee, token):
            continue
        owner = net.ledger.owner_of(token)
        if owner is None:
            continue
        found[token] = {"token_id": token, "owner": owner, "category": "unknown",
                        "resource_type": "", "effective_date": None, "grant_id": grant_id,
                        "purpose": purpose, "held_at_issuer": True}  # fmt: skip


def _view(req: Any, reason: str | None = None) -> RequestView:
    return RequestView(req.request_id, req.requester, req.owner, req.token_id, req.category,
                       req.purpose, req.duration // DAY, req.escrow, req.state, req.grant_id,
                       reason)  # fmt: skip


def request_access(net: Network, requester: str, owner: str, purpose: str, *, days: int = 30,
                   token_id: int | None = None, category: str | None = None,
                   reward_wei: int = 0, reason: str = "",
                   passphrase: str | None = None,
                   request_id: str | None = None) -> RequestView:  # fmt: skip
    """Ask a patient for access; a matching consent policy grants it at once.

    The free-text reason stays in this home, never on chain. With a ``request_id``, a
    retry answers the first request (and pays its reward once).
    """
    check_request_id(request_id)
    if (token_id is None) == (category is None):
        raise InvalidInput("give a token id or a category")
    if token_id is not None:
        check_token_ids(token_id)
    _check_days(days)
    if reward_wei < 0:
        raise InvalidInput("a reward cannot be negative")
    _check_purpose(purpose)
    _check_category(category)
    asker = unlock(net, requester, passphrase)
    patient = net.patient(owner)
    consent = _consent(net)
    call = consent.request_call(patient.address, purpose=purpose, duration=days * DAY,
                                token_id=token_id, category=category)  # fmt: skip
    rid = transact_once(
        net, asker.account, call, action="request", request_id=request_id, value=reward_wei,
        args={"owner": patient.address, "purpose": purpose, "days": days,
              "token_id": token_id, "category": category},
        settle=lambda receipt: {"request_id": consent.request_created(receipt)},
    )["request_id"]  # fmt: skip
    if reason:
        net.catalog.note_request_reason(rid, reason)
    return _view(consent.get_request(rid))


def requests_for(net: Network, owner: str) -> list[RequestView]:
    """Requests made to ``owner``, with their state and the off-chain reason."""
    consent = _consent(net)
    who = net.participant(owner).address
    rows = []
    for ev in net.ledger.logs("AccessRequested", owner=who):
        rid = int(ev["args"]["request_id"])
        rows.append(_view(consent.get_request(rid), net.catalog.request_reason(rid)))
    return rows


def requests_by(net: Network, requester: str) -> list[RequestView]:
    """Requests ``requester`` made, with their state."""
    consent = _consent(net)
    who = net.participant(requester).address
    return [
        _view(consent.get_request(int(ev["args"]["request_id"])))
        for ev in net.ledger.logs("AccessRequested", requester=who)
    ]


def own_request(net: Network, owner_address: str, request_id: int) -> AccessRequest:
    """A request made to ``owner_address``; anyone else's (or none) is :class:`NotFound`."""
    req = _consent(net).get_request(request_id) if 0 < request_id < 2**256 else None
    if req is None or not same(req.owner, owner_address):
        raise NotFound(f"request {request_id}: no such request to you")
    return req


def approve(net: Network, owner: str, request_id: int, deidentified_only: bool = False,
            passphrase: str | None = None) -> int:  # fmt: skip
    """Grant a pending request; any reward in escrow is paid to the patient. The grant id.

    Approving a request that is already approved answers its grant (a retry after a
    crash or a timeout grants nothing twice and pays nothing twice)."""
    ident = unlock(net, owner, passphrase)
    req = own_request(net, ident.address, request_id)
    consent = _consent(net)
    if req.state == "approved" and req.grant_id:
        grant = consent.grant(req.grant_id)
        if grant is not None and grant.deidentified_only != deidentified_only:
            raise Conflict(f"request {request_id} was already approved with "
                           f"de-identified only = {grant.deidentified_only}")  # fmt: skip
        return req.grant_id
    grant_id = consent.approve(ident.account, request_id, deidentified_only)
    crash_point("approve:after-send")
    return grant_id


def decline(net: Network, owner: str, request_id: int, passphrase: str | None = None) -> None:
    """Decline a pending request; any reward is refunded to the requester (declining a
    declined request again changes nothing)."""
    ident = unlock(net, owner, passphrase)
    req = own_request(net, ident.address, request_id)
    if req.state == "declined":
        return
    _consent(net).decline(ident.account, request_id)


def _check_policy_input(kind: str, purpose: str, days: int, valid_days: int,
                        category: str | None = None) -> None:  # fmt: skip
    from healthnft.ledger.client import POLICY_KINDS

    if kind not in POLICY_KINDS:
        raise InvalidInput(f"unknown requester kind {kind!r}; a policy names one of "
                           f"{', '.join(POLICY_KINDS)}")
    _check_days(days)
    _check_days(valid_days, "valid days")
    _check_purpose(purpose)
    _check_category(category)


def plan_add_policy(net: Network, *, kind: str, purpose: str, category: str | None = None,
                    days: int = 365, valid_days: int = 365,
                    deidentified_only: bool = False) -> Any:  # fmt: skip
    """Every check of :func:`add_policy`, and the call it makes (signed by the owner)."""
    _check_policy_input(kind, purpose, days, valid_days, category)
    return _consent(net).add_policy_call(
        grantee_kind=kind, purpose=purpose, duration=days * DAY,
        valid_until=int(time.time()) + valid_days * DAY, category=category,
        deidentified_only=deidentified_only,
    )  # fmt: skip


def add_policy(net: Network, owner: str, *, kind: str, purpose: str,
               category: str | None = None, days: int = 365, valid_days: int = 365,
               deidentified_only: bool = False, passphrase: str | None = None,
               request_id: str | None = None) -> int:  # fmt: skip
    """A rule that approves matching requests automatically. Its number (from 1).
    With a ``request_id``, a retry answers the first policy instead of adding another."""
    check_request_id(request_id)
    _check_policy_input(kind, purpose, days, valid_days, category)
    ident = unlock(net, owner, passphrase)
    consent = _consent(net)
    call = plan_add_policy(net, kind=kind, purpose=purpose, category=category, days=days,
                           valid_days=valid_days, deidentified_only=deidentified_only)
    return transact_once(
        net, ident.account, call, action="policy", request_id=request_id,
        args={"kind": kind, "purpose": purpose, "category": category, "days": days,
              "valid_days": valid_days, "deidentified_only": deidentified_only},
        settle=lambda receipt: {"policy": consent.policy_added(receipt)},
    )["policy"]  # fmt: skip


def policies(net: Network, owner: str) -> list[PolicyView]:
    """The patient's consent policies, numbered from 1 (removed ones too, marked)."""
    from healthnft.ledger.client import KIND_NAMES
    from healthnft.ledger.consent import CATEGORY_NAMES, PURPOSE_NAMES

    consent = _consent(net)
    who = net.participant(owner).address
    rows = []
    for i in range(int(consent.contract.functions.policy_count(who).call())):
        kind, cat, purpose, duration, deid, until, active = (
            consent.contract.functions.policies(who, i).call()
        )
        rows.append(PolicyView(i + 1, KIND_NAMES.get(kind), CATEGORY_NAMES.get(cat),
                               PURPOSE_NAMES.get(purpose), duration // DAY, deid, until,
                               active))  # fmt: skip
    return rows


def remove_policy(net: Network, owner: str, number: int, passphrase: str | None = None) -> None:
    """Turn a policy off (grants it made stay until revoked)."""
    ident = unlock(net, owner, passphrase)
    own_policy(net, ident.address, number)
    _consent(net).remove_policy(ident.account, number)


def own_policy(net: Network, owner: str, number: int) -> PolicyView:
    """``owner``'s policy ``number`` (from 1); another number is :class:`NotFound`."""
    known = policies(net, owner)
    if not 1 <= number <= len(known):
        raise NotFound(f"policy {number}: no such policy of yours")
    return known[number - 1]


def access_log(net: Network, owner: str) -> list[dict[str, Any]]:
    """Every key release for ``owner``'s records: who (named), which token, purpose, when."""
    rows = _consent(net).access_log(net.participant(owner).address)
    kinds: dict[str, str] = {}
    for row in rows:
        p = net.catalog.participant(row["grantee"])
        row["grantee_name"] = p.label if p else ""
        if p is None and row["grantee"] not in kinds:  # a member this home never named:
            kinds[row["grantee"]] = net.ledger.participant(row["grantee"])[0] or ""  # on chain
        row["grantee_kind"] = p.kind if p else kinds[row["grantee"]]
    return rows
