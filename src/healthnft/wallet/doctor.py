"""The home's index against the chain and the vault: find where it fell behind, and
rebuild it from what they hold.

``index.sqlite`` is a cache of two sources of truth: the chain (who owns which token,
which were burned) and the vault (each ciphertext with its key card,
:mod:`healthnft.vault.keycards`). An index restored from a backup, or otherwise
older than the chain, can name a record's previous owner and that owner's key, while
the current owner's key lived only in the index that was lost.

:func:`examine` lists every disagreement (:class:`Finding`); :func:`repair` settles the
ones the chain and the vault can settle: a record is put back from the key card whose
owner the chain names and whose commitment the Merkle proof ties to the batch root on
chain (a card that does not check out is never used), and a record the chain says was
burned is shredded here too. :func:`index_behind` is the quick form that opening a
home runs, so no command acts on an index that is behind.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import defaultdict
from dataclasses import dataclass

from healthnft.ledger.client import Ledger
from healthnft.store import Repositories
from healthnft.store.journal import BatchRow
from healthnft.vault import KeyCard, Vault
from healthnft.wallet.wallet import Wallet, recovered

__all__ = ["Checkup", "Finding", "examine", "index_behind", "repair"]

#: What a finding can be, and what it means to a person.
PROBLEMS = {
    "owner_behind": "the index names an earlier owner; the chain has moved it since",
    "missing": "minted on chain with a key card in the vault, but not in the index",
    "burned_on_chain": "burned on chain, but not shredded in this home",
    "key_missing": "the owner's key for it is not in the index",
    "ciphertext_missing": "its ciphertext is not in the vault",
    "not_on_chain": "the index has a record the chain never minted",
    "recovered": "its owner's account was recovered by guardians and the record is not "
                 "re-keyed for the new key yet: run `healthnft recovery execute ID` again "
                 "where the new key is",
}
#: Findings that mean the index is behind the chain: no command should act on it.
BEHIND = frozenset({"owner_behind", "missing"})


@dataclass(frozen=True)
class Finding:
    """One record on which the index disagrees with the chain or the vault."""

    token_id: int
    problem: str
    repairable: bool
    repaired: bool = False

    @property
    def detail(self) -> str:
        return PROBLEMS[self.problem]

    def as_dict(self) -> dict[str, object]:
        return {**dataclasses.asdict(self), "detail": self.detail}


@dataclass(frozen=True)
class Checkup:
    """What :func:`examine` or :func:`repair` found: records and cards looked at, and
    every disagreement (repaired ones marked)."""

    records: int
    cards: int
    findings: tuple[Finding, ...]

    @property
    def healthy(self) -> bool:
        return all(f.repaired for f in self.findings)

    def as_dict(self) -> dict[str, object]:
        return {"records": self.records, "cards": self.cards, "healthy": self.healthy,
                "findings": [f.as_dict() for f in self.findings]}  # fmt: skip


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.lower() == b.lower()


class _Doctor:
    def __init__(self, ledger: Ledger, index: Repositories, vault: Vault) -> None:
        self.ledger, self.index, self.vault = ledger, index, vault
        self.wallet = Wallet(ledger, index, vault)

    def good_card(self, cards: list[KeyCard], chain_owner: str | None) -> KeyCard | None:
        """The newest card of a token that the chain and the vault confirm: owned by
        ``chain_owner``, its ciphertext present and intact, its proof under the root."""
        for card in reversed(cards):
            if not _same(card.row.owner, chain_owner):
                continue
            blob = self.vault.get(card.digest)
            if blob is None or hashlib.sha256(blob).digest() != card.digest:
                continue
            if self.wallet.chain_problem(card.row) is None:
                return card
        return None

    def examine(self, quick: bool = False) -> tuple[Checkup, dict[int, KeyCard]]:
        """Every finding, and for each repairable one the card that repairs it (none for
        a burn). ``quick`` looks only for an index behind the chain (on every open)."""
        rows = self.index.catalogue.all_records()
        owners = self.ledger.owners_of([r.token_id for r in rows]) if rows else []
        next_id = self.ledger.next_token_id()
        cards_of: dict[int, list[KeyCard]] = defaultdict(list)
        all_cards = self.vault.cards()
        for card in all_cards:
            cards_of[card.token_id].append(card)
        findings: list[Finding] = []
        fixes: dict[int, KeyCard] = {}

        def found(token_id: int, problem: str, card: KeyCard | None = None,
                  repairable: bool | None = None) -> None:  # fmt: skip
            findings.append(Finding(token_id, problem,
                                    card is not None if repairable is None else repairable))
            if card is not None:
                fixes[token_id] = card

        for row, chain_owner in zip(rows, owners, strict=True):
            t = row.token_id
            if chain_owner is None:
                if t >= next_id:
                    found(t, "not_on_chain", repairable=False)
                elif row.status != "burned":
                    found(t, "burned_on_chain", repairable=True)
                continue
            if not _same(row.owner, chain_owner) or row.status == "burned":
                staged = self.index.transfers.staged_transfer(t)
                if quick and staged and _same(staged.new_owner, chain_owner):
                    continue  # an interrupted transfer: its retry finishes it
                if row.status != "burned" and recovered(self.ledger, row.owner, chain_owner):
                    if not quick:  # not behind: the recovered account re-keys it
                        found(t, "recovered", repairable=False)
                    continue
                card = None if quick else self.good_card(cards_of.get(t, []), chain_owner)
                found(t, "owner_behind", card, repairable=None if not quick else False)
                continue
            if quick:
                continue
            if self.index.journal.batch_key(row.key_id, chain_owner) is None:
                found(t, "key_missing", self.good_card(cards_of.get(t, []), chain_owner))
            elif self.vault.get(row.blob_digest) is None:
                found(t, "ciphertext_missing", self.good_card(cards_of.get(t, []), chain_owner))
        known = self.index.catalogue.all_token_ids()
        for t in sorted(set(cards_of) - known):
            chain_owner = self.ledger.owner_of(t)
            if not any(_same(c.row.owner, chain_owner) for c in cards_of[t]):
                continue  # burned or given away: nothing of this home's to restore
            card = None if quick else self.good_card(cards_of[t], chain_owner)
            found(t, "missing", card, repairable=None if not quick else False)
        return Checkup(len(rows), len(all_cards), tuple(findings)), fixes

    def restore(self, card: KeyCard) -> None:
        """Put a record back from a confirmed card, then drop every other copy of it."""
        t = card.token_id
        old = self.index.catalogue.record(t)
        status = "superseded" if self.ledger.superseded_by(t) else "active"
        batch = None
        if self.index.journal.batch(card.row.batch_ref) is None and card.batch is not None:
            info = self.ledger.batch_of(t)
            issuer, first_owner, start, count, root = card.batch
            batch = BatchRow(card.row.batch_ref, issuer, first_owner, start, count, root,
                             "minted", None, None, None, info.batch_id if info else None,
                             None)  # fmt: skip
        row = dataclasses.replace(card.row, status=status)
        self.index.journal.restore_record(row, card.readers, card.custodians, card.chunks,
                                          batch)  # fmt: skip
        stale = [d for c in self.vault.cards(t) if c.digest != card.digest
                 for d in (c.digest, *c.chunks)]  # fmt: skip
        if old is not None and old.blob_digest != card.digest:
            stale.append(old.blob_digest)
        stale.extend(self.index.journal.stale_blobs(t))
        if stale:
            self.vault.delete_many(stale)
            self.index.journal.forget_stale_blobs(stale)

    def shred(self, token_id: int) -> None:
        """Finish a burn the chain has recorded: forget the key, delete every copy."""
        digest = self.index.catalogue.shred(token_id)
        staged = self.index.transfers.drop_staged_transfer(token_id)
        chunks = self.index.journal.record_blobs(token_id)
        self.vault.delete_many([d for d in (digest, staged, *chunks) if d])
        self.vault.shred_token(token_id)
        if chunks:
            self.index.journal.forget_blobs(token_id)


def examine(ledger: Ledger, index: Repositories, vault: Vault) -> Checkup:
    """Every disagreement between the index, the chain and the vault (nothing changed)."""
    return _Doctor(ledger, index, vault).examine()[0]


def repair(ledger: Ledger, index: Repositories, vault: Vault) -> Checkup:
    """Settle what the chain and the vault can settle; the checkup says what was
    repaired and what could not be (no confirmed key card: restore ``vault.sqlite``
    from a backup, then run again)."""
    doctor = _Doctor(ledger, index, vault)
    checkup, fixes = doctor.examine()
    done: list[Finding] = []
    for f in checkup.findings:
        if f.problem == "burned_on_chain":
            doctor.shred(f.token_id)
        elif f.token_id in fixes:
            doctor.restore(fixes[f.token_id])
        else:
            done.append(f)
            continue
        done.append(dataclasses.replace(f, repaired=True))
    if any(f.repaired for f in done):
        index.checkpoint()
        vault.checkpoint()
    return Checkup(checkup.records, len(vault.cards()), tuple(done))


def index_behind(ledger: Ledger, index: Repositories, vault: Vault) -> list[Finding]:
    """The records on which the index is behind the chain (quick: owners and cards only)."""
    checkup, _ = _Doctor(ledger, index, vault).examine(quick=True)
    return [f for f in checkup.findings if f.problem in BEHIND]
