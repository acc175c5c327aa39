"""Product credentials: the manufacturer's signed word on what a GTIN is (issue 15, point 2).

The chain only sees a hash of GTIN and lot, so *any* registered manufacturer could be
the first to commission another's GTIN and lot (docs/drugs.md). What names the
product's true manufacturer is a W3C Verifiable Credential it signs with its did:key
(the one bound on chain to its registry entry), secured as VC-JOSE by the project's
own :func:`~healthnft.credentials.vc.issue_credential`::

    {"@context": ["https://www.w3.org/ns/credentials/v2"],
     "type": ["VerifiableCredential", "ProductCredential"],
     "issuer": "did:key:z6Mk…", "validFrom": "…",
     "credentialSubject": {"gtin": "09506000134352", "name": "Amoxicillin 500 mg capsules",
                           "form": "capsule", "strength": "500 mg",
                           "manufacturer": "0x…"}}

A verifier trusts a product credential only when (:func:`check_product`): the signature
verifies, the shape is right and it is within its validity window (``validUntil`` when
it has one: :func:`read_product`), the issuer DID is bound on chain to the
``manufacturer`` address the subject names, that address is an active manufacturer,
and it has not revoked the credential (its ``id`` in the ParticipantRegistry's
revocation list, the one record attestations use). Any home checks it so: a
manufacturer's node serves its credential with each pack lookup
(:mod:`healthnft.services.drug_lookup`). A pack reads genuine only if its batch's
on-chain ``manufacturer_of`` is that same address.

:class:`ProductStore` keeps one credential per GTIN in a folder of the home: the first
manufacturer to hold a GTIN's credential in a home holds the GTIN there (GS1 licenses a
company prefix to one company; a registry of prefixes is the seam for a network-wide
rule, not built yet).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from web3 import Web3

from healthnft.credentials.trust import did_address
from healthnft.credentials.vc import (
    credential_hash,
    issue_credential,
    issuer_of,
    subjects_of,
    types_of,
    verify_credential,
)
from healthnft.drugs.commitments import normalize_gtin
from healthnft.errors import CredentialRejected, InvalidInput
from healthnft.ledger.client import Ledger

__all__ = ["PRODUCT_TYPE", "Product", "ProductStore", "check_product", "issue_product",
           "read_product"]  # fmt: skip

#: The credential type after ``VerifiableCredential``.
PRODUCT_TYPE = "ProductCredential"
#: Longest product name, form or strength accepted (a label, not a leaflet).
MAX_TEXT = 200


@dataclass(frozen=True)
class Product:
    """A product credential read and its signature verified (not yet trusted: see
    :func:`check_product`)."""

    gtin: str  # GTIN-14
    name: str
    manufacturer: str  # the address the subject names
    issuer: str  # did:key
    jws: str
    form: str | None = None
    strength: str | None = None
    #: The credential's id (``urn:uuid:…``): what its manufacturer revokes on chain.
    #: None in a credential issued before ids were given (it cannot be revoked).
    id: str | None = None

    def same_claims(self, name: str, form: str | None, strength: str | None) -> bool:
        return (self.name, self.form, self.strength) == (name, form, strength)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise InvalidInput(f"the product's {what} must be text of 1 to {MAX_TEXT} characters")
    return value.strip()


def issue_product(signing_key: Ed25519PrivateKey, issuer_did: str, manufacturer: str, gtin: str,
                  name: str, *, form: str | None = None, strength: str | None = None,
                  valid_from: datetime | None = None,
                  valid_until: datetime | None = None) -> str:  # fmt: skip
    """Sign a ProductCredential (``vc+jwt``) for ``gtin`` as the manufacturer's did:key,
    with a fresh ``urn:uuid`` id (revocable on chain) and, if given, a ``validUntil``.

    The GTIN's check digit is verified; ``name``, ``form`` and ``strength`` are short text."""
    from datetime import UTC

    subject: dict[str, Any] = {"gtin": normalize_gtin(gtin), "name": _text(name, "name")}
    if form is not None:
        subject["form"] = _text(form, "form")
    if strength is not None:
        subject["strength"] = _text(strength, "strength")
    subject["manufacturer"] = manufacturer
    return issue_credential(signing_key, issuer_did, subject, types=[PRODUCT_TYPE],
                            valid_from=valid_from or datetime.now(UTC), valid_until=valid_until,
                            credential_id=f"urn:uuid:{uuid.uuid4()}")  # fmt: skip


