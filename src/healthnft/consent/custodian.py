"""Custodian services and the grantee's way to open a shared record.

A custodian holds one Shamir share of every record's DEK (sealed to it). Asked
for a token under a grant, it checks *independently, on chain*, that:

1. the requester controls the DID bound on chain to its address — by a
   Verifiable Presentation over a fresh one-time challenge of this custodian
   (a replayed or foreign presentation is refused);
2. the grant is live for this requester and token (``ConsentManager.can_access``);
   for a category grant, the record is of that category;
3. a grant limited to de-identified data covers only de-identified copies (tokens
   minted by ``healthnft deidentify``, linked to their original off chain); a grant
   of a record also covers its copies, which hold strictly less;

then logs the release on chain (``log_access``: who, which token, purpose, when)
and only then re-wraps its share for the requester with HPKE. How "logged" is
reached is an :class:`~healthnft.consent.accesslog.AccessLog`: in-process custodians
wait for the receipt; a custodian service releases once the node accepted its signed,
stored log and settles it afterwards (:mod:`healthnft.consent.accesslog` says why and
what that gives up). The requester
needs k shares; k-1 reveal nothing, and no custodian alone can read a record.
Where the custodian's shares come from is a :class:`ShareSource`: the home's own
catalogue when every custodian runs in-process (:class:`CatalogueShares`), or the
custodian's own store of what issuers delivered to it when it runs as a service in its
own home (:mod:`healthnft.consent.remote`, ``healthnft custodian serve``). The checks
are the same code either way.

The grantee's side (:func:`release_as_grantee`) first collects one challenge from each
custodian it can reach, and asks none to release before k have answered: fewer than k
reachable is one error with nothing logged on chain. Custodians that say they may be
(``concurrent``: services over HTTP, in-process ones on a JSON-RPC node) are asked at
once in threads — the challenges from all, then k releases, then as many more as are
still needed — so an open costs one custodian's time, not k of them, and k logs can
share a block. Each released share is unwrapped
and checked as it arrives (a custodian answering garbage, or another custodian's share,
is named); k well-formed shares that do not open the record are retried with the next
custodian's, and the combination that opens names the custodian that lied.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from web3 import Web3

from healthnft.consent.accesslog import AccessLog, AwaitedLog
from healthnft.credentials.challenges import ChallengeStore
from healthnft.credentials.presentation import (
    create_presentation,
    presentation_nonce,
    verify_presentation,
)
from healthnft.credentials.trust import did_address
from healthnft.errors import (
    AccessDenied,
    Conflict,
    HealthNFTError,
    InvalidInput,
    Tampered,
    Unavailable,
)
from healthnft.keys import Identity
from healthnft.ledger.client import Ledger
from healthnft.ledger.consent import CATEGORIES, Consent
from healthnft.store import RecordRow, Repositories
from healthnft.store.held import HeldShare, HeldShares
from healthnft.vault import BatchKey, BlobStore, RecordPlaintext
from healthnft.vault.custody import (
    open_share,
    open_with_shares,
    release_share,
    share_index,
    unwrap_release,
)
from healthnft.wallet.wallet import OpenedRecord, Wallet

_log = logging.getLogger(__name__)
T = TypeVar("T")

#: The grant id a patient's recovered account asks under: no grant, but the executed
#: guardian recovery on chain (see :meth:`CustodianService.release`).
RECOVERED_OWNER = 0

#: Worker threads kept for the process's life, one pool per layer of work. Starting a
#: thread waits for it to run, which on a busy machine is a GIL switch interval (5 ms)
#: or more each: a pool made per call spent ~7 ms per thread of an open (measured on the
#: 2-core machine under load). Layers never wait on a task of their own pool: an open
#: collects challenges ("challenges") that ask custodians ("custodians"), whose
#: in-process releases read the chain ("reads"), which waits on nothing.
_POOLS: dict[str, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()
_POOL_THREADS = 32


def _pool(layer: str) -> ThreadPoolExecutor:
    """The process's pool for ``layer`` (threads made on demand, then reused)."""
    with _POOLS_LOCK:
        found = _POOLS.get(layer)
        if found is None:
            found = _POOLS[layer] = ThreadPoolExecutor(max_workers=_POOL_THREADS,
                                                       thread_name_prefix=layer)  # fmt: skip
        return found


class ShareSource(Protocol):
    """Where a custodian finds its share of a record's current key."""

    def held_share(self, token_id: int, custodian: str) -> HeldShare | None: ...


