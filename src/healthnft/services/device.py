"""The patient's device opens its own records: the node hands over only sealed bytes.

For the signed-in owner of a token, :func:`sealed_record` answers what the page's
``wallet/crypto.js`` needs to open the record on the device, and nothing it could
read: the public row (commitment, Merkle proof, ciphertext digest, key id), the DEK
sealed under the batch key, the batch key HPKE-wrapped for the owner's own
encryption key (as minted, or as re-wrapped by a transfer), the ciphertext, and where
the chain says it was minted (batch id, token contract). The batch root is not in it:
the page reads it from the chain itself through :func:`chain_read` (``POST /rpc``, a
read-only JSON-RPC window). The node never unwraps or decrypts here: every check (proof
against the root, digest, AEAD, commitment) runs on the device, so a tampered blob or
row reaches the page as it is and the page says "tampered".

Who may ask: only the token's current owner on chain. Anyone else gets
:data:`~healthnft.services.access.NOT_VISIBLE`, as from every other door; a burned
token is said to be burned only to its last owner. :func:`sealed_listing` is the
device's list: coarse catalogue metadata only (no summary, which needs the content).
:func:`study_chunk` hands the owner one encrypted chunk of an imaging study's stream,
by the digest the page read in the record it opened (the stream index is inside the
sealed record: the node cannot say which chunk is which, only that it is the token's).
:func:`demo_patients` lists a demo home's patients for the page and
:func:`demo_patient_keystore` hands one's keystore over, made from the public demo seed
on request (demo only: the home keeps none).

Kept apart from ``services/own_records.py`` (a patient's own home, CLI): the same
rule, another door; to be reconciled.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from healthnft.errors import AccessDenied, NotFound, Tampered
from healthnft.services.access import BURNED, NOT_VISIBLE, check_token_ids, same

if TYPE_CHECKING:
    from healthnft.keys import Identity
    from healthnft.network import Network
    from healthnft.vault.catalog import Participant

__all__ = ["RPC_METHODS", "SealedRecord", "chain_read", "demo_patient_keystore",
           "demo_patients", "sealed_listing", "sealed_record", "study_chunk"]

#: What the page may ask the chain through the node (``POST /rpc``): reads only.
RPC_METHODS = frozenset({"eth_chainId", "eth_blockNumber", "eth_call"})
#: The token contract's views an ``eth_call`` may name: where a batch root is read.
RPC_VIEWS = ("batch_of(uint256)", "batch_root(uint256)")


@dataclass(frozen=True)
class SealedRecord:
    """What a device needs to open one record it owns; nothing here is plaintext."""

    token_id: int
    batch_id: int
    key_id: bytes  # which wrapped key opens the DEK: HPKE info (batch_ref, or key_ref)
    commitment: bytes
    proof: bytes  # packed Merkle siblings, 32 bytes each
    blob_digest: bytes  # sha256 of the ciphertext
    sealed_dek: bytes
    wrapped_key: bytes  # the batch key, HPKE-wrapped for the owner's encryption key
    ciphertext: bytes
    token_contract: str  # where the page reads the batch root itself (POST /rpc)
    category: str  # coarse catalogue metadata, as listed
    resource_type: str
    superseded_by: int | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: bytes as lowercase hex, the ciphertext as base64."""
        out = asdict(self)
        for name in ("key_id", "commitment", "proof", "blob_digest", "sealed_dek",
                     "wrapped_key"):  # fmt: skip
            out[name] = out[name].hex()
        out["ciphertext"] = base64.b64encode(self.ciphertext).decode()
        return out


def _owned_by(net: Network, token_id: int, caller: str) -> str:
    """The token's owner on chain when it is ``caller``; a burned token is said so to
    its last owner only; anything else is :data:`NOT_VISIBLE`."""
    check_token_ids(token_id)
    owner = net.ledger.owner_of(token_id)
    if same(owner, caller):
        assert owner is not None
        return owner
    if owner is None and 0 < token_id < net.ledger.next_token_id() \
            and net.wallet().could_see_burned(token_id, caller):  # fmt: skip
        raise AccessDenied(f"token {token_id}: {BURNED}")
    raise NotFound(NOT_VISIBLE)


