"""SMART Health Cards from a wallet's records, signed by the hospital that issued them.

A card is the issuer's statement, so the hospital's card key signs it (a key
derived from the hospital's keystore secret); the patient chooses which
immunization and laboratory records go in. The card's ``iss`` is the URL where
a deployment publishes the hospital's ``/.well-known/jwks.json``; offline, the
export writes that file beside the card for ``shc verify --issuer-keys``.
"""

from __future__ import annotations

from pathlib import Path

from healthnft.credentials import ExportedCard, export_card
from healthnft.errors import AccessDenied, InvalidInput
from healthnft.keys import Identity
from healthnft.wallet.wallet import Wallet

#: The record kinds a SMART Health Card carries here.
CARD_CATEGORIES = frozenset({"immunization", "laboratory"})
#: Where issuers' key sets are published (one path per issuer address).
ISSUER_URL_BASE = "https://issuers.healthnft.local"


def issuer_url(address: str) -> str:
    return f"{ISSUER_URL_BASE}/{address.lower()}"


def export_health_card(
    wallet: Wallet,
    owner: Identity,
    issuer: Identity,
    token_ids: list[int],
    out_dir: Path,
    name: str = "health-card",
    *,
    qr: bool = True,
    replace: bool = False,
) -> ExportedCard:
    """Export ``token_ids`` (the owner's, all from ``issuer``) as one SMART Health Card
    (with ``qr``, its one QR code; ``replace``: a card of that name in ``out_dir``)."""
    if not token_ids:
        raise InvalidInput("choose at least one immunization or laboratory record")
    chosen = []
    for token_id in token_ids:
        rec = wallet.open(token_id, owner)
        if rec.meta.get("category") not in CARD_CATEGORIES:
            raise InvalidInput(
                f"token {token_id} is a {rec.meta.get('category')} record; SMART Health Cards "
                "here carry immunization and laboratory records"
            )
        if str(rec.meta.get("issuer", "")).lower() != issuer.address.lower():
            raise AccessDenied(f"token {token_id} was issued by another hospital")
        chosen.append(rec.resource)
    patient = _patient_resource(wallet, owner, issuer)
    return export_card([patient, *chosen], issuer.card_key(), issuer_url(issuer.address),
                       out_dir, name, qr=qr, replace=replace)  # fmt: skip


def _patient_resource(wallet: Wallet, owner: Identity, issuer: Identity) -> dict:
    """The owner's Patient record from this issuer: a card names who it is about."""
    for item in wallet.list(owner.address):
        if item["resource_type"] == "Patient":
            rec = wallet.open(item["token_id"], owner)
            if str(rec.meta.get("issuer", "")).lower() == issuer.address.lower():
                return rec.resource
    raise InvalidInput("the wallet holds no Patient record from this issuer to name the card")