@dataclass(frozen=True)
class CatalogueShares:
    """In-process custodians: their shares sit in the issuing home's own index."""

    catalog: Repositories

    def held_share(self, token_id: int, custodian: str) -> HeldShare | None:
        row = self.catalog.catalogue.record(token_id)
        held = self.catalog.custody.custodian_share(token_id, custodian)
        if row is None or held is None:
            return None
        key_ref, wrapped, sealed = held
        return HeldShare(token_id, key_ref, wrapped, sealed, row.commitment, row.category,
                         row.issuer)  # fmt: skip


@dataclass(frozen=True)
class OwnShares:
    """A custodian in its own home: the shares issuers delivered to it, nothing else."""

    held: HeldShares

    def held_share(self, token_id: int, custodian: str) -> HeldShare | None:
        return self.held.share(token_id)


class Custodian(Protocol):
    """What a grantee asks of a custodian, in-process or over HTTP."""

    @property
    def address(self) -> str: ...
    @property
    def domain(self) -> str: ...
    def challenge(self) -> str: ...
    def release(self, token_id: int, grant_id: int, requester: str,
                presentation: str) -> bytes: ...  # fmt: skip


def _no_original(_token_id: int) -> int | None:
    return None


def _nonce(presentation: str) -> str:
    try:
        return presentation_nonce(presentation)
    except InvalidInput:
        raise AccessDenied("not a presentation") from None


