"""Who is acting, and on what: the checks every service makes before it acts.

One place answers "which record is this, and may this caller know it exists?",
so the CLI, the web and any later door refuse alike. A record the caller may not
open is answered exactly like a record that does not exist (:data:`NOT_VISIBLE`,
a :class:`~healthnft.errors.NotFound`): errors leak neither content nor existence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from healthnft.errors import BURNED, AccessDenied, CredentialRejected, NotFound

if TYPE_CHECKING:
    from healthnft.keys import Identity
    from healthnft.network import Network
    from healthnft.vault.catalog import RecordRow

__all__ = ["BURNED", "DAY", "MAX_ID", "NOT_VISIBLE", "TOKEN_IDS", "catalogued",
           "check_token_ids", "current_owner", "require_owner", "same", "unlock"]

DAY = 86400
#: The largest id (token, grant, request, policy) a home can hold: its index keeps ids
#: as SQLite's 64-bit integers. Ids are never negative.
MAX_ID = 2**63 - 1
#: The one answer to "show me a record I may not see" (and to one that does not exist).
NOT_VISIBLE = "no record you may open has this id"
#: The ids that can name a record: the contract counts from 1, and the catalogue keeps ids
#: as SQLite INTEGERs (signed 64-bit). Any other int (negative, 0, 2^63 and up, 2^256 and
#: up) names none; checked before it reaches a SQLite bind or the ABI encoder, which
#: raise on it (``OverflowError``, ``MismatchedABI``) instead of answering "no such".
TOKEN_IDS = range(1, MAX_ID + 1)


def check_token_ids(*ids: int) -> None:
    """Refuse ids that cannot name a record, as :data:`NOT_VISIBLE` (as if never minted)."""
    if any(t not in TOKEN_IDS for t in ids):
        raise NotFound(NOT_VISIBLE)


def same(a: str | None, b: str | None) -> bool:
    """Two addresses are the same account (case-insensitive hex)."""
    return a is not None and b is not None and a.lower() == b.lower()


def unlock(net: Network, address: str, passphrase: str | None = None) -> Identity:
    """The registered participant ``address``'s keys, unlocked from this home's keystore.

    A patient whose key lives on their own device has none here: that is said as such
    (the device signs, and the node relays: :mod:`healthnft.services.relay`), not as a
    failed sign-in."""
    who = net.participant(address).address
    try:
        return net.identity(who, passphrase)
    except CredentialRejected:
        if net.has_key(who):
            raise  # a wrong passphrase
        raise AccessDenied(f"this node holds no key for {who}: a wallet that keeps its key "
                           "on its own device signs its transactions there, and the node "
                           "relays them (prepare, sign, send)") from None


def current_owner(net: Network, token_id: int) -> str:
    """The token's owner on chain, or a clear error saying why there is none."""
    check_token_ids(token_id)
    owner = net.ledger.owner_of(token_id)
    if owner is not None:
        return owner
    if 0 < token_id < net.ledger.next_token_id():
        raise AccessDenied(f"token {token_id}: {BURNED}")
    raise NotFound(NOT_VISIBLE)


def catalogued(net: Network, token_id: int) -> RecordRow:
    """The home's catalogue row of a token (one minted elsewhere is not here: not visible)."""
    check_token_ids(token_id)
    row = net.catalog.record(token_id)
    if row is None:
        raise NotFound(NOT_VISIBLE)
    return row


def require_owner(net: Network, token_id: int, caller: str) -> str:
    """The token's owner, when it is ``caller``; otherwise :data:`NOT_VISIBLE`."""
    check_token_ids(token_id)
    owner = net.ledger.owner_of(token_id)
    if not same(owner, caller):
        raise NotFound(NOT_VISIBLE)
    assert owner is not None
    return owner
