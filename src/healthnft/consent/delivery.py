"""Mint-time delivery of sealed key shares from an issuer to a remote custodian.

A custodian in its own home never reads the issuer's index: the issuer *pushes* each
minted batch's shares to it. The message names the issuer and the custodian, carries
the batch key HPKE-wrapped for that custodian and, per record, the token id, its
commitment, its Merkle proof, its category and the sealed share; the issuer signs the
whole (an Ethereum personal signature over a domain-separated SHA-256 of its canonical
JSON). The custodian accepts it only if, on its own reading of the chain:

- the signer is the named issuer and a registered issuer of the network;
- every token is minted, in a batch the signer minted (``BatchMinted``), and its
  commitment is in that batch's Merkle root (so a category or commitment cannot be
  made up for someone else's record);
- the wrapped key opens with the custodian's own key and opens every share;
- a de-identified copy's ``original`` (whose grants cover the copy) was minted by the
  same issuer.

Anything else is refused whole, nothing kept. Sending the same delivery again is
harmless (idempotent), so an issuer retries until acknowledged.

A **replacement** carries one record's shares re-split under a fresh key, after a
transfer or an executed guardian recovery re-sealed the record for its new owner
(:func:`sign_replacement`). It names the token's issuer and its owner now; the custodian
keeps it (as the newest share of the token, the one it releases) only if, on chain, the
named owner owns the token now (``ownerOf``, which follows a recovered account to its
successor), the signer is that owner or the issuer that minted the token's batch, the
commitment is in that batch, and the share opens with the wrapped key. The category
and original must be those of a share the custodian already holds of the token. So
nobody replaces the shares of a token they neither own nor issued, and a replacement
replayed after the token moved on names an owner the chain no longer gives it to.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from web3 import Web3

from healthnft.errors import AccessDenied, CredentialRejected, InvalidInput, NotFound, Tampered
from healthnft.keys import Identity
from healthnft.ledger import merkle
from healthnft.ledger.client import Ledger
from healthnft.store.held import HeldShare
from healthnft.vault import BatchKey
from healthnft.vault.custody import open_share

_DOMAIN = b"healthnft/share-delivery/v1|"
_REPLACEMENT_DOMAIN = b"healthnft/share-replacement/v1|"
#: More records than this in one message is refused (a batch is sent in chunks).
MAX_SHARES = 2_000


def _digest(payload: dict[str, Any], domain: bytes = _DOMAIN) -> bytes:
    body = {k: v for k, v in payload.items() if k != "signature"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(domain + canonical).digest()


def sign_delivery(issuer: Identity, custodian: str, key_ref: bytes, wrapped_key: bytes,
                  shares: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """The signed message delivering ``shares`` (token_id, commitment, proof, category,
    sealed_share, and original for a de-identified copy; bytes as hex) of batch key
    ``key_ref`` to ``custodian``."""
    payload: dict[str, Any] = {
        "issuer": issuer.address,
        "custodian": custodian,
        "key_ref": key_ref.hex(),
        "wrapped_key": wrapped_key.hex(),
        "shares": shares,
    }
    signed = issuer.account.sign_message(encode_defunct(primitive=_digest(payload)))
    payload["signature"] = bytes(signed.signature).hex()
    return payload


def _hex(value: object, what: str) -> bytes:
    try:
        return bytes.fromhex(str(value).removeprefix("0x"))
    except ValueError:
        raise InvalidInput(f"share delivery: {what} is not hex") from None


def _signer(payload: dict[str, Any], domain: bytes = _DOMAIN, what: str = "share delivery") -> str:
    try:
        return str(Account.recover_message(encode_defunct(primitive=_digest(payload, domain)),
                                           signature=_hex(payload.get("signature"), "signature")))
    except (ValueError, TypeError):  # fmt: skip
        raise CredentialRejected(f"{what}: the signature does not verify") from None


class _Batches:
    """The batches an issuer minted, read once per delivery from its BatchMinted events."""

    def __init__(self, ledger: Ledger, issuer: str) -> None:
        self._ledger = ledger
        self._issuer = issuer
        self._ids: set[int] | None = None

    def minted_by_issuer(self, batch_id: int) -> bool:
        if self._ids is None:
            events = self._ledger.logs("BatchMinted", issuer=self._issuer)  # the event index
            self._ids = {int(ev["args"]["batch_id"]) for ev in events}
        return batch_id in self._ids


def verify_delivery(ledger: Ledger, me: Identity, payload: dict[str, Any]) -> list[HeldShare]:
    """The shares of a delivery to ``me``, each checked on chain; or one clear error."""
    if not isinstance(payload, dict) or not isinstance(payload.get("shares"), list):
        raise InvalidInput("share delivery: expected an object with a list of shares")
    shares: list[Any] = payload["shares"]
    if not 0 < len(shares) <= MAX_SHARES:
        raise InvalidInput(f"share delivery: 1 to {MAX_SHARES} shares per message")
    if str(payload.get("custodian", "")).lower() != me.address.lower():
        raise InvalidInput("share delivery: addressed to another custodian")
    signer = _signer(payload)
    if signer.lower() != str(payload.get("issuer", "")).lower():
        raise CredentialRejected("share delivery: not signed by the issuer it names")
    if not ledger.is_issuer(signer):
        raise AccessDenied(f"share delivery: {signer} is not an issuer of this network")
    key_ref = _hex(payload.get("key_ref"), "key_ref")
    key = BatchKey.unwrap(me.enc_private, _hex(payload.get("wrapped_key"), "wrapped_key"),
                          key_ref)  # fmt: skip  (Tampered: not wrapped for this custodian)
    batches = _Batches(ledger, signer)
    out = []
    for item in shares:
        try:
            token_id = int(item["token_id"])
            category = str(item["category"])
            commitment = _hex(item["commitment"], "commitment")
            proof = merkle.unpack_proof(_hex(item["proof"], "proof"))
            sealed = _hex(item["sealed_share"], "sealed_share")
            original = None if item.get("original") is None else int(item["original"])
        except (KeyError, TypeError, ValueError):
            raise InvalidInput("share delivery: each share needs token_id, commitment, "
                               "proof, category and sealed_share") from None  # fmt: skip
        batch = ledger.batch_of(token_id)
        if batch is None:
            raise NotFound(f"share delivery: token {token_id} is not minted")
        if not batches.minted_by_issuer(batch.batch_id):
            raise AccessDenied(f"share delivery: token {token_id} was not minted by {signer}")
        if not merkle.verify(merkle.leaf_hash(token_id, commitment), proof, batch.root):
            raise Tampered(f"share delivery: token {token_id}'s commitment is not in its batch")
        if original is not None:
            source = ledger.batch_of(original)
            if source is None or not batches.minted_by_issuer(source.batch_id):
                raise AccessDenied(f"share delivery: token {token_id} is said to be a copy of "
                                   f"token {original}, which {signer} did not mint")  # fmt: skip
        open_share(sealed, key, token_id, commitment)  # Tampered when it does not open
        out.append(HeldShare(token_id, key_ref, _hex(payload["wrapped_key"], "wrapped_key"),
                             sealed, commitment, category, signer, original))  # fmt: skip
    return out


def sign_replacement(signer: Identity, custodian: str, issuer: str, owner: str,
                     key_ref: bytes, wrapped_key: bytes, share: dict[str, Any],
                     ) -> dict[str, Any]:  # fmt: skip
    """The signed message replacing ``custodian``'s share of one record (``share``: as in
    :func:`sign_delivery`) after the record was re-sealed for ``owner`` under key
    ``key_ref``; ``signer`` is the token's owner now or its ``issuer``."""
    payload: dict[str, Any] = {
        "signer": signer.address,
        "custodian": custodian,
        "issuer": issuer,
        "owner": owner,
        "key_ref": key_ref.hex(),
        "wrapped_key": wrapped_key.hex(),
        "share": share,
    }
    digest = _digest(payload, _REPLACEMENT_DOMAIN)
    signed = signer.account.sign_message(encode_defunct(primitive=digest))
    payload["signature"] = bytes(signed.signature).hex()
    return payload


