"""One-time challenges for presentations: issued for a domain, consumed at most once.

A verifier hands a holder a fresh challenge; the holder's presentation carries it as
its ``nonce`` (:mod:`healthnft.credentials.presentation`), and the verifier consumes it
when the presentation holds, so a replayed presentation is refused.

There is one challenge store in healthnft: :class:`healthnft.store.challenges.Challenges`
(in memory, or table ``challenges`` of a home's ``index.sqlite``, shared by every process
of the home). This module names it for the credentials' API.
"""

from __future__ import annotations

from healthnft.store.challenges import Challenges as ChallengeStore

__all__ = ["ChallengeStore"]
