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
and only then re-wraps its share for the requester with HPKE. The requester
needs k shares; k-1 reveal nothing, and no custodian alone can read a record.
In this single-home build every custodian runs in-process over the home's
catalogue; in a deployment each runs on its own host with its own store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from healthnft.credentials.challenges import ChallengeStore
from healthnft.credentials.presentation import (
    create_presentation,
    presentation_nonce,
    verify_presentation,
)
from healthnft.credentials.trust import did_address
from healthnft.errors import AccessDenied, Conflict, HealthNFTError, InvalidInput, Tampered
from healthnft.keys import Identity
from healthnft.ledger.client import Ledger
from healthnft.ledger.consent import CATEGORIES, Consent
from healthnft.store import RecordRow, Repositories
from healthnft.vault import BatchKey, BlobStore, RecordPlaintext
from healthnft.vault.custody import open_share, open_with_released_shares, release_share
from healthnft.wallet.wallet import OpenedRecord, Wallet


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
    catalog: Repositories
    challenges: ChallengeStore
    #: The original a de-identified copy was made from (None for other tokens).
    originals: Callable[[int], int | None] = _no_original

    @property
    def domain(self) -> str:
        return f"healthnft-custodian:{self.identity.address.lower()}"

    def challenge(self) -> str:
        return self.challenges.issue(self.domain)

    def release(self, token_id: int, grant_id: int, requester: str, presentation: str) -> bytes:
        """The custodian's share of ``token_id``, wrapped for ``requester``; or AccessDenied."""
        vp = verify_presentation(presentation, challenge=_nonce(presentation), domain=self.domain,
                                 challenges=self.challenges)  # fmt: skip
        holder = did_address(self.ledger, vp.holder)
        if holder is None or holder.lower() != requester.lower():
            raise AccessDenied("the presentation is not from the requester's DID")
        consent = Consent(self.ledger)
        # One message for every refusal below: no hint whether the token exists.
        denied = AccessDenied(f"token {token_id}: no valid grant for {requester}")
        original = self.originals(token_id)
        if not consent.can_access(grant_id, requester, token_id) and not (
            original is not None and consent.can_access(grant_id, requester, original)
        ):
            raise denied
        grant = consent.grant(grant_id)
        row = self.catalog.catalogue.record(token_id)
        if grant is None or row is None:
            raise denied
        if grant.category is not None and CATEGORIES.get(grant.category) != CATEGORIES.get(
            row.category
        ):
            raise denied
        if grant.deidentified_only and original is None:
            raise Conflict(f"token {token_id}: the grant allows de-identified data only "
                           "(ask for the record's de-identified copy)")  # fmt: skip
        held = self.catalog.custody.custodian_share(token_id, self.identity.address)
        if held is None:
            raise AccessDenied(f"token {token_id}: this custodian holds no share of it")
        consent.log_access(self.identity.account, grant_id, token_id)  # logged before release
        key_ref, wrapped_key, sealed_share = held
        key = BatchKey.unwrap(self.identity.enc_private, wrapped_key, key_ref)
        share = open_share(sealed_share, key, token_id, row.commitment)
        _, _, requester_key = self.ledger.participant(requester)
        return release_share(share, requester_key, token_id, row.commitment)


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
        grant = consent.grant(gid)
        if grant is None:
            continue
        if not consent.can_access(gid, grantee, token_id) and not (
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
    custodians: list[CustodianService],
    threshold: int,
    ledger: Ledger,
    catalog: Repositories,
    blobs: BlobStore,
    originals: Callable[[int], int | None] = _no_original,
) -> OpenedRecord:
    """Open a record shared with ``grantee``: a fresh presentation per custodian, k shares."""
    _, plain = release_as_grantee(grantee, token_id, custodians, threshold, ledger, catalog,
                                  blobs, originals)  # fmt: skip
    return OpenedRecord.from_plaintext(token_id, plain.meta, plain.canonical)


def release_as_grantee(
    grantee: Identity,
    token_id: int,
    custodians: list[CustodianService],
    threshold: int,
    ledger: Ledger,
    catalog: Repositories,
    blobs: BlobStore,
    originals: Callable[[int], int | None] = _no_original,
) -> tuple[RecordRow, RecordPlaintext]:
    """The record's row and sealed plaintext for ``grantee``, after k custodians released.

    For callers inside the process that must read more than the record itself (an
    imaging study's chunks, whose stream key is in the plaintext's metadata); what
    leaves the process is always an :class:`OpenedRecord`, which never carries it.
    """
    row = catalog.catalogue.record(token_id)
    if row is None or row.status == "burned":
        raise AccessDenied(f"token {token_id}: no valid grant for {grantee.address}")
    grants = grants_for(ledger, grantee.address, token_id, row.category, originals(token_id))
    if not grants:
        if _deidentified_only_grant(ledger, grantee.address, token_id, row.category):
            raise Conflict(f"token {token_id}: your grant allows de-identified data only; "
                           "open the record's de-identified copy")  # fmt: skip
        raise AccessDenied(f"token {token_id}: no valid grant for {grantee.address}")
    released: list[bytes] = []
    refusals: list[str] = []
    for service in custodians:
        if len(released) == threshold:
            break
        vp = create_presentation(grantee.did_private, grantee.did, [],
                                 challenge=service.challenge(), domain=service.domain)  # fmt: skip
        try:
            released.append(service.release(token_id, grants[0], grantee.address, vp))
        except HealthNFTError as exc:
            refusals.append(str(exc))
    if len(released) < threshold:
        reason = refusals[0] if refusals else "not enough custodians"
        raise AccessDenied(f"token {token_id}: {len(released)} of {threshold} key shares "
                           f"released ({reason})")  # fmt: skip
    problem = Wallet(ledger, catalog, blobs).chain_problem(row)
    if problem:
        raise Tampered(f"token {token_id}: {problem}")
    ciphertext = blobs.get(row.blob_digest)
    if ciphertext is None or hashlib.sha256(ciphertext).digest() != row.blob_digest:
        raise Tampered(f"token {token_id}: ciphertext was altered or is missing")
    plain = open_with_released_shares(ciphertext, released, row.commitment, token_id,
                                      grantee.enc_private)  # fmt: skip
    return row, plain
