"""SMART Health Cards: read, verify and export signed, portable health records.

A SMART Health Card (https://spec.smarthealth.cards) is a compact JWS signed by the
issuer with ES256 on P-256. Its header is ``{"zip":"DEF","alg":"ES256","kid":…}``
(``kid`` = RFC 7638 thumbprint of the issuer key) and its payload is the *raw* DEFLATE
(no zlib header) of minified JSON claims::

    {"iss": <issuer URL>, "nbf": <seconds>, "vc": {"type": ["https://smarthealth.cards#health-card"],
     "credentialSubject": {"fhirVersion": "4.0.1", "fhirBundle": <Bundle collection>}}}

A card travels as a ``.smart-health-card`` file (``{"verifiableCredential": [jws, …]}``)
or as a QR code ``shc:/<digits>``; the deprecated chunked form ``shc:/<i>/<n>/<digits>``
is still read. One module per job:

- :mod:`.codec` — the signed form: DEFLATE, the JWS, issuer keys;
- :mod:`.bundle` — the minimized FHIR Bundle a card carries;
- :mod:`.qr` — ``shc:/`` numeric content (one code written, chunks read), the QR picture;
- :mod:`.inputs` — reading cards from files;
- :mod:`.trust` — which issuers a verifier trusts, their keys and revocation lists;
- :mod:`.fetch` — fetching those from ``<iss>/.well-known/…``, when asked to;
- :mod:`.verify` — :func:`verify_card` and its :class:`CardVerification` verdict;
- :mod:`.export` — :func:`export_card`: sign and write a card, its QR and the key.
"""

from healthnft.credentials.shc.bundle import build_bundle
from healthnft.credentials.shc.codec import (
    FHIR_VERSION,
    HEALTH_CARD_TYPE,
    MAX_JWS_CHARS,
    MAX_PAYLOAD_BYTES,
    issuer_key,
    new_issuer_key,
    public_jwk,
)
from healthnft.credentials.shc.export import ExportedCard, export_card
from healthnft.credentials.shc.fetch import (
    FETCH_TIMEOUT_SECONDS,
    LOOPBACK_HOSTS,
    MAX_FETCH_BYTES,
    HttpIssuer,
)
from healthnft.credentials.shc.inputs import (
    MAX_INPUT_BYTES,
    CardInput,
    read_card_inputs,
    read_cards,
)
from healthnft.credentials.shc.qr import (
    QR_PREFIX,
    QR_SINGLE_MAX_CHARS,
    decode_qr,
    encode_qr,
)
from healthnft.credentials.shc.trust import FolderIssuer, IssuerSource, TrustStore
from healthnft.credentials.shc.verify import (
    ACCEPTED_BUNDLE_TYPES,
    CLOCK_SKEW_SECONDS,
    CardVerification,
    verify_card,
)

__all__ = [
    "ACCEPTED_BUNDLE_TYPES",
    "CLOCK_SKEW_SECONDS",
    "FETCH_TIMEOUT_SECONDS",
    "FHIR_VERSION",
    "HEALTH_CARD_TYPE",
    "LOOPBACK_HOSTS",
    "MAX_FETCH_BYTES",
    "MAX_INPUT_BYTES",
    "MAX_JWS_CHARS",
    "MAX_PAYLOAD_BYTES",
    "QR_PREFIX",
    "QR_SINGLE_MAX_CHARS",
    "CardInput",
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
    "issuer_key",
    "new_issuer_key",
    "public_jwk",
    "read_card_inputs",
    "read_cards",
    "verify_card",
]
