"""Joining a running network and admitting a member.

A joining institution runs ``healthnft join NETWORK_JSON``: a new home with its own key
(no admin key), attached to the network's chain after every check passes, and a
membership application in ``HOME/application.json``. The application is signed by the
new key (EIP-191), so nobody can apply in another address's name with their own
encryption key. The admin side runs ``participant admit APPLICATION_JSON``: the
signature, chain and registry are checked, then the member is registered on chain (kind,
encryption key, did:key, gas money, issuer right for hospitals, custodian flag for
custodians). Names never reach the chain: the application carries none.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from healthnft.errors import AccessDenied, InputNotFound, InvalidInput
from healthnft.home import write_private

if TYPE_CHECKING:
    from healthnft.keys import Identity
    from healthnft.network import Network

APPLICATION_FILE = "application.json"
APPLICATION_FORMAT = "healthnft-membership-application/1"
NETWORK_FORMAT = "healthnft-network/1"
_SIGNED_FIELDS = ("format", "chain_id", "registry", "address", "kind", "enc_public",
                  "did_public")  # fmt: skip


@dataclass(frozen=True)
class Joined:
    home: str
    address: str
    kind: str
    chain_id: int
    rpc_url: str
    application: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Admitted:
    address: str
    kind: str
    issuer: bool
    custodian: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_json_file(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from ``path``; one clear error when it is missing or not one."""
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputNotFound(f"no {what} at {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidInput(f"{path} is not a readable JSON {what}") from None
    if not isinstance(doc, dict):
        raise InvalidInput(f"{path} is not a JSON object ({what})")
    return doc


def network_document(net: Network, *, rpc_urls: list[str] | None = None,
                     nodes: dict[str, Any] | None = None,
                     custodians: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    """What a joining institution needs to attach to ``net``'s network: chain id, RPC
    URLs, contract addresses and fingerprint, the admin's address, node and custodian
    URLs. Built from a home's public configuration only: it never holds a secret."""
    c = net.config
    if c.get("backend") != "jsonrpc":
        raise InvalidInput("only a network on JSON-RPC nodes can be joined (init --rpc)")
    return {
        "format": NETWORK_FORMAT,
        "chain_id": int(c["chain_id"]),
        "rpc_urls": list(rpc_urls or [c["rpc_url"]]),
        "evm_version": c.get("evm_version"),
        "confirmations": int(c.get("confirmations", 1)),
        "admin": c["admin"],
        "contracts": {"fingerprint": c["contracts"], "registry": c["registry"],
                      "token": c["token"], "consent": c["consent"],
                      **({"drugs": c["drugs"]} if c.get("drugs") else {})},  # fmt: skip
        "nodes": nodes or {},
        "custodians": custodians if custodians is not None else [
            {"url": (c.get("custodian_urls") or {}).get(a), "address": a}
            for a in c.get("custodians", [])],  # fmt: skip
    }


def _signed_text(doc: dict[str, Any]) -> str:
    return json.dumps({k: doc[k] for k in _SIGNED_FIELDS}, sort_keys=True,
                      separators=(",", ":"))  # fmt: skip


def application(net: Network, ident: Identity) -> dict[str, Any]:
    """The membership application of ``ident``, this joined home's member, signed by it."""
    from eth_account.messages import encode_defunct

    doc: dict[str, Any] = {
        "format": APPLICATION_FORMAT,
        "chain_id": int(net.config["chain_id"]),
        "registry": net.config["registry"],
        "address": ident.address,
        "kind": net.config["member"]["kind"],
        "enc_public": ident.enc_public.hex(),
        "did_public": ident.did_public.hex(),
    }
    signed = ident.account.sign_message(encode_defunct(text=_signed_text(doc)))
    doc["signature"] = "0x" + bytes(signed.signature).hex()
    return doc


#: The scheme of a membership card: a link (or its QR code) a wallet shows, carrying its
#: signed application and nothing else.
LINK_SCHEME = "healthnft:"
_LINK_PATH = "apply"
#: Link parameter -> application field. Public values only: the chain and registry it is
#: for, the address, the kind, the two public keys (encryption: records are wrapped for
#: it; did:key: bound on chain so the wallet can prove itself to a node) and the
#: applicant's signature over all of them (nobody can register another's address with
#: their own encryption key).
_LINK_FIELDS = {"v": "format", "chain": "chain_id", "registry": "registry",
                "address": "address", "kind": "kind", "enc": "enc_public",
                "did": "did_public", "sig": "signature"}  # fmt: skip


def application_link(doc: dict[str, Any]) -> str:
    """The ``healthnft:`` link of a membership application: the same signed, public
    fields, short enough for a QR code (about 400 characters)."""
    from urllib.parse import urlencode

    try:
        params = {short: str(doc[name]) for short, name in _LINK_FIELDS.items()}
    except KeyError:
        raise InvalidInput("the application lacks a field: join again") from None
    params["v"] = params["v"].rsplit("/", 1)[-1]
    return f"{LINK_SCHEME}{_LINK_PATH}?{urlencode(params)}"


def read_application(source: str | Path) -> dict[str, Any]:
    """A membership application from a ``healthnft:`` link or an application file; the
    same document either way (:func:`check_application` checks it)."""
    from urllib.parse import parse_qs, urlsplit

    text = str(source).strip()
    if not text.startswith(LINK_SCHEME):
        return read_json_file(Path(source), "membership application")
    parts = urlsplit(text)
    query = parse_qs(parts.query, keep_blank_values=True)
    if parts.path != _LINK_PATH or any(len(v) != 1 for v in query.values()) or set(
            query) != set(_LINK_FIELDS):
        raise InvalidInput(f"not a membership link ({LINK_SCHEME}{_LINK_PATH}?"
                           f"{'&'.join(f'{k}=…' for k in _LINK_FIELDS)})")  # fmt: skip
    doc: dict[str, Any] = {name: query[short][0] for short, name in _LINK_FIELDS.items()}
    doc["format"] = f"{APPLICATION_FORMAT.rsplit('/', 1)[0]}/{doc['format']}"
    try:
        doc["chain_id"] = int(doc["chain_id"])
    except ValueError:
        raise InvalidInput("the membership link's chain id is not a number") from None
    return doc


@dataclass(frozen=True)
class Card:
    """What a member's home shows so that it can be registered: its application as a
    ``healthnft:`` link (for a QR code) and the public values in it. No secret."""

    address: str
    kind: str
    chain_id: int
    enc_public: str
    link: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def card(net: Network, passphrase: str | None = None) -> Card:
    """This joined home's membership card: the application ``join`` wrote (signed then),
    or, when that file is gone, the application signed again with the member's key."""
    member = net.config.get("member") or {}
    address = str(member.get("address") or "")
    if not address:
        raise InvalidInput("this home joined no network as a member (healthnft join)")
    path = net.home / APPLICATION_FILE
    doc = read_json_file(path, "membership application") if path.exists() else None
    if doc is None or str(doc.get("address", "")).lower() != address.lower():
        doc = application(net, net.identity(address, passphrase))
    check_application(net, doc)  # a card that an office would refuse is not shown
    return Card(address, str(doc["kind"]), int(doc["chain_id"]), str(doc["enc_public"]),
                application_link(doc))  # fmt: skip


def join(home: Path, passphrase: str, network: dict[str, Any], kind: str, name: str, *,
         rpc_url: str | None = None) -> Joined:  # fmt: skip
    """A new home attached to ``network`` with one new member of ``kind``, and its
    application written to ``HOME/application.json`` (see :func:`admit`)."""
    from healthnft.network import Network

    net, ident = Network.attach(home, passphrase, network, kind, name, rpc_url=rpc_url)
    try:
        doc = application(net, ident)
        path = net.home / APPLICATION_FILE
        write_private(path, (json.dumps(doc, indent=2) + "\n").encode())
        return Joined(str(home), ident.address, kind, int(net.config["chain_id"]),
                      net.config["rpc_url"], str(path))  # fmt: skip
    finally:
        net.close()


def application_terms(net: Network) -> dict[str, Any]:
    """What an applicant signs besides its own public keys: the application format, this
    network's chain id and registry. Public; a browser wallet builds and signs its
    application (its ``healthnft:`` card) from them, as :func:`application` does here."""
    return {"format": APPLICATION_FORMAT, "link_version": APPLICATION_FORMAT.rsplit("/", 1)[-1],
            "chain_id": int(net.config.get("chain_id") or net.ledger.chain_id),
            "registry": net.config["registry"]}  # fmt: skip


def check_application(net: Network, doc: dict[str, Any]) -> tuple[str, str, bytes, bytes]:
    """The applicant's (address, kind, encryption key, did:key), once the application is
    well formed, for this network, and signed by the address it names."""
    from eth_account import Account
    from eth_account.messages import encode_defunct
    from web3 import Web3

    from healthnft.ledger.client import KIND_CODES

    try:
        if doc["format"] != APPLICATION_FORMAT:
            raise InvalidInput(f"not a membership application ({APPLICATION_FORMAT})")
        address, kind = str(doc["address"]), str(doc["kind"])
        enc, did = bytes.fromhex(doc["enc_public"]), bytes.fromhex(doc["did_public"])
        signature = bytes.fromhex(str(doc["signature"]).removeprefix("0x"))
        chain_id, registry = int(doc["chain_id"]), str(doc["registry"])
        text = _signed_text(doc)
    except (KeyError, TypeError, ValueError):
        raise InvalidInput("the application lacks a field or holds a malformed one "
                           f"({', '.join(_SIGNED_FIELDS)}, signature)") from None  # fmt: skip
    if not Web3.is_address(address) or len(enc) != 32 or len(did) != 32:
        raise InvalidInput("the application's address or public keys are malformed")
    if kind not in KIND_CODES:
        raise InvalidInput(f"the application's kind {kind!r} is not one of {', '.join(KIND_CODES)}")
    if chain_id != int(net.config.get("chain_id") or net.ledger.w3.eth.chain_id) or (
        registry.lower() != net.config["registry"].lower()
    ):
        raise InvalidInput("the application is for another network (chain id or registry)")
    try:
        signer = Account.recover_message(encode_defunct(text=text), signature=signature)
    except Exception:  # noqa: BLE001 - any malformed signature is one answer
        signer = None
    if signer is None or signer.lower() != address.lower():
        raise AccessDenied("the application is not signed by the address it names: refused")
    return Web3.to_checksum_address(address), kind, enc, did


def admit(net: Network, doc: dict[str, Any], *, issuer: bool | None = None,
          passphrase: str | None = None) -> Admitted:  # fmt: skip
    """Register an applicant on chain, as this home's admin key may.

    Without a council that is anyone; once a council owns the network, the admin key is
    at most the patients' enrolment office (the registry's registrar role): an
    institution is refused here, before any transaction, with who decides instead (see
    :mod:`healthnft.consortium.council`). Retry safe: each on-chain step already done is
    skipped."""
    from healthnft.ledger.governance import Governance

    address, kind, enc, did = check_application(net, doc)
    if kind != "patient" and Governance.of(net.ledger) is not None:
        raise AccessDenied(
            f"this network is governed by its founding institutions' council: a {kind} is "
            "admitted by k of them, not by one key (`healthnft consortium admit APPLICATION "
            "--dir DIR` on a local consortium; else each founder's `healthnft governance "
            "propose|approve`)")
    admin = net.admin(passphrase, to="admit members")
    is_issuer = net.admit_member(admin, address, kind, enc, did, issuer)
    return Admitted(address, kind, is_issuer, kind == "custodian")