@dataclass
class CustodianService:
    """One custodian: verifies the requester and the grant, logs, then releases."""

    identity: Identity
    ledger: Ledger
    shares: ShareSource
    challenges: ChallengeStore
    #: The original a de-identified copy was made from (None for other tokens).
    originals: Callable[[int], int | None] = _no_original
    #: How a release is logged before the share leaves (default: awaited receipt).
    log: AccessLog | None = None

    def __post_init__(self) -> None:
        if self.log is None:
            self.log = AwaitedLog(self.ledger)

    @property
    def address(self) -> str:
        return self.identity.address

    @property
    def concurrent(self) -> bool:
        """Whether a grantee may ask it in a thread beside other custodians."""
        return self.ledger.concurrent

    @property
    def domain(self) -> str:
        return f"healthnft-custodian:{self.identity.address.lower()}"

    def challenge(self) -> str:
        return self.challenges.issue(self.domain)

    def _log(self) -> AccessLog:
        assert self.log is not None  # set in __post_init__
        return self.log

    def release(self, token_id: int, grant_id: int, requester: str, presentation: str) -> bytes:
        """The custodian's share of ``token_id``, wrapped for ``requester``; or AccessDenied."""
        nonce = _nonce(presentation)
        vp = verify_presentation(presentation, challenge=nonce, domain=self.domain,
                                 challenges=self.challenges)  # fmt: skip
        if grant_id == RECOVERED_OWNER:
            return self._release_to_recovered_owner(token_id, requester, vp.holder, nonce)
        consent = Consent(self.ledger)
        with self.ledger.read_ahead(
            self._views(consent, vp.holder, token_id, grant_id, requester),
            simulations=[(self.address, consent.log_access_call(grant_id, token_id))],
            nonces=[self.address],
        ) as batched, prefetched(self.ledger.concurrent and not batched, {
            "holder": lambda: did_address(self.ledger, vp.holder),
            "access": lambda: consent.can_access(grant_id, requester, token_id),
            "grant": lambda: consent.grant(grant_id),
            "key": lambda: self.ledger.participant(requester)[2],
            # The log of the usual case, run on chain now (a read: nothing is sent).
            "log": lambda: self._log().check(self.identity.account, grant_id, token_id),
        }) as read:  # fmt: skip
            return self._checked_release(consent, read, token_id, grant_id, requester, nonce)

    def _release_to_recovered_owner(self, token_id: int, requester: str, did: str,
                                    nonce: str) -> bytes:  # fmt: skip
        """The share of ``token_id`` for its owner whose account guardians recovered
        (asked under :data:`RECOVERED_OWNER`): the record keys were sealed for the lost
        key, so the new one gets them back through k custodians, each checking on chain
        that ``requester`` came by an executed recovery (``recovery_depth``) and owns the
        token now (``ownerOf`` follows the recovered account to its successor). The share
        is sealed to the encryption key the recovery registered. No grant exists: the
        release is logged as every other one, under grant :data:`RECOVERED_OWNER` (the
        contract checks the owner was recovered and logs it as the owner's own access),
        so the patient's access log shows the re-key."""
        holder = did_address(self.ledger, did)
        if holder is None or holder.lower() != requester.lower():
            raise AccessDenied("the presentation is not from the requester's DID")
        denied = AccessDenied(f"token {token_id}: {requester} is not its recovered owner")
        owner = self.ledger.owner_of(token_id)
        if owner is None or owner.lower() != requester.lower():
            raise denied
        if not self.ledger.registry.functions.recovery_depth(owner).call():
            raise denied
        held = self.shares.held_share(token_id, self.identity.address)
        if held is None:
            raise AccessDenied(f"token {token_id}: this custodian holds no share of it")
        key = BatchKey.unwrap(self.identity.enc_private, held.wrapped_key, held.key_ref)
        share = open_share(held.sealed_share, key, token_id, held.commitment)
        log = self._log()
        gas = log.check(self.identity.account, RECOVERED_OWNER, token_id)  # its refusal raised
        log.record(self.identity.account, RECOVERED_OWNER, token_id, nonce, gas)
        return release_share(share, self.ledger.participant(requester)[2], token_id,
                             held.commitment)  # fmt: skip

    def _views(self, consent: Consent, holder: str, token_id: int, grant_id: int,
               requester: str) -> list[Any]:  # fmt: skip
        """The views :meth:`release` reads, sent to the node as one batch before the
        checks make them (the checks' own reads are then answered from it)."""
        who = Web3.to_checksum_address(requester)
        views = [consent.contract.functions.can_access(grant_id, who, token_id),
                 consent.contract.functions.grants(grant_id),
                 self.ledger.registry.functions.participant(who)]  # fmt: skip
        did_key = _ed25519_bytes(holder)
        if did_key is not None:
            views.append(self.ledger.registry.functions.did_owner(did_key))
        return views

    def _checked_release(self, consent: Consent, read: Callable[[str], Any], token_id: int,
                         grant_id: int, requester: str, nonce: str) -> bytes:  # fmt: skip
        """The checks of :meth:`release` in their order (each read taken when needed),
        then the log, then the share."""
        holder = read("holder")
        if holder is None or holder.lower() != requester.lower():
            raise AccessDenied("the presentation is not from the requester's DID")
        # One message for every refusal below: no hint whether the token exists.
        denied = AccessDenied(f"token {token_id}: no valid grant for {requester}")
        original = self.originals(token_id)
        if not read("access") and not (
            original is not None and consent.can_access(grant_id, requester, original)
        ):
            raise denied
        grant = read("grant")
        held = self.shares.held_share(token_id, self.identity.address)
        if grant is None:
            raise denied
        if held is None:
            raise AccessDenied(f"token {token_id}: this custodian holds no share of it")
        if grant.category is not None and CATEGORIES.get(grant.category) != CATEGORIES.get(
            held.category
        ):
            raise denied
        if grant.deidentified_only and original is None:
            raise Conflict(f"token {token_id}: the grant allows de-identified data only "
                           "(ask for the record's de-identified copy)")  # fmt: skip
        key = BatchKey.unwrap(self.identity.enc_private, held.wrapped_key, held.key_ref)
        share = open_share(held.sealed_share, key, token_id, held.commitment)
        # Logged before release: the nonce is this release's one-time challenge. A grant
        # naming the original covers its de-identified copy, which the chain does not
        # know of: the log names the token the grant names (the patient's log then says
        # "your record", never less than what was read; the contract would refuse a log
        # of the copy under that grant).
        logged = token_id if read("access") else original
        assert logged is not None  # checked above: the grant covers one of the two
        gas = read("log") if logged == token_id else None  # its refusal is raised here
        self._log().record(self.identity.account, grant_id, logged, nonce, gas)
        return release_share(share, read("key"), token_id, held.commitment)


