"""Key custodians as services of their own: their homes, their registration, deliveries.

Three parties, three doors, one module:

- **a custodian** (``healthnft --home C custodian init --network FILE``) makes its own
  home: a keystore that never leaves it, the chain's address and the contracts'. It
  prints its address and encryption key for the network's admin; ``custodian serve``
  then answers challenges, accepts issuers' share deliveries and releases shares
  (:class:`CustodianNode`, over :class:`~healthnft.consent.CustodianService`, which
  decides each release from its own reading of the chain and logs it there);
- **the admin** registers it (``participant add-custodian --address --enc-key --url``):
  on chain as a custodian, funded for its access logs, its URL in the home's config;
- **an issuer** pushes each minted batch's sealed shares to every custodian with a URL
  (:func:`deliver_pending`, run after each mint and by ``custodian deliver``): a
  delivery not acknowledged stays pending and is sent again next time. A record
  re-split for a new owner (a transfer, a guardian recovery's re-key) is pushed the same
  way, as a replacement the custodian checks against the token's owner on chain.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from healthnft.errors import Conflict, HealthNFTError, InvalidInput, NotFound

if TYPE_CHECKING:
    from healthnft.consent.accesslog import Settler
    from healthnft.consent.custodian import CustodianService
    from healthnft.consent.remote import RemoteCustodian
    from healthnft.keys import Identity
    from healthnft.ledger.client import Ledger
    from healthnft.network import Network
    from healthnft.store import Index

#: What a network description must give a custodian (a ``network.json`` or the public
#: ``config.json`` of a home on the same chain: neither holds a secret).
_NETWORK_FIELDS = ("rpc_url", "chain_id", "registry", "token", "consent")


@dataclass(frozen=True)
class CustodianCreated:
    home: str
    address: str
    enc_key: str
    rpc_url: str
    chain_id: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Deliveries:
    """What an issuer's push achieved: batches delivered, and what is still pending."""

    delivered: int = 0
    pending: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _network_description(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise NotFound(f"no network description at {path}") from None
    except json.JSONDecodeError:
        raise InvalidInput(f"{path} is not valid JSON") from None
    missing = [f for f in _NETWORK_FIELDS if not isinstance(doc, dict) or not doc.get(f)]
    if missing:
        raise InvalidInput(f"{path} lacks {', '.join(missing)}: give a network.json or the "
                           "config.json of a home on a JSON-RPC node")  # fmt: skip
    return {f: doc[f] for f in _NETWORK_FIELDS}


def _ledger(config: dict[str, Any]) -> Ledger:
    from healthnft.errors import ChainMissing
    from healthnft.ledger.client import Ledger
    from healthnft.ledger.rpc import rpc_web3

    w3 = rpc_web3(config["rpc_url"], chain_id=int(config["chain_id"]))  # Unavailable, Conflict
    ledger = Ledger(w3, config["registry"], config["token"], config["consent"],
                    confirmations=int(config.get("confirmations", 1)))  # fmt: skip
    if ledger.missing_contracts():
        raise ChainMissing(f"the chain at {config['rpc_url']} has no healthnft contracts at "
                           "the addresses given")  # fmt: skip
    return ledger


def create_custodian_home(home: Path, passphrase: str, network_file: Path) -> CustodianCreated:
    """A custodian's own home on the network ``network_file`` describes: a new key
    (kept only here), checked against the chain before anything is written."""
    from healthnft import keys
    from healthnft.home import Home

    files = Home(home)
    if files.exists():
        raise Conflict(f"{home} already holds a home: a custodian needs a home of its own")
    config: dict[str, Any] = {"role": "custodian", "backend": "jsonrpc",
                              **_network_description(network_file)}  # fmt: skip
    _ledger(config)  # unreachable node, other chain, no contracts: refused before writing
    files.make_private()
    ident = keys.write_keystore(files.keystore_dir, keys.new_secret(), passphrase)
    config["custodian"] = ident.address
    files.write_config(config)
    files.open_index().close()  # created 0600, migrated: the service finds it ready
    return CustodianCreated(str(home), ident.address, ident.enc_public.hex(),
                            config["rpc_url"], int(config["chain_id"]))  # fmt: skip


@dataclass
class CustodianNode:
    """A running custodian: its key, its reading of the chain, the shares it was given,
    and the settler that gets each release's access log mined (a release waits only
    for the node to accept the log: :mod:`healthnft.consent.accesslog`)."""

    identity: Identity
    ledger: Ledger
    index: Index
    service: CustodianService
    settler: Settler

    @classmethod
    def open(cls, home: Path, passphrase: str, *, settle: bool = True) -> CustodianNode:
        """The custodian of ``home``, its key unlocked. Logs a crash left pending are
        handed to the node again before anything else; with ``settle`` the settler
        thread runs until :meth:`close`."""
        from healthnft import keys
        from healthnft.consent.accesslog import BroadcastLog, Settler
        from healthnft.consent.custodian import CustodianService, OwnShares
        from healthnft.home import Home

        files = Home(home)
        config = files.read_config()
        if config.get("role") != "custodian":
            raise InvalidInput(f"{home} is not a custodian's home (make one with "
                               "`healthnft --home DIR custodian init --network FILE`)")  # fmt: skip
        ident = keys.read_keystore(files.keystore_dir, config["custodian"], passphrase)
        from healthnft.store.events import ChainEvents

        ledger = _ledger(config)
        index = files.open_index()
        ledger.attach_event_store(ChainEvents(index.db))  # its own index of the chain's events
        log = BroadcastLog(ledger, index.access_logs)
        service = CustodianService(ident, ledger, OwnShares(index.held), index.challenges,
                                   index.held.original_of, log)  # fmt: skip
        settler = Settler(log, ident.account)
        settler.resume()
        if settle:
            settler.start()
        return cls(ident, ledger, index, service, settler)

    def challenge(self) -> dict[str, str]:
        """A one-time challenge for this custodian's domain."""
        return {"challenge": self.service.challenge(), "domain": self.service.domain,
                "custodian": self.identity.address}  # fmt: skip

    def accept(self, delivery: dict[str, Any]) -> int:
        """Keep an issuer's share delivery once it checks out on chain; how many shares."""
        from healthnft.consent.delivery import verify_delivery

        shares = verify_delivery(self.ledger, self.identity, delivery)
        # A mint's share never displaces one held under another key: that is a re-split
        # share (a transfer, a recovery), newer than any mint delivery, even a replayed one.
        held = self.index.held.share
        keep = [s for s in shares if (h := held(s.token_id)) is None or h.key_ref == s.key_ref]
        self.index.held.keep(keep)
        return len(shares)

    def replace(self, replacement: dict[str, Any]) -> int:
        """Keep a record's re-split share (after a transfer or a recovery) once the chain
        says its sender owns or issued the token and the owner it names owns it now; the
        token id. From then on it is the share released for that token."""
        from healthnft.consent.delivery import verify_replacement

        share = verify_replacement(self.ledger, self.identity, replacement,
                                   self.index.held.share)  # fmt: skip
        self.index.held.keep([share])
        return share.token_id

    def release(self, token_id: int, grant_id: int, requester: str, presentation: str) -> str:
        """The share of ``token_id`` wrapped for ``requester`` (hex), logged on chain."""
        return self.service.release(token_id, grant_id, requester, presentation).hex()

    def status(self) -> dict[str, Any]:
        """What an operator checks: shares held and the access logs' settlement."""
        return {"custodian": self.identity.address, "shares": self.index.held.count(),
                "access_logs": self.settler.status()}  # fmt: skip

    def close(self) -> None:
        self.settler.stop()
        self.index.close()


def custodian_status(home: Path) -> dict[str, Any]:
    """A custodian home's access logs read from its store (no key needed, nothing sent:
    safe beside a running ``custodian serve``). ``healthy`` is False when a log failed
    or has waited longer than the settler's overdue limit."""
    from healthnft.consent.accesslog import overdue_report
    from healthnft.home import Home

    files = Home(home)
    config = files.read_config()
    if config.get("role") != "custodian":
        raise InvalidInput(f"{home} is not a custodian's home")
    index = files.open_index()
    try:
        logs = overdue_report(index.access_logs)
        return {"custodian": config["custodian"], "shares": index.held.count(),
                "access_logs": logs,
                "healthy": not logs["failed"] and not logs["overdue"]}  # fmt: skip
    finally:
        index.close()


def add_remote_custodian(net: Network, address: str, enc_key: str, url: str) -> dict[str, str]:
    """The admin registers a custodian that runs in its own home, reachable at ``url``."""
    from web3 import Web3

    if not Web3.is_address(address):
        raise InvalidInput("--address is not a 0x… Ethereum address")
    try:
        key = bytes.fromhex(enc_key.removeprefix("0x"))
    except ValueError:
        raise InvalidInput("--enc-key is not hex") from None
    if len(key) != 32:
        raise InvalidInput("--enc-key must be the custodian's 32-byte X25519 key (64 hex)")
    if not url.startswith(("http://", "https://")):
        raise InvalidInput("--url must be an http(s) URL")
    member = net.add_remote_custodian(Web3.to_checksum_address(address), key, url)
    return {"address": member.address, "kind": "custodian", "url": url}


def _batch_deliveries(net: Network, issuer: Identity, key_ref: bytes,
                      custodian: str) -> list[dict[str, Any]]:  # fmt: skip
    """The signed messages carrying one batch's shares for ``custodian`` (in parts of
    at most half the custodian's limit, so a batch of any size gets through)."""
    from healthnft.consent.delivery import MAX_SHARES, sign_delivery

    wrapped, sealed = net.catalog.custody.batch_shares(key_ref, custodian)
    shares = []
    for token_id, share in sealed:
        body = _share_of(net, token_id, share)
        if body is not None:
            shares.append(body)
    part = MAX_SHARES // 2
    return [sign_delivery(issuer, custodian, key_ref, wrapped, shares[i : i + part])
            for i in range(0, len(shares), part)]  # fmt: skip


def _share_of(net: Network, token_id: int, share: bytes) -> dict[str, Any] | None:
    """What a custodian is told of one record's share (None: not in this catalogue)."""
    row = net.catalog.catalogue.record(token_id)
    if row is None:
        return None
    return {"token_id": token_id, "commitment": row.commitment.hex(), "proof": row.proof.hex(),
            "category": row.category, "sealed_share": share.hex(),
            "original": net.derivatives().original_of(token_id)}  # fmt: skip


@dataclass
class _Keys:
    """The keys one delivery run signs with, each unlocked once (a keystore's KDF costs
    ~0.5 s: once per message was most of a replacement's time, measured)."""

    net: Network
    passphrase: str | None
    unlocked: dict[str, Identity] = field(default_factory=dict)

    def identity(self, address: str) -> Identity:
        found = self.unlocked.get(address.lower())
        if found is None:
            found = self.unlocked[address.lower()] = self.net.identity(address, self.passphrase)
        return found


def _replacement(net: Network, key_ref: bytes, token_id: int, custodian: str,
                 keys: _Keys) -> dict[str, Any] | None:  # fmt: skip
    """The signed replacement of ``custodian``'s share of ``token_id``, re-split under
    ``key_ref``; signed by its owner now if this home holds that key (the recovered
    account, or a hosted patient), else by its issuer (the hospital node that re-sealed
    a transfer its patient signed on their device). None: neither key is here (the
    home that holds one delivers it)."""
    from healthnft.consent.delivery import sign_replacement
    from healthnft.errors import CredentialRejected

    row = net.catalog.catalogue.record(token_id)
    wrapped, sealed = net.catalog.custody.batch_shares(key_ref, custodian)
    share = dict(sealed).get(token_id)
    if row is None or share is None:
        return None
    refused: CredentialRejected | None = None
    for who in (row.owner, row.issuer):
        if not net.has_key(who):
            continue
        try:
            signer = keys.identity(who)
        except CredentialRejected as exc:  # the other key may open with it
            refused = exc
            continue
        body = _share_of(net, token_id, share)
        assert body is not None  # the row is here
        return sign_replacement(signer, custodian, row.issuer, row.owner, key_ref, wrapped, body)
    if refused is not None:
        raise refused
    return None


def deliver_if_remote(net: Network, passphrase: str | None = None) -> list[str]:
    """After a mint, a transfer or a recovery's re-key: push the new shares when the
    network has remote custodians; what is still pending (empty when all were
    delivered or there is none to deliver to)."""
    if not net.config.get("custodian_urls"):
        return []
    return deliver_pending(net, passphrase).pending


def deliver_pending(net: Network, passphrase: str | None = None) -> Deliveries:
    """Push every share not yet acknowledged by a remote custodian: each minted batch's
    (signed by its issuer), then each record re-split since (a transfer or a guardian
    recovery re-sealed it for a new owner: a replacement, signed by that owner or the
    issuer, that the custodian checks on chain before it keeps it).

    A custodian that does not answer (or refuses) keeps its deliveries pending, named
    in the result; nothing else is held back. Safe to run any number of times."""
    from healthnft.consent.remote import RemoteCustodian

    delivered, pending = 0, []
    keys = _Keys(net, passphrase)
    for address, url in net.config.get("custodian_urls", {}).items():
        remote = RemoteCustodian(address, url)
        try:
            for _ in itertools.chain(_deliver_batches(net, remote, keys),
                                     _deliver_replacements(net, remote, keys)):  # fmt: skip
                delivered += 1
        except HealthNFTError as exc:
            pending.append(f"{address} at {url}: {exc}")
            # this custodian's other deliveries wait for the next try
    return Deliveries(delivered, pending)


def _deliver_batches(net: Network, remote: RemoteCustodian,
                     keys: _Keys) -> Iterator[bytes]:  # fmt: skip
    """Send ``remote`` the minted batches' shares it has not acknowledged, yielding each
    batch's key ref once it has."""
    for key_ref in net.catalog.custody.undelivered(remote.address):
        batch = net.catalog.batch(key_ref)
        if batch is None or not net.has_key(batch.issuer):
            continue  # another home's batch: its issuer delivers it
        for message in _batch_deliveries(net, keys.identity(batch.issuer), key_ref,
                                         remote.address):  # fmt: skip
            remote.deliver(message)
        net.catalog.custody.mark_delivered(key_ref, remote.address, time.time())
        yield key_ref


def _deliver_replacements(net: Network, remote: RemoteCustodian,
                          keys: _Keys) -> Iterator[bytes]:  # fmt: skip
    """Send ``remote`` the re-split records' shares it has not acknowledged, yielding
    each one's key ref once it has."""
    for key_ref, token_id in net.catalog.custody.rekeyed_undelivered(remote.address):
        message = _replacement(net, key_ref, token_id, remote.address, keys)
        if message is None:
            continue  # neither its owner's key nor its issuer's is here
        remote.replace(message)
        net.catalog.custody.mark_delivered(key_ref, remote.address, time.time())
        yield key_ref
