"""One home directory = one node of the network, opened as a :class:`Network`.

Layout of a home::

    HOME/config.json     deployment addresses, backend, demo flag
    HOME/chain.sqlite    the embedded chain (py-evm state, persisted)
    HOME/vault.sqlite    ciphertexts, content-addressed (table ``blobs``)
    HOME/index.sqlite    the index: catalogue, minting journal, custody, transfers,
                         derivative links, request reasons, one-time challenges
                         (schema-versioned; see :mod:`healthnft.store`)
    HOME/keystore/       one keystore v3 file per local participant (on a demo home,
                         the institutions' only: see :attr:`Network.seeded_patients`)
    HOME/secret.key      the home's HMAC key for record de-duplication

This module composes the lower layers (records, vault, ledger, minting,
wallet) and is what the CLI and the API call; nothing below imports it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from healthnft import keys
from healthnft.errors import (
    AccessDenied,
    ChainMissing,
    Conflict,
    CredentialRejected,
    InvalidInput,
    NotAnIssuer,
    UnknownParticipant,
)
from healthnft.home import Home, write_private
from healthnft.keys import Identity
from healthnft.ledger.client import ISSUER_KINDS, KIND_CODES, Ledger
from healthnft.ledger.compiler import DEFAULT_EVM_VERSION
from healthnft.minting import Minter
from healthnft.vault import SqliteBlobStore
from healthnft.vault.catalog import Catalog, Participant
from healthnft.vault.custody import Custodians
from healthnft.wallet.wallet import Wallet

PASSPHRASE_ENV = "HEALTHNFT_PASSPHRASE"
#: The demo's documented passphrase: demo keys are for trying things out only.
DEMO_PASSPHRASE = "healthnft-demo"
_FUNDING_WEI = 10**20


@dataclass
class Network:
    """A home's ledger, vault, catalogue and keys, opened together."""

    home: Path
    config: dict[str, Any]
    ledger: Ledger
    catalog: Catalog
    blobs: SqliteBlobStore
    #: A long-running service sets this to keep unlocked keys in memory instead of
    #: paying scrypt on every request; the CLI, one command per process, does not.
    remember_keys: bool = False
    _unlocked: dict[tuple[str, str], Identity] = field(default_factory=dict, repr=False)
    #: On a home whose demo patients' keys come from the seed (:attr:`seeded_patients`),
    #: act for them with keys derived on the spot (the CLI plays the patient's device;
    #: nothing is written). The web service turns it off: there the page holds a demo
    #: patient's key (``GET /api/demo/patients/{address}/keystore``), never the node.
    act_as_demo_patients: bool = True
    #: Serialises changes of ``config.json`` (admissions may run in threads).
    _config_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        # The chain's events are indexed into this home's index (never rescanned per query).
        from healthnft.store.events import ChainEvents

        self.ledger.attach_event_store(ChainEvents(self.catalog.index.db))

    # -- opening ----------------------------------------------------------

    @classmethod
    def open(cls, home: Path, *, check_index: bool = True) -> Network:
        """Open an existing home; a clear error when there is none, when its contracts
        are another version's (:class:`Conflict`), when its chain is gone
        (:class:`ChainMissing`: the file is missing, or holds no code at the home's
        contract addresses), or when its index is behind the chain (:class:`Conflict`:
        ``index.sqlite`` restored from an older backup; ``healthnft doctor --repair``
        rebuilds it, and opens with ``check_index=False``)."""
        files = Home(home)
        config = files.read_config()  # NotFound, with how to make one, when there is none
        files.make_private()  # a home made by an earlier version was readable by all
        if config.get("contracts") != contracts_fingerprint():
            raise Conflict(
                f"the network in {home} was deployed by another version of healthnft's "
                "contracts; create a new home (a migration tool does not exist yet)"
            )
        w3 = _connect(home, config, None, create=False)  # ChainMissing when it is gone
        ledger = Ledger(w3, config["registry"], config["token"], config.get("consent"),
                        confirmations=int(config.get("confirmations", 1)),
                        drugs=config.get("drugs"))  # fmt: skip
        if ledger.missing_contracts():
            where = (f"the chain at {config['rpc_url']}" if config.get("rpc_url")
                     else str(files.chain_path))  # fmt: skip
            raise ChainMissing(
                f"{where} has no code at the contract addresses named in "
                f"{files.config_path}: it is not this home's chain; restore the chain "
                "from a backup or point the home at its own node"
            )
        net = cls(home, config, ledger, Catalog(files.index_path),
                  SqliteBlobStore(files.vault_path))  # fmt: skip
        if check_index:
            from healthnft.wallet.doctor import index_behind

            behind = index_behind(ledger, net.catalog, net.blobs)
            if behind:
                net.close()
                raise Conflict(
                    f"{files.index_path.name} is behind the chain: {len(behind)} record(s) "
                    "changed owner or were minted after it was written (restored from an "
                    "older backup?); run `healthnft doctor --repair` to rebuild it from the "
                    "chain and the vault"
                )
        return net

    @classmethod
    def create(
        cls,
        home: Path,
        passphrase: str,
        demo: bool = False,
        *,
        rpc_url: str | None = None,
        admin_secret: bytes | None = None,
        confirmations: int = 1,
    ) -> Network:
        """Create a home: admin key, chain and contracts. Reuses an existing one.

        With ``rpc_url`` the chain is a running EVM node's (backend ``jsonrpc``): the
        admin is ``admin_secret``'s account, which must hold funds there (checked
        before anything is written), and the contracts are compiled for the newest EVM
        version the node's blocks show (``paris`` on Clique)."""
        files = Home(home)
        if files.exists():
            return cls.open(home)
        secret = admin_secret or (_demo_secret("admin") if demo else keys.new_secret())
        config: dict[str, Any] = {
            "backend": "jsonrpc" if rpc_url else "embedded",
            "admin": keys.identity_from_secret(secret).address,
            "demo": demo,
            "contracts": contracts_fingerprint(),
        }
        evm_version = DEFAULT_EVM_VERSION
        if rpc_url:
            from healthnft.ledger.rpc import evm_version_of

            config.update(rpc_url=rpc_url, confirmations=max(1, int(confirmations)))
            w3 = _connect(home, config, None, create=True)  # Unavailable before any file
            if not w3.eth.get_balance(config["admin"]):
                raise InvalidInput(
                    f"the admin account {config['admin']} has no funds on the chain at "
                    f"{rpc_url}: fund it there (genesis alloc or a transfer), then retry"
                )
            evm_version = evm_version_of(w3)
            config.update(chain_id=int(w3.eth.chain_id), evm_version=evm_version)
        files.make_private()  # the folder 0700; every file below is created 0600
        admin = keys.write_keystore(files.keystore_dir, secret, passphrase, light=demo)
        write_private(files.secret_key_path, os.urandom(32))
        if not rpc_url:
            # A crashed earlier attempt may have left a chain without config: start afresh.
            for leftover in files.chain_files():
                leftover.unlink()
            w3 = _connect(home, config, {admin.address: 10**27}, create=True)
        ledger = Ledger.deploy(w3, admin.account, evm_version,
                               confirmations=int(config.get("confirmations", 1)))  # fmt: skip
        assert ledger.consent is not None
        from healthnft.ledger.drugs import DrugRegistry
        from healthnft.ledger.recovery import GuardianRecovery

        # Guardian recovery out of the box: a patient who loses the key names no one
        # else to hold it (one more deployment and one registry call per network).
        GuardianRecovery.install(ledger, admin.account, evm_version=evm_version)
        drugs = DrugRegistry.deploy(ledger, admin.account, evm_version)
        config.update(
            registry=ledger.registry.address,
            token=ledger.token.address,
            consent=ledger.consent.address,
            drugs=drugs.address,
        )
        files.write_config(config)
        return cls(home, config, ledger, Catalog(files.index_path),
                   SqliteBlobStore(files.vault_path))  # fmt: skip

    @classmethod
    def attach(
        cls,
        home: Path,
        passphrase: str,
        network: dict[str, Any],
        kind: str,
        name: str,
        *,
        rpc_url: str | None = None,
    ) -> tuple[Network, Identity]:
        """Create a home attached to a running network (``healthnft join``): its own
        key for one new member of ``kind``, no admin key, the chain of ``network`` (a
        ``network.json`` document, see :mod:`healthnft.consortium`).

        Everything is checked before a file is written: the node answers and serves
        the network's chain id (:class:`Conflict` otherwise), the contracts were
        compiled by this version of healthnft (:class:`Conflict`) and have code there
        (:class:`ChainMissing`). ``name`` stays in this home: the chain never gets it.
        Answers the opened home and the new member's identity (not registered yet)."""
        from healthnft.ledger.rpc import evm_version_of, rpc_web3

        files = Home(home)
        if files.exists():
            raise Conflict(f"{home} already holds a healthnft home: join with a new folder")
        if kind not in KIND_CODES:
            raise InvalidInput(
                f"unknown participant kind {kind!r}; use one of {', '.join(KIND_CODES)}"
            )
        if not name.strip():
            raise InvalidInput("--name must not be empty (it stays in this home)")
        try:
            chain_id = int(network["chain_id"])
            contracts = network["contracts"]
            addresses = {k: str(contracts[k]) for k in ("registry", "token", "consent")}
            if contracts.get("drugs"):
                addresses["drugs"] = str(contracts["drugs"])
            fingerprint = str(contracts["fingerprint"])
            url = rpc_url or str(network["rpc_urls"][0])
        except (KeyError, TypeError, ValueError, IndexError):
            raise InvalidInput("the network file lacks chain_id, rpc_urls or contracts "
                               "(registry, token, consent, fingerprint)") from None  # fmt: skip
        if fingerprint != contracts_fingerprint():
            raise Conflict(
                "the network's contracts were compiled by another version of healthnft "
                f"({fingerprint}, this one deploys {contracts_fingerprint()}): join with "
                "the version the network runs"
            )
        w3 = rpc_web3(url, chain_id=chain_id)  # Unavailable; Conflict on another chain id
        confirmations = max(1, int(network.get("confirmations", 1)))
        ledger = Ledger(w3, addresses["registry"], addresses["token"], addresses["consent"],
                        confirmations=confirmations, drugs=addresses.get("drugs"))  # fmt: skip
        if ledger.missing_contracts():
            raise ChainMissing(
                f"the chain at {url} has no code at the contract addresses of the network "
                "file: it is not that network's chain (or the file is not this network's)"
            )
        config: dict[str, Any] = {
            "backend": "jsonrpc",
            "rpc_url": url,
            "chain_id": chain_id,
            "evm_version": network.get("evm_version") or evm_version_of(w3),
            "confirmations": confirmations,
            "admin": network.get("admin"),
            "demo": False,
            "contracts": fingerprint,
            **addresses,
            "custodians": [c["address"] for c in network.get("custodians", [])
                           if isinstance(c, dict) and c.get("address")],  # fmt: skip
            # Custodians that run as their own services, and the members' node services
            # (a record minted elsewhere is fetched from its issuer's node).
            "custodian_urls": {c["address"]: c["url"] for c in network.get("custodians", [])
                               if isinstance(c, dict) and c.get("address") and c.get("url")},
            "peers": {n["address"]: n["url"] for n in (network.get("nodes") or {}).values()
                      if isinstance(n, dict) and n.get("address") and n.get("url")},
        }
        files.make_private()
        ident = keys.write_keystore(files.keystore_dir, keys.new_secret(), passphrase)
        config["member"] = {"address": ident.address, "kind": kind}
        write_private(files.secret_key_path, os.urandom(32))
        files.write_config(config)
        net = cls(home, config, ledger, Catalog(files.index_path),
                  SqliteBlobStore(files.vault_path))  # fmt: skip
        net.catalog.add_participant(Participant(ident.address, kind, name, ident.enc_public))
        return net, ident

    def close(self) -> None:
        self.catalog.close()
        self.blobs.close()

    @property
    def files(self) -> Home:
        """Where this home keeps what (one place knows the layout)."""
        return Home(self.home)

    # -- keys ---------------------------------------------------------------

    @property
    def is_demo(self) -> bool:
        return bool(self.config.get("demo"))

    def passphrase(self, explicit: str | None = None) -> str:
        """--passphrase, else $HEALTHNFT_PASSPHRASE, else the demo's, else an error."""
        if explicit:
            return explicit
        if os.environ.get(PASSPHRASE_ENV):
            return os.environ[PASSPHRASE_ENV]
        if self.is_demo:
            return DEMO_PASSPHRASE
        raise CredentialRejected(
            f"a passphrase is needed: pass --passphrase or set {PASSPHRASE_ENV}"
        )

    def identity(self, address: str, passphrase: str | None = None) -> Identity:
        secret = self.passphrase(passphrase)
        cache_key = (address.lower(), secret)
        if cache_key in self._unlocked:
            return self._unlocked[cache_key]
        derived = self._demo_patient(address)
        ident = derived or keys.read_keystore(self.files.keystore_dir, address, secret)
        if self.remember_keys:
            self._unlocked[cache_key] = ident
        return ident

    def forget_keys(self) -> None:
        """Drop every unlocked key this object kept (``remember_keys``)."""
        self._unlocked.clear()

    def admin(self, passphrase: str | None = None, *,
              to: str = "register participants") -> Identity:  # fmt: skip
        """The network admin's keys, when this home holds them (the home that deployed
        the contracts); a home that joined a running network has none:
        :class:`AccessDenied`, saying who can do ``to`` instead."""
        address = self.config.get("admin")
        if not address or not self.has_key(address):
            raise AccessDenied(
                f"this home has no admin key: ask the network's admin/governance to {to} "
                "(a joined home acts only for its own members)"
            )
        return self.identity(address, passphrase)

    @property
    def joined(self) -> bool:
        """Whether this home joined a running network (``healthnft join``): it holds its
        own member's key, not the admin's."""
        return bool(self.config.get("member"))

    def has_key(self, address: str) -> bool:
        return keys.has_keystore(self.files.keystore_dir, address) \
            or self._demo_patient(address) is not None  # fmt: skip

    @property
    def seeded_patients(self) -> bool:
        """Whether this is a demo home that keeps no patient key: its patients' keys are
        the public demo seed's (``config.json``: ``"demo_patient_keys": "seed"``, set by
        the demo), registered from their public part only."""
        return self.is_demo and self.config.get("demo_patient_keys") == "seed"

    def seed_patients(self) -> None:
        """Make this demo home one that keeps no patient key (:attr:`seeded_patients`)."""
        if not self.is_demo:
            raise InvalidInput("only a demo home's patients have keys from the demo seed")
        with self._config_lock:
            if not self.seeded_patients:
                self._save_config(demo_patient_keys="seed")

    def _demo_patient(self, address: str) -> Identity | None:
        """A demo patient's keys, derived from the public demo seed (a seeded home keeps
        no patient keystore), when this object may act for them; else ``None``."""
        if not (self.act_as_demo_patients and self.seeded_patients):
            return None
        p = self.catalog.participant(address)
        if p is None or p.kind != "patient":
            return None
        ident = demo_patient_identity(p.label)
        return ident if ident.address.lower() == address.lower() else None

    # -- participants -----------------------------------------------------

    def add_participant(
        self,
        kind: str,
        label: str,
        passphrase: str | None = None,
        issuer: bool | None = None,
        *,
        existing_ok: bool = False,
    ) -> Participant:
        """Create a key, register it on chain and in the catalogue.

        A label is what this home calls a participant, not who they are: two people
        may share a name, and answering the first one's address to the second merged
        their wallets. So a label already taken for ``kind`` is refused
        (:class:`Conflict`) unless ``existing_ok`` says the caller means that same
        participant (the person confirming it, or a caller whose label is derived from
        an identifier it holds, as the demo's patient labels are)."""
        if kind not in KIND_CODES:
            raise InvalidInput(
                f"unknown participant kind {kind!r}; use one of {', '.join(KIND_CODES)}"
            )
        existing = self.catalog.participant_by_label(label, kind)
        if existing is not None and existing_ok:
            return existing
        admin = self.admin(passphrase, to=f"register the {kind}")  # before any key is written
        if existing is not None:
            raise Conflict(
                f"a {kind} with this name is already registered ({existing.address}); a name "
                "is only a label: give one that tells the two apart, or say it is the same "
                "participant (--same-person)"
            )
        if kind == "patient" and self.seeded_patients:
            # A demo patient's keys are the public seed's, held on its device (the page,
            # or the CLI deriving them): the node gets only the public part, as a
            # hospital registers a patient from the card the wallet shows.
            ident = demo_patient_identity(label)
        else:
            secret = _demo_secret(f"{kind}:{label}") if self.is_demo else keys.new_secret()
            ident = keys.write_keystore(
                self.files.keystore_dir, secret, self.passphrase(passphrase), light=self.is_demo
            )
        self.admit_member(admin, ident.address, kind, ident.enc_public, ident.did_public,
                          issuer)  # fmt: skip
        participant = Participant(ident.address, kind, label, ident.enc_public)
        self.catalog.add_participant(participant)
        return participant

    def fund_member(self, admin: Identity, address: str) -> None:
        """Gas money for a member, from the admin, unless it still has half of it (a
        plain payment: no role needed, so it stays the admin's under a council too)."""
        if self.ledger.w3.eth.get_balance(address) < _FUNDING_WEI // 2:
            self.ledger.fund(admin.account, address, _FUNDING_WEI)

    def admit_member(self, admin: Identity, address: str, kind: str, enc_public: bytes,
                     did_public: bytes, issuer: bool | None = None) -> bool:  # fmt: skip
        """Register ``address`` on chain as the admin: its kind and encryption key, its
        did:key, gas money, the issuer right (hospitals and pharmacies by default) and the custodian
        flag (custodians). Each step is skipped when already done, so a retry after a
        failure settles it; answers whether the member is an issuer. Only the ledger and
        ``config.json`` are touched (never the index), so admissions may run in threads
        sharing this object."""
        kind_on_chain, _, _ = self.ledger.participant(address)
        if kind_on_chain is None:
            self.ledger.register(admin.account, address, kind, enc_public)
        elif kind_on_chain != kind:
            raise Conflict(f"{address} is already registered as a {kind_on_chain}")
        if self.ledger.did_key(address) is None:
            self.ledger.bind_did(admin.account, address, did_public)
        self.fund_member(admin, address)
        make_issuer = issuer if issuer is not None else kind in ISSUER_KINDS
        if make_issuer and not self.ledger.is_issuer(address):
            self.ledger.set_issuer(admin.account, address, True)
        if kind == "custodian":
            from healthnft.ledger.consent import Consent

            Consent(self.ledger).set_custodian(admin.account, address, True)
            with self._config_lock:
                listed = self.config.get("custodians", [])
                if address not in listed:
                    self._save_config(custodians=[*listed, address])
        return make_issuer or self.ledger.is_issuer(address)

    def participant(self, address: str) -> Participant:
        """A registered participant by address, checked on chain."""
        from web3 import Web3

        if not Web3.is_address(address):
            raise UnknownParticipant("the address given is not a 0x… Ethereum address")
        kind, active, enc_key = self.ledger.participant(address)
        if kind is None or not active:
            raise UnknownParticipant(f"{address} is not a registered participant of this network")
        local = self.catalog.participant(address)
        return Participant(address, kind, local.label if local else "", enc_key)

    def patient(self, address: str) -> Participant:
        """A registered patient: records are minted into patients' wallets only."""
        p = self.participant(address)
        if p.kind != "patient":
            raise UnknownParticipant(f"{address} is a {p.kind}, not a patient")
        return p

    def issuer_by_name(self, name: str) -> Participant:
        p = self.catalog.participant_by_label(name, "hospital")
        if p is None:
            raise NotAnIssuer(f"issuer {name!r} is not a registered hospital in this home")
        if not self.ledger.is_issuer(p.address):
            raise NotAnIssuer(f"issuer {name!r} is not allowed to mint on this network")
        return p

    # -- services ---------------------------------------------------------

    def minter(self) -> Minter:
        secret = self.files.secret_key_path.read_bytes()
        return Minter(self.ledger, self.catalog, self.blobs, secret, self.custodians())

    def custodians(self) -> Custodians | None:
        """The network's key custodians (k-of-n), once at least two are registered."""
        members = []
        known = list(self.config.get("custodians", []))
        for address, (kind, active, enc_key) in zip(known, self.ledger.participants(known),
                                                    strict=True):  # fmt: skip
            if kind == "custodian" and active:
                members.append((address, enc_key))
        if len(members) < 2:
            return None
        threshold = min(int(self.config.get("custodian_threshold", 2)), len(members))
        return Custodians(tuple(members), threshold)

    def custodian_services(self) -> list[Any]:
        """The network's custodians in split order: a custodian with a URL
        (``custodian_urls``, its own service) is asked over HTTP; one whose key lives
        in this home runs in-process."""
        from healthnft.consent.custodian import CatalogueShares, CustodianService
        from healthnft.consent.remote import RemoteCustodian

        originals = self.derivatives().original_of
        urls = {a.lower(): u for a, u in self.config.get("custodian_urls", {}).items()}
        out: list[Any] = []
        for addr in self.config.get("custodians", []):
            if addr.lower() in urls:
                out.append(RemoteCustodian(addr, urls[addr.lower()]))
            elif self.has_key(addr):
                out.append(CustodianService(self.identity(addr), self.ledger,
                                            CatalogueShares(self.catalog), self.challenges(),
                                            originals))  # fmt: skip
        return out

    def add_remote_custodian(self, address: str, enc_key: bytes, url: str,
                             passphrase: str | None = None) -> Participant:  # fmt: skip
        """Register a custodian whose key lives in its own home (it gave its address and
        encryption key), fund it for its access logs, and remember its URL."""
        self.enroll_custodian(address, enc_key, passphrase)
        known = list(self.config.get("custodians", []))  # the split order: never reordered
        if address.lower() not in {a.lower() for a in known}:
            known.append(address)
        urls = {a: u for a, u in self.config.get("custodian_urls", {}).items()
                if a.lower() != address.lower()}  # fmt: skip
        self._save_config(custodians=known, custodian_urls={**urls, address: url})
        _, _, on_chain_key = self.ledger.participant(address)
        return Participant(address, "custodian", "", on_chain_key)

    def enroll_custodian(self, address: str, enc_key: bytes, passphrase: str | None = None) -> None:
        """The on-chain part of :meth:`add_remote_custodian`: registered as a custodian,
        funded for its access logs, allowed to log them. Each step already done is only
        read, not sent again (a custodian restarted by ``consortium up`` costs no block),
        and nothing here touches the home's files, so several custodians may be enrolled
        from threads at once (the admin's nonces are handed out per sender)."""
        from healthnft.ledger.consent import Consent

        admin = self.admin(passphrase)
        kind, _, _ = self.ledger.participant(address)
        if kind is None:
            self.ledger.register(admin.account, address, "custodian", enc_key)
        elif kind != "custodian":
            raise Conflict(f"{address} is registered as a {kind}, not a custodian")
        self.fund_member(admin, address)
        # Each step only when missing: restarting a custodian's service (its new URL) is
        # no membership change, so it still works once a council owns the network.
        consent = Consent(self.ledger)
        if not consent.is_custodian(address):
            consent.set_custodian(admin.account, address, True)

    def challenges(self) -> Any:
        """The home's one-time challenges (table ``challenges`` of ``index.sqlite``)."""
        return self.catalog.index.challenges

    def operations(self) -> Any:
        """State-changing calls by idempotency key (table ``operations`` of the index)."""
        return self.catalog.index.operations

    def derivatives(self) -> Any:
        """The links from de-identified copies to their originals."""
        return self.catalog.derivatives

    def drug_registry(self) -> Any:
        """The network's DrugBatchRegistry (:class:`~healthnft.ledger.drugs.DrugRegistry`);
        :class:`NotFound` on a network deployed without one."""
        from healthnft.errors import NotFound
        from healthnft.ledger.drugs import DrugRegistry

        if self.ledger.drugs is None:
            raise NotFound("this network has no drug registry (deployed by an older "
                           "healthnft: create a new home)")  # fmt: skip
        return DrugRegistry(self.ledger)

    def pack_book(self) -> Any:
        """This home's manufacturer book (``drugs.sqlite``: pack salts, batch trees);
        the caller closes it. See :class:`~healthnft.drugs.commitments.PackBook`."""
        from healthnft.drugs.commitments import PackBook

        return PackBook(self.files.drugs_path)

    def _save_config(self, **changes: Any) -> None:
        self.config.update(changes)
        Home(self.home).write_config(self.config)

    def wallet(self, blobs: Any = None) -> Wallet:
        """The wallet over this home's vault, or over ``blobs`` (where a shared study's
        chunks are read from: the node that holds them)."""
        return Wallet(self.ledger, self.catalog, self.blobs if blobs is None else blobs)