def _ed25519_bytes(did: str) -> bytes | None:
    """The raw Ed25519 key of a did:key (what ``did_address`` looks up), else None."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from healthnft.credentials.did import resolve_did_key

    try:
        key = resolve_did_key(did)
    except HealthNFTError:
        return None
    if not isinstance(key, Ed25519PublicKey):
        return None
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@contextlib.contextmanager
def prefetched(concurrent: bool, calls: dict[str, Callable[[], Any]],
               ) -> Iterator[Callable[[str], Any]]:  # fmt: skip
    """Independent chain reads started at once when the client allows it (their round
    trips overlap); each answer, or its error, is taken only where a check needs it, so
    the checks keep their order and their messages. Otherwise each read is made when
    first taken (once: a second take answers the same)."""
    if not concurrent:
        yield functools.cache(lambda name: calls[name]())
        return
    pool = _pool("reads")
    futures = {name: pool.submit(call) for name, call in calls.items()}
    try:
        yield lambda name: futures[name].result()
    finally:
        for future in futures.values():  # none outlives the caller's checks
            future.cancel()
        wait(futures.values())


def grants_for(ledger: Ledger, grantee: str, token_id: int, category: str,
               original: int | None = None) -> list[int]:  # fmt: skip
    """Live grants that let ``grantee`` read ``token_id`` (category checked here too).

    ``original``: the record ``token_id`` is a de-identified copy of, whose grants
    cover the copy too. A grant limited to de-identified data covers copies only.
    """
    consent = Consent(ledger)
    events = ledger.logs("GrantCreated", grantee=grantee)
    out = []
    for ev in events:
        gid = int(ev["args"]["grant_id"])
        who = Web3.to_checksum_address(grantee)
        with ledger.read_ahead([consent.contract.functions.grants(gid),
                                consent.contract.functions.can_access(gid, who, token_id)],
                               ) as batched, prefetched(ledger.concurrent and not batched, {
            "grant": functools.partial(consent.grant, gid),
            "access": functools.partial(consent.can_access, gid, grantee, token_id),
        }) as read:  # fmt: skip
            grant, access = read("grant"), read("access")
        if grant is None:
            continue
        if not access and not (
            original is not None and consent.can_access(gid, grantee, original)
        ):
            continue
        if grant.deidentified_only and original is None:
            continue
        if grant.category is None or grant.category == category:
            out.append(gid)
    return out


def _deidentified_only_grant(ledger: Ledger, grantee: str, token_id: int, category: str) -> bool:
    """Whether a live grant covers ``token_id`` but only as a de-identified copy."""
    consent = Consent(ledger)
    for ev in ledger.logs("GrantCreated", grantee=grantee):
        gid = int(ev["args"]["grant_id"])
        grant = consent.grant(gid)
        if (grant is not None and grant.deidentified_only
                and (grant.category is None or grant.category == category)
                and consent.can_access(gid, grantee, token_id)):  # fmt: skip
            return True
    return False


def open_as_grantee(
    grantee: Identity,
    token_id: int,
    custodians: Sequence[Custodian],
    threshold: int,
    ledger: Ledger,
    catalog: Repositories,
    blobs: BlobStore,
    originals: Callable[[int], int | None] = _no_original,
    members: Sequence[str] = (),
) -> OpenedRecord:
    """Open a record shared with ``grantee``: a fresh presentation per custodian, k shares.

    ``members``: the custodian set's addresses in split order (share *i* belongs to the
    *i*-th), so a custodian answering another's share is caught; empty skips that check."""
    _, plain = release_as_grantee(grantee, token_id, custodians, threshold, ledger, catalog,
                                  blobs, originals, members)  # fmt: skip
    return OpenedRecord.from_plaintext(token_id, plain.meta, plain.canonical)


def release_as_grantee(
    grantee: Identity,
    token_id: int,
    custodians: Sequence[Custodian],
    threshold: int,
    ledger: Ledger,
    catalog: Repositories,
    blobs: BlobStore,
    originals: Callable[[int], int | None] = _no_original,
    members: Sequence[str] = (),
) -> tuple[RecordRow, RecordPlaintext]:
    """The record's row and sealed plaintext for ``grantee``, after k custodians released.

    For callers inside the process that must read more than the record itself (an
    imaging study's chunks, whose stream key is in the plaintext's metadata); what
    leaves the process is always an :class:`OpenedRecord`, which never carries it.
    """
    row = catalog.catalogue.record(token_id)
    if row is None or row.status == "burned":
        raise AccessDenied(f"token {token_id}: no valid grant for {grantee.address}")
    with challenges_meanwhile(custodians, threshold, token_id) as challenges, prefetched(
        ledger.concurrent, {"problem": lambda: _chain_problem(ledger, catalog, blobs, row)}
    ) as read:  # fmt: skip
        grants = grants_for(ledger, grantee.address, token_id, row.category,
                            originals(token_id))  # fmt: skip
        if not grants:
            if _deidentified_only_grant(ledger, grantee.address, token_id, row.category):
                raise Conflict(f"token {token_id}: your grant allows de-identified data only; "
                               "open the record's de-identified copy")  # fmt: skip
            raise AccessDenied(f"token {token_id}: no valid grant for {grantee.address}")
        problem = read("problem")
        if problem:
            raise Tampered(f"token {token_id}: {problem}")
        ciphertext = blobs.get(row.blob_digest)
        if ciphertext is None or hashlib.sha256(ciphertext).digest() != row.blob_digest:
            raise Tampered(f"token {token_id}: ciphertext was altered or is missing")
        ready = challenges()
    plain = gather_and_open(grantee, token_id, grants[0], row.commitment, ciphertext,
                            custodians, threshold, members, ready=ready)  # fmt: skip
    return row, plain


