"""A state-changing call made once per idempotency key, however often it is retried.

The caller names the call with a request id (``--request-id`` in the CLI,
``Idempotency-Key`` on the API). The signed transaction is kept before it is sent
(:mod:`healthnft.store.operations`); a retry finds it and answers the kept result, or
re-sends the very same bytes (a transaction is mined at most once), or, when another
transaction has taken its nonce so it can never be mined, signs it afresh. Reusing a
request id for different arguments is refused. A call without a request id is sent
as before.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from healthnft.errors import Conflict, InvalidInput, LedgerError
from healthnft.ledger.client import SentTransaction
from healthnft.minting.pipeline import crash_point

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from healthnft.network import Network

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")


def check_request_id(request_id: str | None) -> str | None:
    """A request id is 8-128 letters, digits and ``._:-`` (a UUID fits), or None."""
    if request_id is not None and not _REQUEST_ID.fullmatch(request_id):
        raise InvalidInput("a request id is 8 to 128 letters, digits, '.', '_', ':' or '-' "
                           "(a UUID fits)")  # fmt: skip
    return request_id


def transact_once(net: Network, account: LocalAccount, call: Any, *, action: str,
                  args: dict[str, Any], request_id: str | None,
                  settle: Callable[[dict], dict[str, Any]], value: int = 0) -> dict[str, Any]:
    """Send ``call`` signed by ``account`` once per ``request_id``; ``settle`` turns its
    receipt into the result, which a retry with the same id gets again."""
    if check_request_id(request_id) is None:
        return settle(net.ledger.transact(account, call, value=value))
    key = f"{account.address.lower()}:{request_id}"
    fingerprint = hashlib.sha256(
        json.dumps({"action": action, "value": value, **args}, sort_keys=True,
                   default=str).encode()).digest()  # fmt: skip
    ops = net.operations()
    kept = ops.get(key)
    if kept is not None and (kept.action, kept.fingerprint) != (action, fingerprint):
        raise Conflict("this request id was already used for a different request; "
                       "a new request needs a new id")  # fmt: skip
    if kept is not None and kept.result is not None:
        return kept.result
    if kept is None:
        sent = _sign_and_keep(net, account, call, value, key, action, fingerprint)
        receipt = net.ledger.broadcast(sent)
    else:
        sent = SentTransaction(kept.raw_tx, kept.tx_hash, kept.nonce)
        receipt = net.ledger.receipt_of(sent.tx_hash)
        if receipt is not None and receipt["status"] != 1:
            raise LedgerError("the request's transaction reverted on chain")
        if receipt is None:
            if net.ledger.dropped(account.address, sent):
                sent = _sign_and_keep(net, account, call, value, key, action, fingerprint)
            receipt = net.ledger.broadcast(sent)
    crash_point(f"{action}:after-send")
    result = settle(receipt)
    ops.done(key, result)
    return result


def _sign_and_keep(net: Network, account: LocalAccount, call: Any, value: int, key: str,
                   action: str, fingerprint: bytes) -> SentTransaction:  # fmt: skip
    sent = net.ledger.sign(account, call, value=value)
    net.operations().sent(key, action, fingerprint, sent.raw, sent.tx_hash, sent.nonce)
    crash_point(f"{action}:after-keep")
    return sent