def sealed_record(net: Network, caller: str, token_id: int) -> SealedRecord:
    """The sealed record ``token_id`` for its owner ``caller`` to open on their device.

    Nothing is decrypted or unwrapped here, and the ciphertext is not checked against
    its digest: the device checks everything, so what was altered shows as tampered
    there. A record whose ciphertext this home no longer holds is :class:`Tampered`.
    """
    owner = _owned_by(net, token_id, caller)
    row = net.catalog.record(token_id)
    if row is None:  # minted at another node: its ciphertext is there, not here
        raise NotFound(NOT_VISIBLE)
    if row.status == "burned" or not row.sealed_dek:
        raise AccessDenied(f"token {token_id}: {BURNED}")
    wrapped = net.catalog.batch_key(row.key_id, owner)
    if wrapped is None:
        raise AccessDenied(f"token {token_id}: no key is wrapped for its owner in this home")
    info = net.ledger.batch_of(token_id)
    if info is None:
        raise NotFound(NOT_VISIBLE)
    ciphertext = net.blobs.get(row.blob_digest)
    if ciphertext is None:
        raise Tampered(f"token {token_id}: ciphertext is missing from the vault")
    return SealedRecord(
        token_id=token_id, batch_id=info.batch_id, key_id=row.key_id,
        commitment=row.commitment, proof=row.proof,
        blob_digest=row.blob_digest, sealed_dek=row.sealed_dek, wrapped_key=wrapped,
        ciphertext=ciphertext, token_contract=net.ledger.token.address,
        category=row.category, resource_type=row.resource_type,
        superseded_by=net.ledger.superseded_by(token_id),
    )  # fmt: skip


def study_chunk(net: Network, caller: str, token_id: int, digest: str) -> bytes:
    """One encrypted chunk of the imaging study ``token_id``, for its owner ``caller``:
    the chunk stored under ``digest`` (sha256, hex) that this home journaled for that
    token. Sealed bytes only; the device checks the digest, the chunk's AEAD (stream key,
    position, last-chunk flag, commitment) and every instance's hash itself. Any other
    digest is :data:`NOT_VISIBLE`, as a chunk of someone else's study would be."""
    from healthnft.errors import InvalidInput

    _owned_by(net, token_id, caller)
    try:
        wanted = bytes.fromhex(digest)
    except ValueError:
        raise InvalidInput("a chunk is named by its sha256 digest, 64 hex digits") from None
    if len(wanted) != 32:
        raise InvalidInput("a chunk is named by its sha256 digest, 64 hex digits")
    row = net.catalog.record(token_id)
    if row is None or wanted not in set(net.catalog.record_blobs(token_id)):
        raise NotFound(NOT_VISIBLE)
    chunk = net.blobs.get(wanted)
    if chunk is None:
        raise Tampered(f"token {token_id}: a chunk of the study is missing from the vault")
    return chunk


