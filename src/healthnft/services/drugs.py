"""Medicine packs against counterfeits (issue 15): the one door for the CLI and the web.

Every drug action goes through a function here; each takes what a person gives (a
member's *name* in this home, a scanned code or a photo of it), checks the caller's
right, acts, and answers a result dataclass::

    product(net, "Acme", gtin, "Amoxicillin 500 mg capsules")  manufacturer: product VC
    revoke_product(net, "Acme", gtin)                       manufacturer: revoked on chain
    commission(net, "Acme", gtin, lot, "301231", serials)   manufacturer: one Merkle root
    verify(net, code) / verify(net, image=png)              anyone: Verdict JSON
    dispense(net, code, by="Corner Pharmacy", patient=addr) pharmacy/hospital (+ FHIR record)
    undo(net, code, by=...)                                 same dispenser, within 10 days
    recall(net, "Acme", gtin, lot)                          the batch's manufacturer
    quarantine / release(net, "Medicines Agency", gtin, lot) a government member
    alerts(net, gtin, lot, by=...)                          the manufacturer or a regulator
    export_events(net, gtin, lot, path)                     EPCIS 2.0 document (manufacturer)
    lookup(net, gtin, lot, expiry, serial)                  manufacturer's node: one pack's
                                                            salt, proof, product VC

**Who answers for a serial.** The chain holds one root per batch; the salts and proofs
are the manufacturer's (:class:`~healthnft.drugs.commitments.PackBook`). A verifier asks
a :class:`PackSource`: the home's own book first (:class:`LocalBooks`), else the node
of the batch's manufacturer over HTTP (found from the chain's ``manufacturer_of`` and
the network's node URLs; :mod:`healthnft.services.drug_lookup`, which also holds that
node's side, :func:`lookup`). Whatever answers, its answer is checked against the
chain: the commitment must be a leaf of the root on chain, and the manufacturer the
source speaks for (for a node: the one the chain named) must be the one that
commissioned the batch on chain (``manufacturer_of``, docs/drugs.md: a registered
rogue manufacturer that commissioned another's GTIN and lot first would otherwise make
its packs read as genuine). A batch on chain owned by another manufacturer reads
``unknown``.

**Whose product it is.** A manufacturer first issues a product credential for its GTIN
(:func:`product`; :mod:`healthnft.drugs.product`), kept in the home's product store
(the first manufacturer to hold a GTIN's credential holds the GTIN in this home).
:func:`commission` refuses a GTIN the manufacturer holds no credential for, unless
given ``product_name`` (then it issues one first). A verification reads ``unknown``
unless the batch's ``manufacturer_of`` on chain is the address that a valid product
credential for the GTIN names and whose DID issued it (bound on chain, still an active
manufacturer); the verdict's JSON then names the product and its manufacturer.

**What a verification says.** One status (:mod:`healthnft.drugs.status`) and its
reason; never who dispensed (the chain does not say, and nothing here asks).

**Dispensing.** A pack that is not ``active`` is refused with its status
(:class:`~healthnft.errors.DispenseRefused`, nothing sent) — except ``dispensed``:
dispensing it again is sent on purpose, so the chain logs the alert that the
manufacturer and the regulators read (:func:`alerts`); the answer says ``alert``.
With a patient, a FHIR R4 ``MedicationDispense`` (a contained ``Medication`` with
the GTIN as a GS1 coding, the lot and the expiry) is minted into the patient's wallet
through the normal pipeline, attested by the dispenser, which must hold the issuer
role: the ParticipantRegistry grants it to hospitals and pharmacies (pharmacies are
issuers by default when admitted; the admin may withhold or withdraw it), and the
wallet trusts a record attestation from either kind (:mod:`healthnft.credentials.trust`).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from healthnft.errors import (
    AccessDenied,
    Conflict,
    CredentialRejected,
    DispenseRefused,
    HealthNFTError,
    InputNotFound,
    InvalidInput,
    LedgerError,
    NotAnIssuer,
    NotFound,
    UnknownParticipant,
)

if TYPE_CHECKING:
    from healthnft.drugs.commitments import PackProof
    from healthnft.drugs.gs1 import Pack
    from healthnft.drugs.status import Verdict
    from healthnft.ledger.drugs import DrugRegistry
    from healthnft.network import Network, Participant

#: Kinds that may dispense (decommission) a pack.
DISPENSERS = ("pharmacy", "hospital")
#: The GS1 code system of a GTIN in FHIR (HL7 terminology: ``https://www.gs1.org/gtin``).
GTIN_SYSTEM = "https://www.gs1.org/gtin"
#: The most serials one commission takes (the bench commissions 100,000 in one root).
MAX_SERIALS = 1_000_000

_DISPENSE_WORDS = {
    "dispensed": "Dispensed: the pack is decommissioned on the network.",
    "alert": (
        "ALERT: this pack was already dispensed. The second dispense is recorded on the "
        "network as an alert for the manufacturer and the regulator; do not hand it out."
    ),
}


# -- results --------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchCommissioned:
    gtin: str
    lot: str
    expiry: str  # ISO date
    packs: int
    manufacturer: str  # name in this home
    manufacturer_address: str
    batch_key: str
    tx: str | None
    gas_used: int | None
    #: The same batch was commissioned before: this is its first result, nothing sent.
    already: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ProductIssued:
    gtin: str
    name: str
    manufacturer: str  # name in this home
    manufacturer_address: str
    issuer: str  # the manufacturer's did:key
    credential: str  # the vc+jwt
    form: str | None = None
    strength: str | None = None
    #: The manufacturer already held this very credential: nothing new was signed.
    already: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Checked:
    """A verification: the verdict, plus what the dispense path needs (never shown)."""

    verdict: Verdict
    proof: PackProof | None = field(default=None, repr=False)
    #: The verified product (name, manufacturer's name in this home…), when trusted.
    product: dict[str, Any] | None = None

    @property
    def status(self) -> str:
        return self.verdict.status.value

    def as_dict(self) -> dict[str, Any]:
        data = self.verdict.to_json()
        if self.product is not None:
            data["product"] = dict(self.product)
        return data


@dataclass(frozen=True)
class Dispensed:
    outcome: str  # "dispensed" | "alert"
    message: str
    gtin: str
    lot: str
    serial: str
    by: str
    tx: str
    gas_used: int
    #: With a patient: the minted MedicationDispense token (None without one, or on an alert).
    token_id: int | None = None
    patient: str | None = None

    @property
    def alert(self) -> bool:
        return self.outcome == "alert"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "alert": self.alert}


@dataclass(frozen=True)
class BatchAction:
    action: str  # recalled | quarantined | released | undone
    gtin: str
    lot: str
    by: str
    tx: str
    serial: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


# -- who answers for a serial ------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What a manufacturer's book answers for a serial: the pack and its proof, the
    manufacturer (address) the book speaks for, and the product credential served with
    it by a manufacturer's node (None: use this home's product store)."""

    proof: PackProof
    manufacturer: str
    product: str | None = None


