"""One-time challenges in the index: issued for a domain, consumed once, until they expire."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from healthnft.errors import CredentialRejected
from healthnft.store import Challenges, Index

DOMAIN = "https://verifier.example"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_challenge_is_good_once(tmp_path: Path) -> None:
    with Challenges(tmp_path / "index.sqlite") as store:
        c = store.issue(DOMAIN)
        store.consume(c, DOMAIN)
        with pytest.raises(CredentialRejected, match="unknown or replayed"):
            store.consume(c, DOMAIN)


def test_another_domain_an_unknown_or_an_expired_challenge_is_refused() -> None:
    clock = Clock()
    store = Challenges(clock=clock)  # in memory
    c = store.issue(DOMAIN, ttl_s=60)
    with pytest.raises(CredentialRejected):
        store.consume(c, "https://other.example")
    with pytest.raises(CredentialRejected):
        store.consume("made-up", DOMAIN)
    clock.now += 61
    with pytest.raises(CredentialRejected):
        store.consume(c, DOMAIN)
    with pytest.raises(ValueError):
        store.issue("")
    store.close()


def test_every_opener_of_the_home_shares_them_and_one_consumer_wins(tmp_path: Path) -> None:
    index = Index.open(tmp_path / "index.sqlite")
    other = Challenges(tmp_path / "index.sqlite")  # as another process would
    c = index.challenges.issue(DOMAIN)
    wins: list[bool] = []

    def consume(store: Challenges) -> None:
        try:
            store.consume(c, DOMAIN)
            wins.append(True)
        except CredentialRejected:
            wins.append(False)

    threads = [threading.Thread(target=consume, args=(s,)) for s in (index.challenges, other) * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 7 + [True]
    other.close()
    index.close()