def _chain_problem(ledger: Ledger, catalog: Repositories, blobs: BlobStore,
                   row: RecordRow) -> str | None:  # fmt: skip
    """The wallet's check of ``row`` against the chain, its first reads (the token's
    range, batch and owner) sent to the node as one batch request."""
    token = ledger.token.functions
    with ledger.read_ahead([token.next_token_id(), token.batch_of(row.token_id),
                            token.owners_of([row.token_id])]):  # fmt: skip
        return Wallet(ledger, catalog, blobs).chain_problem(row)


@contextlib.contextmanager
def challenges_meanwhile(custodians: Sequence[Custodian], threshold: int, token_id: int,
                         ) -> Iterator[Callable[[], list[tuple[Custodian, str]]]]:  # fmt: skip
    """Collect the custodians' challenges (:func:`_reachable`) in a thread while the
    caller checks the grant and the chain: a challenge commits nobody to anything, and
    the round trips to the custodians overlap the reads of the chain. The function
    given to the caller answers them (or raises what :func:`_reachable` raised).
    Custodians that are not ``concurrent`` are asked when it is called, as before."""
    if not _concurrent(custodians):
        yield lambda: _reachable(custodians, threshold, token_id)[0]
        return
    future = _pool("challenges").submit(_reachable, custodians, threshold, token_id)
    try:
        yield lambda: future.result()[0]
    finally:
        wait([future])


def _concurrent(custodians: Sequence[Custodian]) -> bool:
    """Whether these custodians may be asked at once (each says so; a custodian object
    that does not say is asked alone, as before)."""
    return len(custodians) > 1 and all(getattr(c, "concurrent", False) for c in custodians)


def _each(calls: Sequence[Callable[[], T]], concurrent: bool) -> list[T | HealthNFTError]:
    """Every call's answer or refusal, in order; in threads when ``concurrent``: a
    custodian down then costs its timeout once, not once per custodian before it, and
    k custodians' logs land in the same block rather than one after the other."""

    def one(call: Callable[[], T]) -> T | HealthNFTError:
        try:
            return call()
        except HealthNFTError as exc:
            return exc

    if not concurrent:
        return [one(c) for c in calls]
    return list(_pool("custodians").map(one, calls))


def _reachable(custodians: Sequence[Custodian], threshold: int, token_id: int,
               ) -> tuple[list[tuple[Custodian, str]], list[str]]:  # fmt: skip
    """A challenge from every custodian that answers (none has released anything yet)."""
    answers = _each([c.challenge for c in custodians], _concurrent(custodians))
    ready: list[tuple[Custodian, str]] = []
    down: list[str] = []
    for service, answer in zip(custodians, answers, strict=True):
        if isinstance(answer, HealthNFTError):
            down.append(f"{service.address}: {answer}")
        else:
            ready.append((service, answer))
    if len(ready) < threshold:
        raise Unavailable(
            f"token {token_id}: only {len(ready)} of the {threshold} custodians needed "
            f"answered ({'; '.join(down) or 'no custodian is configured'}); nothing was "
            "released or logged: retry when they are back"
        )
    return ready, down


@dataclass(frozen=True)
class _Ask:
    """What every custodian is asked for one open."""

    grantee: Identity
    token_id: int
    grant_id: int
    commitment: bytes
    order: dict[str, int]

    def share(self, service: Custodian, challenge: str) -> bytes:
        """``service``'s share, unwrapped and checked to be its own (else Tampered)."""
        vp = create_presentation(self.grantee.did_private, self.grantee.did, [],
                                 challenge=challenge, domain=service.domain)  # fmt: skip
        wrapped = service.release(self.token_id, self.grant_id, self.grantee.address, vp)
        share = unwrap_release(wrapped, self.token_id, self.commitment, self.grantee.enc_private)
        expected = self.order.get(service.address.lower())
        if expected is not None and share_index(share) != expected:
            raise Tampered(f"token {self.token_id}: released another custodian's share")
        return share