def verify_replacement(ledger: Ledger, me: Identity, payload: dict[str, Any],
                       held_share: Callable[[int], HeldShare | None]) -> HeldShare:  # fmt: skip
    """The new share of a replacement sent to ``me``, checked on chain (see the module's
    docstring); ``held_share``: the share ``me`` holds of a token now, if any."""
    what = "share replacement"
    if not isinstance(payload, dict) or not isinstance(payload.get("share"), dict):
        raise InvalidInput(f"{what}: expected an object with one share")
    if str(payload.get("custodian", "")).lower() != me.address.lower():
        raise InvalidInput(f"{what}: addressed to another custodian")
    signer = _signer(payload, _REPLACEMENT_DOMAIN, what)
    if signer.lower() != str(payload.get("signer", "")).lower():
        raise CredentialRejected(f"{what}: not signed by the account it names")
    item: dict[str, Any] = payload["share"]
    try:
        token_id = int(item["token_id"])
        category = str(item["category"])
        commitment = _hex(item["commitment"], "commitment")
        proof = merkle.unpack_proof(_hex(item["proof"], "proof"))
        sealed = _hex(item["sealed_share"], "sealed_share")
        original = None if item.get("original") is None else int(item["original"])
        issuer = Web3.to_checksum_address(str(payload["issuer"]))
        owner = Web3.to_checksum_address(str(payload["owner"]))
    except (KeyError, TypeError, ValueError):
        raise InvalidInput(f"{what}: needs issuer, owner and a share with token_id, "
                           "commitment, proof, category and sealed_share") from None  # fmt: skip
    batch = ledger.batch_of(token_id)
    if batch is None:
        raise NotFound(f"{what}: token {token_id} is not minted")
    batches = _Batches(ledger, issuer)
    if not batches.minted_by_issuer(batch.batch_id):
        raise AccessDenied(f"{what}: token {token_id} was not minted by {issuer}")
    chain_owner = ledger.owner_of(token_id)
    if chain_owner is None or chain_owner.lower() != owner.lower():
        raise AccessDenied(f"{what}: the chain does not give token {token_id} to {owner}")
    if signer.lower() not in (owner.lower(), issuer.lower()):
        raise AccessDenied(f"{what}: {signer} neither owns token {token_id} nor issued it")
    if not merkle.verify(merkle.leaf_hash(token_id, commitment), proof, batch.root):
        raise Tampered(f"{what}: token {token_id}'s commitment is not in its batch")
    held = held_share(token_id)
    same_record = (commitment, category, original)
    if held is not None and (held.commitment, held.category, held.original) != same_record:
        raise InvalidInput(f"{what}: token {token_id}'s commitment, category or original "
                           "differ from the share held")  # fmt: skip
    if held is None and original is not None:
        source = ledger.batch_of(original)
        if source is None or not batches.minted_by_issuer(source.batch_id):
            raise AccessDenied(f"{what}: token {token_id} is said to be a copy of token "
                               f"{original}, which {issuer} did not mint")  # fmt: skip
    key_ref = _hex(payload.get("key_ref"), "key_ref")
    wrapped = _hex(payload.get("wrapped_key"), "wrapped_key")
    key = BatchKey.unwrap(me.enc_private, wrapped, key_ref)  # Tampered: not for this custodian
    open_share(sealed, key, token_id, commitment)  # Tampered when it does not open
    return HeldShare(token_id, key_ref, wrapped, sealed, commitment, category,
                     issuer, original)  # fmt: skip
