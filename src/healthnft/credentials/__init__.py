"""credentials: portable, verifiable credentials built from a patient's records.

Everything a caller may import is listed here; the work lives in one module per job:

- :mod:`.did` — did:key identifiers (Ed25519, P-256), resolved offline; every
  participant's Ed25519 did:key is bound on chain to its registry entry.
- :mod:`.jose` — the one JOSE layer (compact JWS over joserfc) and the one base64url
  pair; :func:`unverified_claims` peeks into a JWS payload for routing only.
- :mod:`.vc_jws` — the did:key-signed JWS envelope of credentials and presentations.
- :mod:`.vc` — W3C Verifiable Credentials 2.0 secured with VC-JOSE: hospitals'
  HealthRecordAttestation over each record's commitment, PatientWalletCredential.
- :mod:`.presentation` — presentations of credentials over one-time challenges.
- :mod:`.challenges` — :class:`ChallengeStore`, the one-time challenges themselves.
- :mod:`.trust` — :class:`ChainTrust`: whether the chain vouches for the DIDs behind a
  credential (issuer is a registered hospital, patient DID bound to the wallet, not
  revoked), for minting, wallets and custodians alike.
- :mod:`.shc` — SMART Health Cards: read ``.smart-health-card`` files, compact JWS and
  ``shc:/`` QR content; verify them offline against a trust store of issuer keys and
  revocation lists (or keys fetched from the issuer's ``.well-known``, when asked);
  export a patient's resources as a signed card with its QR code.

Layering: this package may use :mod:`healthnft.ledger` and :mod:`healthnft.records`,
never minting, wallet, consent, services or the adapters.
"""

from healthnft.credentials.challenges import ChallengeStore
from healthnft.credentials.jose import b64url_decode, b64url_encode, unverified_claims
from healthnft.credentials.presentation import (
    Presentation,
    create_presentation,
    presentation_nonce,
    verify_presentation,
)
from healthnft.credentials.shc import (
    CardInput,
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
    issuer_key,
    new_issuer_key,
    public_jwk,
    read_card_inputs,
    read_cards,
    verify_card,
)
from healthnft.credentials.trust import (
    ChainTrust,
    bound_did,
    did_address,
    hospital_did_check,
    revocation_check,
)
from healthnft.credentials.vc import (
    attest_record,
    attestation_id,
    credential_hash,
    issue_credential,
    issue_identity,
    issuer_of,
    patient_binding,
    verify_credential,
    verify_identity,
    verify_record_attestation,
)

__all__ = [
    "CardInput",
    "CardVerification",
    "ChainTrust",
    "ChallengeStore",
    "ExportedCard",
    "FolderIssuer",
    "HttpIssuer",
    "IssuerSource",
    "Presentation",
    "TrustStore",
    "attest_record",
    "attestation_id",
    "b64url_decode",
    "b64url_encode",
    "bound_did",
    "build_bundle",
    "create_presentation",
    "credential_hash",
    "decode_qr",
    "did_address",
    "encode_qr",
    "export_card",
    "hospital_did_check",
    "issue_credential",
    "issue_identity",
    "issuer_key",
    "issuer_of",
    "new_issuer_key",
    "patient_binding",
    "presentation_nonce",
    "public_jwk",
    "read_card_inputs",
    "read_cards",
    "revocation_check",
    "unverified_claims",
    "verify_card",
    "verify_credential",
    "verify_identity",
    "verify_presentation",
    "verify_record_attestation",
]