def contracts_fingerprint() -> str:
    """Which contract code this healthnft deploys (a home must match it to be opened)."""
    import hashlib

    from healthnft.ledger.compiler import compile_contract

    digest = hashlib.sha256()
    for name in ("ParticipantRegistry", "HealthRecordToken", "ConsentManager", "Governance",
                 "DrugBatchRegistry"):
        digest.update(compile_contract(name).bytecode)
    return digest.hexdigest()[:16]


def _connect(home: Path, config: dict[str, Any], alloc: dict[str, int] | None, *,
             create: bool) -> Any:  # fmt: skip
    """The home's chain; a new one (from ``alloc``) only when ``create``: opening an
    existing home never puts an empty chain where its chain was."""
    backend = config.get("backend", "embedded")
    if backend == "embedded":
        from healthnft.ledger.embedded import embedded_web3

        return embedded_web3(Home(home).chain_path, alloc, create=create)
    if backend == "jsonrpc":
        from healthnft.ledger.rpc import rpc_web3

        # Unavailable when the node does not answer; Conflict on another chain id.
        return rpc_web3(config["rpc_url"], chain_id=config.get("chain_id"))
    raise InvalidInput(f"unsupported ledger backend {config.get('backend')!r}")


def demo_patient_identity(label: str) -> Identity:
    """The demo patient ``label``'s keys, derived from the public demo seed.

    Anyone can compute them (the demo says so): a demo home keeps none, the demo-only
    ``GET /api/demo/patients/{address}/keystore`` hands one to the page, and the CLI derives
    them to act as a demo patient. Never for real data."""
    return keys.identity_from_secret(_demo_secret(f"patient:{label}"))


def _demo_secret(name: str) -> bytes:
    """Deterministic demo keys (said so by the demo): never use for real data."""
    import hashlib

    return hashlib.sha256(b"healthnft-demo-key|" + name.encode()).digest()
