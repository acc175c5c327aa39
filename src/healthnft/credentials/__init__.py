"""credentials: portable, verifiable credentials built from a patient's records.

- :mod:`healthnft.credentials.shc` — SMART Health Cards: read ``.smart-health-card``
  files, compact JWS and ``shc:/`` QR content; verify them offline against a trust
  store of issuer keys and revocation lists; export a patient's resources as a signed
  card with its QR code.
"""

from healthnft.credentials.shc import (
    CardVerification,
    ExportedCard,
    FolderIssuer,
    IssuerSource,
    TrustStore,
    build_bundle,
    decode_qr,
    encode_qr,
    export_card,
    new_issuer_key,
    public_jwk,
    read_card_inputs,
    verify_card,
)

__all__ = [
    "CardVerification",
    "ExportedCard",
    "FolderIssuer",
    "IssuerSource",
    "TrustStore",
    "build_bundle",
    "decode_qr",
    "encode_qr",
    "export_card",
    "new_issuer_key",
    "public_jwk",
    "read_card_inputs",
    "verify_card",
]