def read_product(jws: str, gtin: str | None = None) -> Product:
    """Verify a product credential's signature, validity and shape; its GTIN must be
    ``gtin`` if given. :class:`CredentialRejected` otherwise (an altered credential reads
    ``forged: signature does not verify for the issuer's key``)."""
    credential = verify_credential(jws)
    if PRODUCT_TYPE not in types_of(credential, "credential"):
        raise CredentialRejected("not a product credential")
    subjects = subjects_of(credential)
    if len(subjects) != 1:
        raise CredentialRejected("malformed product credential: several subjects")
    subject: Mapping[str, Any] = subjects[0]
    try:
        g = normalize_gtin(str(subject.get("gtin", "")))
        name = _text(subject.get("name"), "name")
        form = None if subject.get("form") is None else _text(subject["form"], "form")
        strength = (None if subject.get("strength") is None
                    else _text(subject["strength"], "strength"))  # fmt: skip
    except InvalidInput as exc:
        raise CredentialRejected(f"malformed product credential: {exc}") from None
    maker = subject.get("manufacturer")
    if not isinstance(maker, str) or not Web3.is_address(maker):
        raise CredentialRejected("malformed product credential: no manufacturer address")
    if gtin is not None and g != normalize_gtin(gtin):
        raise CredentialRejected("the product credential is for another GTIN")
    cid = credential.get("id")
    return Product(g, name, maker, issuer_of(credential), jws, form, strength,
                   cid if isinstance(cid, str) and cid else None)  # fmt: skip


def check_product(ledger: Ledger, product: Product) -> str | None:
    """Why the chain does not vouch for ``product``'s issuer, or None when it does: the
    issuer DID is bound to the manufacturer address the subject names, that address is
    an active manufacturer, and it has not revoked the credential."""
    bound = did_address(ledger, product.issuer)
    if bound is None or bound.lower() != product.manufacturer.lower():
        return "its issuer is not the manufacturer it names (DID not bound on chain to it)"
    kind, active, _ = ledger.participant(product.manufacturer)
    if kind != "manufacturer":
        return "its issuer is not a registered manufacturer"
    if not active:
        return "its manufacturer is no longer an active member of the network"
    if product.id is not None and ledger.is_revoked(product.manufacturer,
                                                    credential_hash(product.id)):  # fmt: skip
        return "its manufacturer revoked it"
    return None


class ProductStore:
    """One product credential per GTIN, kept as ``<gtin14>.vc.jwt`` in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, gtin: str) -> Path:
        return self.folder / f"{normalize_gtin(gtin)}.vc.jwt"

    def raw(self, gtin: str) -> str | None:
        """The kept credential's text for ``gtin``, unverified (None if none is kept)."""
        try:
            return self._path(gtin).read_text(encoding="ascii").strip()
        except (FileNotFoundError, UnicodeDecodeError):
            return None

    def get(self, gtin: str) -> Product | None:
        """The kept credential for ``gtin``, verified (:class:`CredentialRejected` if the
        file was altered), or None."""
        raw = self.raw(gtin)
        return None if raw is None else read_product(raw, gtin)

    def keep(self, jws: str) -> Product:
        """Keep a product credential after verifying it; a GTIN held here by another
        manufacturer's credential is refused (:class:`CredentialRejected`)."""
        from healthnft.errors import Conflict

        product = read_product(jws)
        try:
            held = self.get(product.gtin)
        except CredentialRejected:
            held = None  # an altered file holds nothing: replaced
        if held is not None and held.manufacturer.lower() != product.manufacturer.lower():
            raise Conflict(f"GTIN {product.gtin} is another manufacturer's product in this "
                           "home (it holds the product credential)")  # fmt: skip
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".product-")
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(jws + "\n")
        os.replace(tmp, self._path(product.gtin))
        return product

    def drop(self, gtin: str) -> None:
        """Forget the credential kept for ``gtin`` (after its manufacturer revoked it)."""
        self._path(gtin).unlink(missing_ok=True)
