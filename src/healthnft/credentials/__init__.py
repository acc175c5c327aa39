"""credentials: portable, verifiable credentials built from a patient's records.

- :mod:`healthnft.credentials.did` — did:key identifiers (Ed25519, P-256), resolved
  offline; every participant's Ed25519 did:key is bound on chain to its registry entry.
- :mod:`healthnft.credentials.vc` — W3C Verifiable Credentials 2.0 secured with VC-JOSE
  (compact JWS): hospitals' HealthRecordAttestation over each record's commitment,
  PatientWalletCredential (DID ↔ wallet), presentations over one-time challenges.
- :mod:`healthnft.credentials.shc` — SMART Health Cards: read ``.smart-health-card``
  files, compact JWS and ``shc:/`` QR content; verify them offline against a trust
  store of issuer keys and revocation lists (or, when asked, against keys fetched from
  the issuer's ``.well-known``); export a patient's resources as a signed card with its
  QR code.
"""

from healthnft.credentials.shc import (
    CardVerification,
    ExportedCard,
    FolderIssuer,
    HttpIssuer,
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
    "HttpIssuer",
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