class PackSource(Protocol):
    """Where a verifier asks for a serial's salt and proof (the manufacturer's book)."""

    def find(self, pack: Pack) -> Answer | None: ...

    def close(self) -> None: ...


class LocalBooks:
    """The manufacturers' books kept in this home (one home: every manufacturer's).

    One per opened network, shared by its callers (the connection is thread-safe):
    :meth:`close` is a no-op, the book is closed when the network object goes away."""

    def __init__(self, net: Network) -> None:
        import weakref

        self.book = net.pack_book()
        weakref.finalize(net, self.book.close)

    def find(self, pack: Pack) -> Answer | None:
        return self.find_serial(pack.gtin14, pack.serial)

    def find_serial(self, gtin14: str, serial: str) -> Answer | None:
        proof = self.book.find(gtin14, serial)
        if proof is None:
            return None
        row = self.book.serials.batch(proof.batch_key)
        return Answer(proof, row.manufacturer if row else "")

    def close(self) -> None:
        """Nothing: see the class docstring."""


def local_books(net: Network) -> LocalBooks:
    """This home's own books, kept on the opened network."""
    books = net.__dict__.get("_drug_books")
    if books is None:
        books = net.__dict__["_drug_books"] = LocalBooks(net)
    return books


def pack_source(net: Network) -> PackSource:
    """The source this home asks: its own books, then the node of the batch's
    manufacturer (:mod:`healthnft.services.drug_lookup`), kept on the opened network."""
    from healthnft.services.drug_lookup import PeerBooks

    source = net.__dict__.get("_drug_source")
    if source is None:
        source = net.__dict__["_drug_source"] = PeerBooks(net, local_books(net))
    return source


def lookup(net: Network, gtin: str, lot: str, expiry: str, serial: str) -> dict[str, Any]:
    """A manufacturer's node answers a verification request for one scanned pack
    (:func:`healthnft.services.drug_lookup.lookup`)."""
    from healthnft.services.drug_lookup import lookup as answer

    return answer(net, gtin, lot, expiry, serial)


# -- product credentials ---------------------------------------------------------------------


def product_store(net: Network) -> Any:
    """The home's product credentials (:class:`~healthnft.drugs.product.ProductStore`)."""
    from healthnft.drugs.product import ProductStore

    return ProductStore(Path(net.home) / "products")


