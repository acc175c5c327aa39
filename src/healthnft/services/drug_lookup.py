"""A pack verified at any member's home: the manufacturer's node answers for its serials.

The chain holds one Merkle root per batch; the salts and proofs stay with the
manufacturer (:class:`~healthnft.drugs.commitments.PackBook`, its home's
``drugs.sqlite``). A pharmacy's home holds no book for another company's batches, so it
asks the node of the batch's manufacturer::

    pharmacy home                                     manufacturer's node
    batch_key(GTIN, lot) -> manufacturer_of on chain
    -> its node URL (network file's ``nodes``)
    POST /node/v1/drugs/lookup {gtin, lot, expiry, serial}  ->  lookup(): the pack's
                                                                salt, proof, product VC
    recompute the commitment from the scanned fields and the salt, follow the proof to
    the root *on chain*, check the product credential against the chain

**What the manufacturer's node tells.** For a serial it commissioned: the pack's fields
as commissioned (GTIN, lot, expiry, serial), its 16-byte salt, its leaf index and Merkle
proof, and the product credential it holds for the GTIN; for any other serial, only
"not commissioned". Never the batch size, another serial or who dispensed (it does not
know). The asker learns nothing it could not learn from the pack in hand and the chain:
the salt opens the commitment of *this* serial only, and the proof's sibling hashes are
salted leaves. (A proof's length gives the batch size to within a factor of two, and the
leaf index is a lower bound of it; every dispense on chain already shows both, since the
contract keys a pack's state by its index: docs/drugs.md.) The lookup is open to anyone who
can reach the node, as verification is (DSCSA lets any trading partner verify), and
counted per client (``api/routes/drugs.py``) so serials cannot be tried in bulk.

**What the asker trusts.** Nothing the node says about status: the chain decides. The
commitment is recomputed here from the scanned GTIN and serial with the salt, the batch
key from the answered GTIN and lot, and the Verifier (:mod:`healthnft.services.drugs`)
checks that the commitment is a leaf of the root on chain and that the batch's
``manufacturer_of`` is the member whose node was asked. A node that answers another
serial, GTIN or something malformed is :class:`~healthnft.errors.Tampered`; one that does
not answer is one :class:`~healthnft.errors.Unavailable` ("cannot be verified now"),
never a guessed status.

**Which node.** The scanned GTIN and lot give the batch key; the chain gives its
manufacturer; the home's ``peers`` (member address -> node URL, from the network file's
``nodes``, as the other node-to-node calls find their peers) give the URL. A lot the
chain does not know reads ``unknown`` without asking anyone; so does a relabelled pack
whose printed lot is not a commissioned one (its serial's true lot cannot be found from
the chain: only the manufacturer's own home proves such a ``mismatch``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from healthnft.errors import HealthNFTError, InvalidInput, Tampered, Unavailable

if TYPE_CHECKING:
    from healthnft.drugs.gs1 import Pack
    from healthnft.network import Network
    from healthnft.services.drugs import Answer, LocalBooks

#: The node route a manufacturer's node answers lookups at.
LOOKUP_PATH = "/node/v1/drugs/lookup"
#: Seconds a lookup may take before the manufacturer's node is deemed down.
TIMEOUT_S = 10.0
#: The most proof nodes an answer may carry (2**64 packs: far beyond any batch).
MAX_PROOF = 64


# -- the manufacturer's side -----------------------------------------------------------


def lookup(net: Network, gtin: str, lot: str, expiry: str, serial: str) -> dict[str, Any]:
    """This node's answer for a scanned pack: ``{"commissioned": false}`` for a serial
    none of this home's batches holds, else the pack as commissioned (its fields, salt
    and proof), the manufacturer's address and its product credential (or null).

    The fields are checked as a scanner's would be (:class:`InvalidInput`); the lot and
    expiry given are not matched here: the asker proves a mismatch against the chain."""
    from healthnft.drugs.commitments import check_lot, check_serial, expiry_date, normalize_gtin
    from healthnft.services.drugs import local_books

    g = normalize_gtin(gtin)
    check_lot(lot)
    check_serial(serial)
    expiry_date(expiry)
    found = local_books(net).find_serial(g, serial)
    if found is None:
        return {"commissioned": False}
    proof = found.proof
    return {
        "commissioned": True,
        "gtin": proof.gtin, "lot": proof.lot, "expiry": proof.expiry, "serial": proof.serial,
        "salt": proof.salt.hex(), "index": proof.index, "proof": [p.hex() for p in proof.proof],
        "manufacturer": found.manufacturer,
        "product": _product_of(net, g, found.manufacturer),
    }  # fmt: skip


def _product_of(net: Network, gtin14: str, manufacturer: str) -> str | None:
    """The product credential this home holds for ``gtin14``, if ``manufacturer``'s."""
    from healthnft.services.drugs import product_store

    try:
        held = product_store(net).get(gtin14)
    except HealthNFTError:  # an altered file: served as nothing
        return None
    if held is None or held.manufacturer.lower() != manufacturer.lower():
        return None
    return str(held.jws)


# -- the asker's side ----------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """The manufacturer of a scanned pack's batch, as the chain names it, and its node."""

    address: str
    url: str