def _open_with_new(ciphertext: bytes, good: list[tuple[str, bytes]], new: set[str],
                   threshold: int, commitment: bytes, token_id: int,
                   ) -> RecordPlaintext | None:  # fmt: skip
    """The plaintext from the first k of ``good`` that open it, trying only sets with a
    share from ``new`` (the others were tried before); the shares left out of the set
    that opens are named as wrong."""
    for combo in itertools.combinations(good, threshold):
        if not new & {a for a, _ in combo}:
            continue
        try:
            plain = open_with_shares(ciphertext, [s for _, s in combo], commitment, token_id)
        except Tampered:
            continue
        used = {a for a, _ in combo}
        for liar in [a for a, _ in good if a not in used]:
            _log.warning("token %s: custodian %s released a wrong share", token_id, liar)
        return plain
    return None


def gather_and_open(
    grantee: Identity, token_id: int, grant_id: int, commitment: bytes, ciphertext: bytes,
    custodians: Sequence[Custodian], threshold: int, members: Sequence[str] = (),
    *, ready: list[tuple[Custodian, str]] | None = None,
) -> RecordPlaintext:  # fmt: skip
    """Ask custodians for k shares, check each, and open ``ciphertext`` with them.

    ``ready``: the challenges already collected (:func:`challenges_meanwhile`), else
    they are collected here first.

    Challenges are collected from every custodian first (fewer than k: nothing asked,
    nothing logged); then k custodians are asked at once, and as many more as are
    still needed after a refusal. A share that does not unwrap, has the wrong shape, or
    carries another custodian's index is its custodian's fault and named. k shares
    that do not open the record make this ask the next custodian and try every k of
    those received: the set that opens the record names the one(s) left out as having
    answered a wrong share.
    """
    if ready is None:
        ready, _ = _reachable(custodians, threshold, token_id)
    ask = _Ask(grantee, token_id, grant_id, commitment,
               {a.lower(): i + 1 for i, a in enumerate(members)})  # fmt: skip
    concurrent = _concurrent([service for service, _ in ready])
    good: list[tuple[str, bytes]] = []
    faults: list[tuple[str, HealthNFTError]] = []
    waiting = list(ready)
    while waiting:
        size = max(1, threshold - len(good))
        wave, waiting = waiting[:size], waiting[size:]
        answers = _each([functools.partial(ask.share, s, c) for s, c in wave], concurrent)
        new: set[str] = set()
        for (service, _), answer in zip(wave, answers, strict=True):
            if isinstance(answer, HealthNFTError):
                faults.append((service.address, answer))
            else:
                good.append((service.address, answer))
                new.add(service.address)
        if len(good) >= threshold and new:
            plain = _open_with_new(ciphertext, good, new, threshold, commitment, token_id)
            if plain is not None:
                return plain
    raise _not_opened(token_id, threshold, good, faults)


def _not_opened(token_id: int, threshold: int, good: list[tuple[str, bytes]],
                faults: list[tuple[str, HealthNFTError]]) -> HealthNFTError:  # fmt: skip
    """The one error an open that gathered too few shares (or shares that lie) raises."""
    said = "; ".join(f"custodian {a}: {e}" for a, e in faults)
    if len(good) >= threshold:
        return Tampered(
            f"token {token_id}: the shares of {', '.join(a for a, _ in good)} do not open the "
            "record together: at least one of them answered a wrong share"
            + (f" ({said})" if said else "")
        )
    refusals = [e for _, e in faults if isinstance(e, AccessDenied | Conflict)]
    if faults and len(refusals) == len(faults):
        conflict = next((e for e in refusals if isinstance(e, Conflict)), None)
        if conflict is not None:
            return conflict
        return AccessDenied(f"token {token_id}: {len(good)} of {threshold} key shares "
                            f"released ({refusals[0]})")  # fmt: skip
    # A custodian that answered something wrong is worse news than one that was down.
    cls = Tampered if any(isinstance(e, Tampered) for _, e in faults) else Unavailable
    return cls(f"token {token_id}: only {len(good)} of the {threshold} key shares "
               f"needed were released ({said or 'no custodian released'})")  # fmt: skip