def product(net: Network, manufacturer: str, gtin: str, name: str, *,
            form: str | None = None, strength: str | None = None,
            passphrase: str | None = None) -> ProductIssued:  # fmt: skip
    """Issue (and keep in this home) the manufacturer's product credential for ``gtin``.

    Signed with the manufacturer's did:key, which must be the one bound on chain to it.
    The same claims again answer the kept credential (nothing signed); other claims by
    the same manufacturer replace it; a GTIN another manufacturer holds is a
    :class:`Conflict`."""
    from healthnft.credentials.trust import bound_did
    from healthnft.drugs.commitments import normalize_gtin
    from healthnft.drugs.product import issue_product

    maker = _member(net, manufacturer, ("manufacturer",), "issue a product credential")
    g = normalize_gtin(gtin)
    store = product_store(net)
    try:
        held = store.get(g)
    except HealthNFTError:  # an altered file: replaced below (keep checks the holder)
        held = None
    if held is not None and held.manufacturer.lower() != maker.address.lower():
        raise Conflict(f"GTIN {g} is another manufacturer's product in this home "
                       "(it holds the product credential)")  # fmt: skip
    ident = net.identity(maker.address, passphrase)
    if held is not None and held.issuer == ident.did and held.same_claims(
            name.strip(), _strip(form), _strip(strength)):  # fmt: skip
        return _issued(held, maker, already=True)
    if bound_did(net.ledger, maker.address) != ident.did:
        raise AccessDenied(f"{manufacturer}'s did:key is not the one bound on chain: its "
                           "product credentials could not be verified")  # fmt: skip
    jws = issue_product(ident.did_private, ident.did, maker.address, g, name, form=form,
                        strength=strength)  # fmt: skip
    return _issued(store.keep(jws), maker)


def revoke_product(net: Network, manufacturer: str, gtin: str,
                   passphrase: str | None = None) -> ProductIssued:  # fmt: skip
    """Revoke the manufacturer's product credential for ``gtin`` on chain (the
    ParticipantRegistry's revocation list, under the manufacturer's address) and forget
    it here: every home then reads its packs ``unknown`` until a new one is issued
    (:func:`product`). A credential without an id (issued before ids) cannot be revoked:
    :class:`Conflict`, nothing sent."""
    from healthnft.credentials.vc import credential_hash
    from healthnft.drugs.commitments import normalize_gtin

    maker = _member(net, manufacturer, ("manufacturer",), "revoke a product credential")
    g = normalize_gtin(gtin)
    store = product_store(net)
    held = _held(net, g)
    if held is None or held.manufacturer.lower() != maker.address.lower():
        raise NotFound(f"{maker.label} holds no product credential for GTIN {g} in this home")
    if held.id is None:
        raise Conflict("this product credential has no id, so it cannot be revoked: "
                       "deactivating the manufacturer is what withdraws it")  # fmt: skip
    account = net.identity(maker.address, passphrase).account
    try:
        net.ledger.revoke_credential(account, credential_hash(held.id))
    except LedgerError as exc:
        raise _refusal(exc) from None
    store.drop(g)
    return _issued(held, maker)


def _strip(value: str | None) -> str | None:
    return None if value is None else value.strip()


def _issued(p: Any, maker: Participant, already: bool = False) -> ProductIssued:
    return ProductIssued(p.gtin, p.name, maker.label, maker.address, p.issuer, p.jws, p.form,
                         p.strength, already)  # fmt: skip


def _held(net: Network, gtin14: str) -> Any:
    try:
        return product_store(net).get(gtin14)
    except HealthNFTError:
        return None


def _require_product(net: Network, maker: Participant, gtin14: str) -> None:
    """Refuse to commission a GTIN the manufacturer holds no product credential for."""
    held = _held(net, gtin14)
    if held is not None and held.manufacturer.lower() != maker.address.lower():
        raise Conflict(f"GTIN {gtin14} is another manufacturer's product in this home (it "
                       "holds the product credential)")  # fmt: skip
    if held is None:
        raise NotFound(f"{maker.label} has no product credential for GTIN {gtin14}: issue "
                       f"one first (healthnft drug product --manufacturer {maker.label!r} "
                       f"--gtin {gtin14} --name TEXT), or commission with --product-name "
                       "TEXT")  # fmt: skip


# -- commission ---------------------------------------------------------------------------