def manufacturer_node(net: Network, pack: Pack) -> Peer | None:
    """The node to ask for ``pack``: None when the chain has no batch of its GTIN and lot
    (the pack reads ``unknown``), :class:`Unavailable` when the batch's manufacturer has
    no node this home knows of."""
    from healthnft.drugs.commitments import batch_key
    from healthnft.services.drugs import chain_view

    key = batch_key(pack.gtin14, pack.lot)
    # The event index first (a commission never changes once made), else the contract
    # (a batch commissioned since the index was last synced).
    maker = chain_view(net).manufacturer_of(key) or net.drug_registry().manufacturer_of(key)
    if maker is None:
        return None
    peers = {a.lower(): u for a, u in (net.config.get("peers") or {}).items()}
    url = peers.get(maker.lower())
    if not url:
        raise Unavailable("the manufacturer of this lot has no node this home knows of (the "
                          "network file's nodes): the pack cannot be verified here")  # fmt: skip
    return Peer(maker, str(url).rstrip("/"))


def ask(session: Any, peer: Peer, pack: Pack) -> Answer | None:
    """Ask ``peer``'s node for ``pack``: its answer, checked for shape and for being about
    this very pack (GTIN and serial); None when the node says it never commissioned it.
    The answer's manufacturer is ``peer``'s address (the one the chain named), never the
    node's own word."""
    import requests

    body = {"gtin": pack.gtin14, "lot": pack.lot, "expiry": pack.expiry_raw,
            "serial": pack.serial}  # fmt: skip
    down = Unavailable(f"the manufacturer's node at {peer.url} does not answer: the pack "
                       "cannot be verified now; try again later")  # fmt: skip
    try:
        response = session.post(peer.url + LOOKUP_PATH, json=body, timeout=TIMEOUT_S)
    except requests.RequestException:
        raise down from None
    if response.status_code == 429:
        raise Unavailable(f"the manufacturer's node at {peer.url} is busy (too many lookups "
                          "from this node): try again in a minute")  # fmt: skip
    if response.status_code >= 500:
        raise down
    if response.status_code >= 400:
        raise InvalidInput(f"the manufacturer's node at {peer.url} refused the lookup "
                           f"({response.status_code}): {_detail(response)}")  # fmt: skip
    try:
        data = response.json()
    except ValueError:
        raise Tampered(f"the node at {peer.url} answered something that is not JSON") from None
    return _answer(data, peer, pack)


def _answer(data: Any, peer: Peer, pack: Pack) -> Answer | None:
    """A lookup's JSON as an :class:`Answer` whose proof is rebuilt from the pack's own
    GTIN and serial (the commitment and batch key are recomputed from them)."""
    from healthnft.drugs.commitments import PackProof, batch_key, check_lot, expiry_date
    from healthnft.services.drugs import Answer

    bad = Tampered(f"the manufacturer's node at {peer.url} answered something that is not "
                   "a pack lookup")  # fmt: skip
    if not isinstance(data, dict) or not isinstance(data.get("commissioned"), bool):
        raise bad
    if not data["commissioned"]:
        return None
    if data.get("gtin") != pack.gtin14 or data.get("serial") != pack.serial:
        raise Tampered(f"the manufacturer's node at {peer.url} answered for another pack")
    try:
        lot, expiry = check_lot(str(data["lot"])), str(data["expiry"])
        expiry_date(expiry)
        salt = bytes.fromhex(data["salt"])
        nodes = data["proof"]
        if not isinstance(nodes, list) or len(nodes) > MAX_PROOF:
            raise bad
        proof = [bytes.fromhex(n) for n in nodes]
        index = data["index"]
        if not isinstance(index, int) or isinstance(index, bool) or not (
                0 <= index < 1 << len(proof)):  # fmt: skip
            raise bad
        product = data.get("product")
        if product is not None and not isinstance(product, str):
            raise bad
    except (KeyError, TypeError, ValueError, InvalidInput):
        raise bad from None
    if len(salt) != 16 or any(len(n) != 32 for n in proof):
        raise bad
    rebuilt = PackProof(pack.gtin14, lot, expiry, pack.serial, salt,
                        batch_key(pack.gtin14, lot), index, proof)  # fmt: skip
    return Answer(rebuilt, peer.address, product)


def _detail(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return "no reason given"
    return str(body.get("detail", ""))[:200] if isinstance(body, dict) else "no reason given"


class PeerBooks:
    """The books a home asks for a serial: its own first (a manufacturer's home, or one
    home holding every member), then the node of the batch's manufacturer.

    Kept on the opened network (one HTTP session, reused between lookups)."""

    def __init__(self, net: Network, local: LocalBooks) -> None:
        import weakref

        import requests

        self.net = weakref.proxy(net)
        self.local = local
        self.session = requests.Session()
        weakref.finalize(net, self.session.close)

    def find(self, pack: Pack) -> Answer | None:
        from healthnft.drugs.commitments import batch_key

        answer = self.local.find(pack)
        if answer is not None or not self.net.config.get("peers"):
            return answer
        if self.local.book.serials.batch(batch_key(pack.gtin14, pack.lot)) is not None:
            return None  # this home's own batch: its book's word is final
        peer = manufacturer_node(self.net, pack)
        return None if peer is None else ask(self.session, peer, pack)

    def close(self) -> None:
        """Nothing: kept on the network, see the class docstring."""