def chain_read(net: Network, method: str, params: list[Any]) -> str:
    """Answer one read-only JSON-RPC call from the page, as the chain answers it.

    Only :data:`RPC_METHODS`; an ``eth_call`` only to the token contract, only one of
    :data:`RPC_VIEWS` with one uint256 argument, at ``latest``. Anything else is
    :class:`~healthnft.errors.InvalidInput` (the node relays no transaction here); a call
    the contract reverts (a token that does not exist) is :class:`~healthnft.errors.Conflict`.
    """
    from eth_utils import keccak

    from healthnft.errors import Conflict, InvalidInput

    if method not in RPC_METHODS:
        raise InvalidInput(f"method not allowed here: {method[:40]}")
    w3 = net.ledger.w3
    if method == "eth_chainId":
        return hex(int(w3.eth.chain_id))
    if method == "eth_blockNumber":
        return hex(int(w3.eth.block_number))
    if not 1 <= len(params) <= 2 or not isinstance(params[0], dict) \
            or (len(params) == 2 and params[1] != "latest"):  # fmt: skip
        raise InvalidInput("eth_call takes [{to, data}, \"latest\"]")
    call = params[0]
    if set(call) - {"to", "data", "input"} or not same(str(call.get("to")),
                                                       net.ledger.token.address):  # fmt: skip
        raise InvalidInput("eth_call may only read the health-record token contract")
    data = str(call.get("data") or call.get("input") or "")
    try:
        raw = bytes.fromhex(data.removeprefix("0x"))
    except ValueError:
        raise InvalidInput("eth_call data is not hex") from None
    if len(raw) != 36 or raw[:4] not in {keccak(text=v)[:4] for v in RPC_VIEWS}:
        raise InvalidInput(f"eth_call may only read {' or '.join(RPC_VIEWS)}")
    try:
        answer = w3.eth.call({"to": net.ledger.token.address, "data": "0x" + raw.hex()})
    except Exception as exc:  # web3, eth-tester and nodes each raise their own revert
        if "revert" not in str(exc).lower():
            raise  # not the contract's answer (a node down): said as it is
        raise Conflict("execution reverted") from None
    return "0x" + bytes(answer).hex()


def sealed_listing(net: Network, owner: str) -> list[dict[str, Any]]:
    """``owner``'s records as the device lists them: token, category, type, status and
    the catalogue's coarse date; no summary (that needs the content, opened on the
    device), so nothing here was decrypted."""
    from healthnft.services import describe, records

    rows = [r.as_dict() for r in records.list_records(net, owner)]
    for row in rows:
        row["category_title"] = describe.category_title(row["category"])
    rows.sort(key=lambda r: r.get("effective_date") or "", reverse=True)
    return rows


def demo_patients(net: Network) -> list[dict[str, Any]]:
    """Demo homes only: the demo patients the page's "use a demo patient" button offers
    (address and label: public). Their keys are handed over one at a time, when chosen
    (:func:`demo_patient_keystore`). A home that is not a demo answers ``NotFound`` (and
    its app has no such route)."""
    return [{"address": p.address, "name": p.label, "demo": True}
            for p, _ident in _seeded_patients(net)]  # fmt: skip


def demo_patient_keystore(net: Network, address: str) -> dict[str, Any]:
    """Demo homes only: the demo patient ``address``'s keystore, locked with the
    documented demo passphrase, for the page to keep on the device.

    Made on request from the public demo seed
    (:func:`~healthnft.network.demo_patient_identity`): the node's home keeps no patient
    key, and this answer is the one explicit hand-over of one to the page. An address
    that is not a demo patient's is :class:`NotFound`."""
    from healthnft.keys import keystore_document
    from healthnft.network import DEMO_PASSPHRASE

    for p, ident in _seeded_patients(net):
        if same(p.address, address):
            return {"address": p.address, "name": p.label, "demo": True,
                    "passphrase": DEMO_PASSPHRASE,
                    "keystore": keystore_document(bytes(ident.account.key), DEMO_PASSPHRASE,
                                                  light=True)}  # fmt: skip
    raise NotFound("no demo patient has this address")


def _seeded_patients(net: Network) -> list[tuple[Participant, Identity]]:
    """The home's patients whose keys the public demo seed gives (not one admitted from a
    card of their own), with those keys; ``NotFound`` on a home that is not a demo."""
    from healthnft.network import demo_patient_identity

    if not net.is_demo:
        raise NotFound("not a demo network")
    out = []
    for p in net.catalog.participants("patient"):
        ident = demo_patient_identity(p.label)
        if same(ident.address, p.address):
            out.append((p, ident))
    return out