def read_serials(path: Path) -> list[str]:
    """One serial a line (blank lines and surrounding spaces ignored)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputNotFound(f"{path.name}: no such file") from None
    except (OSError, UnicodeDecodeError):
        raise InvalidInput(f"{path.name}: cannot be read as text, one serial a line") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def commission(net: Network, manufacturer: str, gtin: str, lot: str, expiry: str,
               serials: list[str] | Path, passphrase: str | None = None, *,
               product_name: str | None = None) -> BatchCommissioned:  # fmt: skip
    """Commission a batch: salts and tree kept in this home, one root on chain.

    Idempotent: the same batch (GTIN, lot, expiry and serials) again answers its first
    result and sends nothing; a batch kept but whose transaction never landed (a crash)
    is sent now with the kept salts. The same GTIN and lot with other serials or expiry
    is a :class:`Conflict`. Every field is checked before anything is written.

    The manufacturer must hold the GTIN's product credential (:func:`product`); with
    ``product_name``, one is issued first (kept as is if it already says that name)."""
    from healthnft.drugs.commitments import build_batch

    if isinstance(serials, Path):
        serials = read_serials(serials)
    if len(serials) > MAX_SERIALS:
        raise InvalidInput(f"a batch holds at most {MAX_SERIALS:,} serials")
    maker = _member(net, manufacturer, ("manufacturer",), "commission a batch")
    batch = build_batch(gtin, lot, expiry, list(serials))  # checks every field first
    if product_name is not None:
        held = _held(net, batch.gtin)
        if held is None or held.name != product_name.strip() or (
                held.manufacturer.lower() != maker.address.lower()):  # fmt: skip
            product(net, manufacturer, batch.gtin, product_name, passphrase=passphrase)
    _require_product(net, maker, batch.gtin)
    drugs = net.drug_registry()
    book = net.pack_book()
    try:
        kept = book.batch(batch.gtin, batch.lot)
        if kept is not None:
            same = (kept.expiry == expiry and kept.manufacturer == maker.address
                    and sorted(s for s, _ in book.serials.salts(kept.batch_key))
                    == sorted(serials))  # fmt: skip
            if not same:
                raise Conflict(f"lot {batch.lot} of GTIN {batch.gtin} is already commissioned "
                               "with other serials, expiry or manufacturer")  # fmt: skip
            owner = drugs.manufacturer_of(kept.batch_key)
            if owner is not None:
                return _commissioned(kept, maker, None, None, already=True)
            receipt = _send_commission(net, drugs, maker, kept.batch_key, kept.root, kept.expiry,
                                       passphrase)  # fmt: skip
            book.serials.mark_commissioned(kept.batch_key, bytes(receipt["transactionHash"]))
            return _commissioned(kept, maker, receipt, receipt["gasUsed"])
        owner = drugs.manufacturer_of(batch.batch_key)
        if owner is not None:
            raise Conflict(f"lot {batch.lot} of GTIN {batch.gtin} was commissioned on the network "
                           "by another manufacturer")  # fmt: skip
        _gtin_owner_check(book, batch.gtin, maker.address)
        row = book.keep(batch, maker.address)  # salts first: a crash must not lose them
        try:
            receipt = _send_commission(net, drugs, maker, batch.batch_key, batch.root,
                                       batch.expiry, passphrase)  # fmt: skip
        except LedgerError:
            book.serials.remove_batch(batch.batch_key)
            raise
        book.serials.mark_commissioned(batch.batch_key, bytes(receipt["transactionHash"]))
        return _commissioned(row, maker, receipt, receipt["gasUsed"])
    finally:
        book.close()


def _gtin_owner_check(book: Any, gtin14: str, maker: str) -> None:
    """A GTIN is one manufacturer's (its GS1 company prefix): another one's batch of the
    same GTIN in this home is refused."""
    for row in book.serials.batches():
        if row.gtin == gtin14 and row.manufacturer.lower() != maker.lower():
            raise Conflict(f"GTIN {gtin14} belongs to another manufacturer in this network")


def _send_commission(net: Network, drugs: DrugRegistry, maker: Participant, batch_key: bytes,
                     root: bytes, expiry: str, passphrase: str | None) -> dict:  # fmt: skip
    from healthnft.drugs.commitments import expiry_time

    account = net.identity(maker.address, passphrase).account
    try:
        return drugs.commission(account, batch_key, root, expiry_time(expiry))
    except LedgerError as exc:
        raise _refusal(exc) from None


def _commissioned(row: Any, maker: Participant, receipt: dict | None, gas: int | None,
                  already: bool = False) -> BatchCommissioned:  # fmt: skip
    from healthnft.drugs.commitments import expiry_date

    tx = row.commissioned_tx if receipt is None else bytes(receipt["transactionHash"])
    return BatchCommissioned(row.gtin, row.lot, expiry_date(row.expiry).isoformat(), row.count,
                             maker.label, maker.address, "0x" + row.batch_key.hex(),
                             None if tx is None else "0x" + bytes(tx).hex(),
                             None if gas is None else int(gas), already)  # fmt: skip


# -- verify -------------------------------------------------------------------------------


def read_pack(code: str | None = None, image: bytes | None = None) -> Pack:
    """The pack a typed/scanned ``code`` or a photo of its DataMatrix names."""
    from healthnft.drugs.gs1 import parse_pack
    from healthnft.drugs.scan import read_code

    if (code is None) == (image is None):
        raise InvalidInput("give a pack code or a picture of its DataMatrix (one of them)")
    if image is not None:
        code = read_code(image)
    assert code is not None
    return parse_pack(code)


def image_limit() -> int:
    """The largest picture accepted, in bytes (the web's upload cap for a photo)."""
    from healthnft.drugs.scan import MAX_IMAGE_BYTES

    return MAX_IMAGE_BYTES


def load_image(path: Path) -> bytes:
    """A picture file's bytes, its size checked before it is read."""
    from healthnft.drugs.scan import MAX_IMAGE_BYTES
    from healthnft.errors import TooLarge

    try:
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise TooLarge(f"{path.name}: image is larger than {MAX_IMAGE_BYTES // 2**20} MB")
        return path.read_bytes()
    except FileNotFoundError:
        raise InputNotFound(f"{path.name}: no such file") from None
    except IsADirectoryError:
        raise InputNotFound(f"{path.name}: is a folder, expected a picture") from None
    except OSError:
        raise InputNotFound(f"{path.name}: cannot be read") from None


def verify(net: Network, code: str | None = None, *, image: bytes | None = None) -> Checked:
    """The verdict on one pack (a code as a scanner gives it, or a photo)."""
    pack = read_pack(code, image)
    source = pack_source(net)
    try:
        return Verifier(net, source).check(pack)
    finally:
        source.close()


class Verifier:
    """The read path, reusable across many packs (the web service and the bench keep one).

    Chain facts come from the home's event index (:class:`~healthnft.ledger.drugs.
    IndexedStatus`), synced to the head before each answer, or only after a write when
    the ledger has a read cache (a served home is its chain's only writer)."""

    def __init__(self, net: Network, source: PackSource) -> None:
        self.ledger = net.ledger
        self.chain = chain_view(net)
        self.source = source
        self.catalog = net.catalog
        self.products = product_store(net)
        # Kept on the opened network, like the chain view: credential text -> Product
        # (signature checked), and (text, block) -> why the chain does not vouch for it.
        caches = net.__dict__.setdefault("_drug_products", ({}, {}))
        self._read: dict[str, Any] = caches[0]
        self._trust: dict[tuple[str, int], str | None] = caches[1]

    def check(self, pack: Pack) -> Checked:
        from healthnft.drugs.status import ChainFacts, Commissioned, Status, Verdict, decide

        answer = self.source.find(pack)
        if answer is None:
            return Checked(decide(pack, None, ChainFacts(), _today()))
        proof = answer.proof
        cache = self.ledger.read_cache
        self.chain.refresh(None if cache is None else int(cache.version))
        owner = self.chain.manufacturer_of(proof.batch_key)
        if owner is None or owner.lower() != answer.manufacturer.lower():
            reason = ("The network has no batch of this product and lot from the manufacturer "
                      "that answers for its serial number: the pack may be counterfeit. Do not "
                      "hand it out; put it aside and report it.")  # fmt: skip
            return Checked(Verdict(Status.UNKNOWN, reason, pack), proof)
        trusted = self._product(proof.gtin, owner, answer.product)
        if isinstance(trusted, str):
            return Checked(Verdict(Status.UNKNOWN, trusted, pack), proof)
        chain = self.chain.pack_status(proof.batch_key, proof.index, proof.commitment, proof.proof)
        if not chain.known:  # the book's salt and proof do not lead to the root on chain
            return Checked(decide(pack, None, ChainFacts(), _today()), proof)
        facts = ChainFacts(recalled=chain.recalled, quarantined=chain.quarantined,
                           dispensed=bool(chain.dispensed_at),
                           batch_expiry=_day_before(chain.expiry))  # fmt: skip
        commissioned = Commissioned(proof.gtin, proof.lot, proof.expiry)
        verdict = decide(pack, commissioned, facts, _chain_day(chain.now))
        return Checked(verdict, proof, trusted if verdict.status is not Status.UNKNOWN else None)

    def _trusted(self, raw: str, p: Any, check: Any) -> str | None:
        """``check_product``, asked once per credential and block the chain view synced
        to (the chain's state is fixed at a block)."""
        key = (raw, int(self.chain.head))
        if key not in self._trust:
            if len(self._trust) > 4096:
                self._trust.clear()
            self._trust[key] = check(self.ledger, p)
        return self._trust[key]

    def _product(self, gtin14: str, owner: str, served: str | None) -> dict[str, Any] | str:
        """The trusted product of ``gtin14`` made by ``owner`` (the batch's manufacturer
        on chain), or the reason the pack reads unknown. The credential is this home's
        own for the GTIN if it holds one (it wins: the first manufacturer to hold a GTIN
        here holds it), else the one the manufacturer's node served with its answer;
        either way it is trusted only as the chain vouches for it (:func:`check_product`:
        issuer DID bound to an active manufacturer, not revoked, not expired) and only
        when that manufacturer is the batch's ``manufacturer_of``."""
        from healthnft.drugs.product import check_product, read_product

        advice = "the pack may be counterfeit. Do not hand it out; put it aside and report it."
        raw = self.products.raw(gtin14) or served
        if raw is None:
            return ("No manufacturer has issued a product credential for this product on the "
                    f"network, so nothing says who makes it: {advice}")  # fmt: skip
        p = self._read.get(raw)
        if p is None:
            try:
                p = read_product(raw, gtin14)
            except CredentialRejected as exc:
                return f"The product's credential is refused ({exc}): {advice}"
            self._read[raw] = p
        why = self._trusted(raw, p, check_product)
        if why is not None:
            return f"The product's credential is not trusted ({why}): {advice}"
        if p.manufacturer.lower() != owner.lower():
            return ("This lot was not commissioned by the product's manufacturer: another "
                    f"member registered it on the network first; {advice}")  # fmt: skip
        local = self.catalog.participant(p.manufacturer)
        out: dict[str, Any] = {"name": p.name,
                               "manufacturer": local.label if local else p.manufacturer}
        if p.form is not None:
            out["form"] = p.form
        if p.strength is not None:
            out["strength"] = p.strength
        return out


def chain_view(net: Network) -> Any:
    """The network's :class:`IndexedStatus`, kept on the opened network: building the
    web3 contract and syncing cost milliseconds, a verification tens of microseconds."""
    from healthnft.ledger.drugs import IndexedStatus

    view = net.__dict__.get("_drug_status_view")
    if view is None:
        view = IndexedStatus(net.drug_registry())
        net.__dict__["_drug_status_view"] = view
    return view


def _today() -> date:
    return datetime.now(UTC).date()


def _chain_day(timestamp: int) -> date:
    return datetime.fromtimestamp(timestamp, UTC).date()


def _day_before(expiry_time: int) -> date:
    """The last usable day of a batch registered as expired from ``expiry_time``."""
    return datetime.fromtimestamp(expiry_time - 86400, UTC).date()


# -- dispense, undo ---------------------------------------------------------------------------


def dispense(net: Network, code: str | None, by: str, patient: str | None = None, *,
             image: bytes | None = None, passphrase: str | None = None) -> Dispensed:  # fmt: skip
    """Decommission a pack as ``by`` (a pharmacy or hospital named in this home).

    Refused with its status (:class:`DispenseRefused`, nothing sent) unless the pack is
    ``active``, or already ``dispensed`` (then the dispense is sent on purpose and the
    chain keeps the alert; the answer's outcome is ``alert``). With ``patient`` (a
    wallet address), a MedicationDispense record is minted into the patient's wallet."""
    pack = read_pack(code, image)
    dispenser = _member(net, by, DISPENSERS, "dispense")
    owner = None
    if patient is not None:
        owner = net.patient(patient)
        if not net.ledger.is_issuer(dispenser.address):
            raise NotAnIssuer(
                f"{by} may dispense but not mint records into a wallet: it does not hold the "
                "issuer role on this network (the admin grants it to hospitals and "
                "pharmacies); dispense without --patient"
            )
    source = pack_source(net)
    try:
        checked = Verifier(net, source).check(pack)
    finally:
        source.close()
    if checked.status not in ("active", "dispensed"):
        raise _refused(checked.status, checked.verdict.reason)
    proof = checked.proof
    assert proof is not None
    drugs = net.drug_registry()
    account = net.identity(dispenser.address, passphrase).account
    try:
        done = drugs.dispense(account, proof.batch_key, proof.index, proof.commitment, proof.proof)
    except LedgerError as exc:
        raise _refusal(exc) from None
    receipt = done.receipt
    token_id = None
    if owner is not None and done.outcome == "dispensed":
        try:
            token_id = _mint_dispense(net, dispenser, owner, pack, _chain_time(net, receipt),
                                      passphrase)  # fmt: skip
        except HealthNFTError as exc:  # the dispense stands: say so, with why no record
            raise type(exc)(f"the pack was dispensed (transaction {_tx(receipt)}), but its "
                            f"MedicationDispense record was not minted: {exc}") from None
    return Dispensed(done.outcome, _DISPENSE_WORDS[done.outcome], pack.gtin14, pack.lot,
                     pack.serial, dispenser.label, "0x" + bytes(receipt["transactionHash"]).hex(),
                     int(receipt["gasUsed"]), token_id,
                     owner.address if owner is not None else None)  # fmt: skip


def undo(net: Network, code: str | None, by: str, *, image: bytes | None = None,
         passphrase: str | None = None) -> BatchAction:  # fmt: skip
    """Undo one's own dispense of a pack, within 10 days (EU FMD)."""
    pack = read_pack(code, image)
    dispenser = _member(net, by, DISPENSERS, "undo a dispense")
    proof = _proof(net, pack)
    account = net.identity(dispenser.address, passphrase).account
    try:
        receipt = net.drug_registry().undo(account, proof.batch_key, proof.index,
                                           proof.commitment, proof.proof)  # fmt: skip
    except LedgerError as exc:
        raise _refusal(exc) from None
    return BatchAction("undone", pack.gtin14, pack.lot, dispenser.label, _tx(receipt),
                       pack.serial)  # fmt: skip


def _proof(net: Network, pack: Pack) -> PackProof:
    source = pack_source(net)
    try:
        answer = source.find(pack)
    finally:
        source.close()
    if answer is None or not answer.proof.matches(pack.lot, pack.expiry_raw):
        raise NotFound("no such pack was commissioned (verify it: it reads unknown or mismatch)")
    return answer.proof


# -- recall, quarantine, release -------------------------------------------------------------


def recall(net: Network, manufacturer: str, gtin: str, lot: str,
           passphrase: str | None = None) -> BatchAction:  # fmt: skip
    """Recall a lot: only the manufacturer that commissioned it."""
    maker = _member(net, manufacturer, ("manufacturer",), "recall a lot")
    key, g, lot = _batch_key(gtin, lot)
    account = net.identity(maker.address, passphrase).account
    try:
        receipt = net.drug_registry().recall(account, key)
    except LedgerError as exc:
        raise _refusal(exc) from None
    return BatchAction("recalled", g, lot, maker.label, _tx(receipt))


def quarantine(net: Network, regulator: str, gtin: str, lot: str,
               passphrase: str | None = None, *, release: bool = False) -> BatchAction:  # fmt: skip
    """Quarantine a lot (or, with ``release``, lift the quarantine): a government member."""
    who = _member(net, regulator, ("government",),
                  "release a lot" if release else "quarantine a lot")  # fmt: skip
    key, g, lot = _batch_key(gtin, lot)
    drugs = net.drug_registry()
    account = net.identity(who.address, passphrase).account
    try:
        receipt = (drugs.release if release else drugs.quarantine)(account, key)
    except LedgerError as exc:
        raise _refusal(exc) from None
    return BatchAction("released" if release else "quarantined", g, lot, who.label, _tx(receipt))


def release(net: Network, regulator: str, gtin: str, lot: str,
            passphrase: str | None = None) -> BatchAction:  # fmt: skip
    return quarantine(net, regulator, gtin, lot, passphrase, release=True)


def _batch_key(gtin: str, lot: str) -> tuple[bytes, str, str]:
    from healthnft.drugs.commitments import batch_key, check_lot, normalize_gtin

    g = normalize_gtin(gtin)
    return batch_key(g, lot), g, check_lot(lot)


# -- alerts and events -----------------------------------------------------------------------


def alerts(net: Network, gtin: str, lot: str, by: str) -> list[dict[str, Any]]:
    """The second-dispense alerts of a lot, for its manufacturer or a regulator (by name):
    when, and which pack (the serial for the manufacturer, which holds the salts; the
    commitment for a regulator). Never who dispensed."""
    key, _g, _lot = _batch_key(gtin, lot)
    who = _member(net, by, ("manufacturer", "government"), "read a lot's alerts")
    drugs = net.drug_registry()
    if who.kind == "manufacturer" and (drugs.manufacturer_of(key) or "").lower() != (
            who.address.lower()):  # fmt: skip
        raise AccessDenied(f"{by} is not the manufacturer of this lot")
    serials: dict[bytes, str] = {}
    if who.kind == "manufacturer":
        book = net.pack_book()
        try:
            serials = book.serials_by_commitment(key)
        finally:
            book.close()
    out = []
    for ev in drugs.events(key):
        if ev["event"] != "DispenseAlert":
            continue
        c = bytes.fromhex(ev["commitment"][2:])
        row = {"time": datetime.fromtimestamp(ev["time"], UTC).isoformat(),
               "first_dispensed": datetime.fromtimestamp(int(ev["dispensed_at"]), UTC).isoformat(),
               "pack": ev["commitment"]}  # fmt: skip
        if c in serials:
            row["serial"] = serials[c]
        out.append(row)
    return out


def export_events(net: Network, gtin: str, lot: str, path: Path | None = None) -> dict[str, Any]:
    """The lot's history as an EPCIS 2.0 JSON-LD document (written to ``path`` if given).

    The manufacturer's export: this home must hold the lot's salts (to name serials)."""
    from healthnft.drugs.commitments import expiry_date
    from healthnft.drugs.epcis import Batch, EventRecord, Kind, epcis_document

    key, g, lot = _batch_key(gtin, lot)
    book = net.pack_book()
    try:
        row = book.batch(g, lot)
        if row is None:
            raise NotFound(f"lot {lot} of GTIN {g} is not one of this home's manufacturers' "
                           "batches: only its manufacturer can export its history")  # fmt: skip
        serials = book.serials_by_commitment(key)
        all_serials = tuple(s for s, _ in book.serials.salts(key))
    finally:
        book.close()
    kinds = {"Commissioned": Kind.COMMISSION, "Dispensed": Kind.DISPENSE,
             "DispenseUndone": Kind.UNDO, "Recalled": Kind.RECALL,
             "Quarantined": Kind.QUARANTINE, "Released": Kind.RELEASE}  # fmt: skip
    records = []
    for ev in net.drug_registry().events(key):
        kind = kinds.get(ev["event"])
        if kind is None:  # an alert changes nothing: not an EPCIS event
            continue
        when = datetime.fromtimestamp(ev["time"], UTC)
        if kind is Kind.COMMISSION:
            records.append(EventRecord(kind, when, all_serials))
        elif kind in (Kind.DISPENSE, Kind.UNDO):
            serial = serials.get(bytes.fromhex(ev["commitment"][2:]))
            if serial is not None:
                records.append(EventRecord(kind, when, (serial,)))
        else:
            records.append(EventRecord(kind, when))
    doc = epcis_document(Batch(g, lot, expiry_date(row.expiry), row.expiry), records,
                         created=datetime.now(UTC))  # fmt: skip
    if path is not None:
        _write_json(path, doc)
    return doc


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write atomically (a half-written export never replaces a good one)."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputNotFound(f"{path.name}: its folder does not exist")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".epcis-")
    with os.fdopen(fd, "w") as handle:
        json.dump(doc, handle, indent=2)
    os.replace(tmp, path)


# -- the MedicationDispense record -------------------------------------------------------------


def medication_dispense(pack: Pack, dispenser_did: str, when: datetime) -> dict[str, Any]:
    """A FHIR R4 MedicationDispense for one pack: a contained Medication carries the GTIN
    (GS1 coding), the lot and the expiry (``Medication.batch``); the serial is kept as the
    Medication's identifier so the patient's record names the very pack."""
    medication = {
        "resourceType": "Medication",
        "id": "pack",
        "identifier": [{"system": "https://www.gs1.org/serial", "value": pack.serial}],
        "code": {"coding": [{"system": GTIN_SYSTEM, "code": pack.gtin14}]},
        "batch": {"lotNumber": pack.lot, "expirationDate": pack.expiry.isoformat()},
    }
    return {
        "resourceType": "MedicationDispense",
        "id": f"dispense-{pack.gtin14}-{pack.serial}",
        "contained": [medication],
        "status": "completed",
        "medicationReference": {"reference": "#pack"},
        "subject": {"reference": "Patient/wallet-owner"},
        "performer": [{"actor": {"identifier": {"system": "urn:ietf:rfc:3986",
                                                "value": dispenser_did}}}],
        "quantity": {"value": 1, "unit": "pack"},
        "whenHandedOver": when.isoformat().replace("+00:00", "Z"),
    }  # fmt: skip


def _mint_dispense(net: Network, dispenser: Participant, owner: Participant, pack: Pack,
                   when: datetime, passphrase: str | None) -> int:  # fmt: skip
    from healthnft.records.fhir import SourceResource, prepare

    ident = net.identity(dispenser.address, passphrase)
    resource = medication_dispense(pack, ident.did, when)
    record = prepare(SourceResource(resource, "MedicationDispense"))
    res = net.minter().mint(ident, owner.address, owner.enc_key, [record])
    if res.token_ids:
        return int(res.token_ids[0])
    raise Conflict("this dispense is already in the patient's wallet")  # pragma: no cover


def _chain_time(net: Network, receipt: dict) -> datetime:
    block = net.ledger.w3.eth.get_block(receipt["blockNumber"])
    return datetime.fromtimestamp(int(block["timestamp"]), UTC)


# -- members and errors ---------------------------------------------------------------------


def _member(net: Network, name: str, kinds: tuple[str, ...], to: str) -> Participant:
    """A member of one of ``kinds`` by its name in this home (or by address), active on
    chain; a member of another kind is told it may not ``to``."""
    from web3 import Web3

    if Web3.is_address(name):
        p = net.participant(name)
        if p.kind not in kinds:
            raise AccessDenied(f"a {p.kind} may not {to} (only: {', '.join(kinds)})")
        return p
    for kind in kinds:
        local = net.catalog.participant_by_label(name, kind)
        if local is not None:
            return net.participant(local.address)  # checks it is still active on chain
    other = [p for p in net.catalog.participants() if p.label == name]
    if other:
        raise AccessDenied(f"{name} is a {other[0].kind}: only a {' or '.join(kinds)} may {to}")
    raise UnknownParticipant(f"no {' or '.join(kinds)} named {name!r} in this home "
                             "(healthnft participant list)")  # fmt: skip


#: The contract's refusals in plain words, and the error class each one is.
_REFUSALS: dict[str, tuple[type, str]] = {
    "drugs: caller is not a manufacturer": (AccessDenied, "only a manufacturer may commission"),
    "drugs: batch already commissioned": (Conflict, "this lot is already commissioned"),
    "drugs: batch already expired": (InvalidInput, "this batch's expiry date is already past"),
    "drugs: unknown batch": (NotFound, "this lot was never commissioned"),
    "drugs: caller is not the batch's manufacturer": (
        AccessDenied, "only the manufacturer that commissioned this lot may recall it"),
    "drugs: batch already recalled": (Conflict, "this lot is already recalled"),
    "drugs: batch already quarantined": (Conflict, "this lot is already quarantined"),
    "drugs: batch not quarantined": (Conflict, "this lot is not quarantined"),
    "drugs: caller is not a regulator": (
        AccessDenied, "only a regulator (a government member) may do this"),
    "drugs: pack not dispensed": (Conflict, "this pack is not dispensed: nothing to undo"),
    "drugs: dispensed by another dispenser": (
        AccessDenied, "only the pharmacy that dispensed this pack may undo it"),
    "drugs: undo window is over": (
        Conflict, "the 10-day window to undo this dispense is over"),
    "drugs: caller is not a dispenser": (
        AccessDenied, "only a pharmacy or a hospital may dispense"),
}  # fmt: skip


def _refusal(exc: LedgerError) -> Exception:
    text = str(exc)
    for needle, (cls, words) in _REFUSALS.items():
        if needle in text:
            return cls(words)
    for status in ("recalled", "quarantined", "expired"):
        if f"drugs: {status}" in text:
            return _refused(status, f"the {'pack' if status == 'expired' else 'lot'} is {status}.")
    if "drugs: unknown pack" in text:
        return _refused("unknown", "The network does not know this pack.")
    return exc


def _refused(status: str, reason: str) -> DispenseRefused:
    return DispenseRefused(f"refused, nothing changed: the pack is {status}. {reason}", status)


def _tx(receipt: dict) -> str:
    return "0x" + bytes(receipt["transactionHash"]).hex()
