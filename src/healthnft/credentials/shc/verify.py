"""Verifying a SMART Health Card offline: one verdict per card, never an exception.

:func:`verify_card` checks a compact JWS against a
:class:`~healthnft.credentials.shc.trust.TrustStore` (signature, issuer key, revocation,
validity window, the FHIR Bundle) and returns a :class:`CardVerification` whose one-line
``reason`` says why a card is refused. Reasons name checks, keys and positions, never
health data.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from healthnft.credentials.jose import parse_compact, verify_signature
from healthnft.credentials.shc.codec import HEALTH_CARD_TYPE, MAX_JWS_CHARS, inflate_claims
from healthnft.credentials.shc.trust import KID, IssuerSource, TrustStore, crl_counter, safe_text
from healthnft.errors import CredentialRejected, InvalidInput, InvalidRecord
from healthnft.records.fhir import SourceResource, validate

__all__ = ["ACCEPTED_BUNDLE_TYPES", "CLOCK_SKEW_SECONDS", "CardVerification", "verify_card"]

#: Bundle types accepted in ``credentialSubject.fhirBundle``. The spec's examples and our
#: export use ``collection``; since VCI 1.3.0 the spec allows any Bundle.type, so this is a
#: deliberate local restriction that can be widened here.
ACCEPTED_BUNDLE_TYPES = frozenset({"collection"})
#: Tolerated clock difference between issuer and verifier for ``nbf``/``exp``.
CLOCK_SKEW_SECONDS = 300
#: ``rid``: base64url alphabet, at most 24 characters (spec, "Revocation").
_RID = re.compile(r"[A-Za-z0-9_-]{1,24}")
#: CRL timestamp suffix: seconds since the epoch, optionally fractional.
_CRL_STAMP = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?")
_SIGNATURE_BYTES = 64  # ES256 in JOSE: r || s, 32 bytes each (RFC 7518 §3.4)


@dataclass(frozen=True)
class CardVerification:
    """The verdict on one card.

    ``iss`` is the issuer the card claims (``None`` if unreadable); it is vouched for only
    when ``valid``. ``resource_types`` lists the Bundle's resource types, first-seen
    order, without repeats (valid cards only). ``payload`` is the decoded JWT claims of a
    valid card (``None`` otherwise); it holds health data, so it is kept out of ``repr``
    and :meth:`as_dict`.
    """

    valid: bool
    reason: str
    iss: str | None = None
    resource_types: list[str] = field(default_factory=list)
    payload: dict[str, Any] | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """The verdict as JSON-ready data, without any health data."""
        return {
            "valid": self.valid,
            "reason": self.reason,
            "iss": self.iss,
            "resource_types": list(self.resource_types),
        }


class _Refused(Exception):
    """Internal: a check failed; ``args[0]`` is the one-line reason."""


def verify_card(jws_compact: str, trust: TrustStore, now: float | None = None) -> CardVerification:
    """Verify one compact JWS as a SMART Health Card against ``trust``.

    Checks, in order: compact form and canonical base64url; header (``alg`` ES256,
    ``zip`` DEF, ``kid``); a raw 64-byte r||s signature (DER is refused by name);
    bounded raw-DEFLATE payload; ``iss`` trusted; the key ``kid`` published by that
    issuer (P-256, ``use`` sig, ``alg`` ES256, kid = thumbprint); the signature;
    ``vc.type`` has the health-card type; revocation through the issuer's CRL; ``nbf``
    not in the future and ``exp`` not past (with :data:`CLOCK_SKEW_SECONDS`); the FHIR
    Bundle and every resource (R4B models). The payload is inflated before the signature
    is checked because it names the issuer whose key verifies it; inflation is bounded.

    A bad signature cannot tell a changed payload from a changed signature (or a
    different key with the same ``kid``): all three read "bad signature: …".

    Never raises for a bad card; ``now`` defaults to the current time.
    """
    now = time.time() if now is None else now
    iss: str | None = None
    try:
        jws_compact = jws_compact.strip() if isinstance(jws_compact, str) else jws_compact
        header, payload_raw, signature = _split(jws_compact)
        kid = _check_header(header)
        _check_signature_encoding(signature)
        claims = _decode_payload(payload_raw)
        iss = claims.get("iss") if isinstance(claims.get("iss"), str) else None
        if iss is None:
            raise _Refused("payload has no iss")
        source = trust.source_for(iss)
        if source is None:
            raise _Refused(f"unknown issuer {safe_text(iss)}: not in the trust store")
        # From here on a source may fail to deliver (an unreachable issuer); that is
        # this card's refusal, not a crash of the whole verification run.
        key_entries = _issuer_keys(source, kid)
        _check_signature(jws_compact, key_entries, kid)
        nbf = _number(claims.get("nbf"))
        if nbf is None:
            raise _Refused("payload has no numeric nbf")
        vc = _check_vc(claims)
        # Revocation before the validity window: "revoked" is the issuer's explicit word
        # and does not depend on the verifier's clock.
        _check_revocation(source, key_entries[0][0], kid, vc, nbf)
        _check_times(claims, nbf, now)
        resource_types = _check_bundle(vc["credentialSubject"])
    except _Refused as refusal:
        return CardVerification(False, str(refusal), iss)
    except CredentialRejected as unavailable:  # raised by an issuer source
        return CardVerification(False, str(unavailable), iss)
    return CardVerification(True, "valid", iss, resource_types, claims)


def _split(compact: str) -> tuple[dict[str, Any], bytes, bytes]:
    if not isinstance(compact, str) or len(compact) > MAX_JWS_CHARS:
        raise _Refused("malformed JWS: not a string or too long")
    parts = compact.split(".")
    if len(parts) != 3:
        raise _Refused("malformed JWS: expected header.payload.signature")
    for part, name in zip(parts, ("header", "payload", "signature"), strict=True):
        if not part:
            raise _Refused(f"malformed JWS: {name} is not base64url")
    try:
        jws = parse_compact(compact, max_chars=MAX_JWS_CHARS)
    except InvalidInput as exc:
        # Unused trailing bits would let two different strings carry the same bytes: a
        # changed character must never leave a card valid, so canonical form is required.
        raise _Refused(f"malformed JWS: {exc}") from None
    return jws.header, jws.payload, jws.signature


def _check_header(header: Mapping[str, Any]) -> str:
    alg = header.get("alg")
    if alg != "ES256":
        raise _Refused(f"unsupported alg {safe_text(str(alg), 20)!r}: SMART Health Cards use ES256")
    if header.get("zip") != "DEF":
        raise _Refused("header zip must be DEF (payload is raw DEFLATE)")
    if "crit" in header:
        raise _Refused("unsupported critical header parameters")
    kid = header.get("kid")
    if not isinstance(kid, str) or not KID.fullmatch(kid):
        raise _Refused("header has no valid kid")
    return kid


def _check_signature_encoding(signature: bytes) -> None:
    if len(signature) == _SIGNATURE_BYTES:
        return
    if signature[:1] == b"\x30":
        try:
            decode_dss_signature(signature)
        except ValueError:
            pass
        else:
            raise _Refused("DER-encoded signature: JWS requires raw r||s")
    raise _Refused(f"bad signature: {len(signature)} bytes, ES256 requires 64 (raw r||s)")


def _decode_payload(raw: bytes) -> dict[str, Any]:
    try:
        return inflate_claims(raw)
    except InvalidInput as exc:
        raise _Refused(str(exc)) from None


def _issuer_keys(source: IssuerSource, kid: str) -> list[tuple[Mapping[str, Any], ECKey]]:
    """The issuer's published keys with this ``kid``, each checked against the spec."""
    keys = source.jwks().get("keys")
    entries = [k for k in keys or () if isinstance(k, Mapping) and k.get("kid") == kid]
    if not entries:
        raise _Refused(f"unknown key: issuer publishes no key {kid}")
    out = []
    for entry in entries:
        spec = (entry.get("kty"), entry.get("crv"), entry.get("use"), entry.get("alg"))
        if spec != ("EC", "P-256", "sig", "ES256"):
            raise _Refused(f"issuer key {kid} is not an ES256 P-256 signing key")
        try:
            public = ECKey.import_key({"kty": "EC", "crv": "P-256", "x": entry["x"],
                                       "y": entry["y"]})  # fmt: skip
            thumbprint = public.thumbprint()
        except (KeyError, TypeError, ValueError, JoseError):
            raise _Refused(f"issuer key {kid} is not a valid P-256 public key") from None
        if thumbprint != kid:
            raise _Refused(f"issuer key {kid}: kid is not its RFC 7638 thumbprint")
        out.append((entry, public))
    return out


def _check_signature(
    compact: str, keys: Sequence[tuple[Mapping[str, Any], ECKey]], kid: str
) -> None:
    if any(verify_signature(compact, public, ["ES256"]) for _, public in keys):
        return
    raise _Refused(f"bad signature: does not match header and payload under key {kid}")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _check_times(claims: Mapping[str, Any], nbf: float, now: float) -> None:
    if nbf > now + CLOCK_SKEW_SECONDS:
        raise _Refused("not yet valid: nbf is in the future")
    if "exp" in claims:
        exp = _number(claims["exp"])
        if exp is None:
            raise _Refused("payload exp is not a number")
        if exp < now - CLOCK_SKEW_SECONDS:
            raise _Refused("expired: exp is in the past")


def _check_vc(claims: Mapping[str, Any]) -> dict[str, Any]:
    vc = claims.get("vc")
    if not isinstance(vc, dict):
        raise _Refused("payload has no vc object")
    types = vc.get("type")
    if not isinstance(types, list) or HEALTH_CARD_TYPE not in types:
        raise _Refused(f"not a health card: vc.type lacks {HEALTH_CARD_TYPE}")
    subject = vc.get("credentialSubject")
    if not isinstance(subject, dict):
        raise _Refused("vc has no credentialSubject object")
    version = subject.get("fhirVersion")
    if not isinstance(version, str) or not version.startswith("4."):
        raise _Refused("unsupported credentialSubject.fhirVersion (expected 4.x)")
    return vc


def _check_revocation(
    source: IssuerSource, key: Mapping[str, Any], kid: str, vc: Mapping[str, Any], nbf: float
) -> None:
    """Spec "Revocation": a listed ``rid`` revokes the card; ``rid.<t>`` only if nbf < t.

    An issuer that declares ``crlVersion`` on the key promises a CRL; without it (or
    with an older one) the card's status is unknown, and unknown is refused.
    """
    crl_version = key.get("crlVersion")
    crl = source.crl(kid)
    if crl_version is not None and crl is None:
        raise _Refused(f"revocation status unknown: no revocation list for key {kid}")
    if crl is None:
        return
    ctr = crl_counter(crl.get("ctr"))
    wanted = crl_counter(crl_version) if crl_version is not None else None
    if ctr is None or (wanted is not None and ctr < wanted):
        raise _Refused(f"revocation status unknown: revocation list for key {kid} is outdated")
    rid = vc.get("rid")
    if rid is None:
        return
    if not isinstance(rid, str) or not _RID.fullmatch(rid):
        raise _Refused("malformed vc.rid")
    for listed in crl.get("rids", []):
        base, dot, stamp = str(listed).partition(".")
        if base != rid:
            continue
        if not dot:
            raise _Refused(f"revoked (rid {rid})")
        if not _CRL_STAMP.fullmatch(stamp):
            raise _Refused(f"revoked (rid {rid})")  # unreadable cutoff: fail closed
        if nbf < float(stamp):
            raise _Refused(f"revoked (rid {rid}, issued before {stamp})")


def _check_bundle(subject: Mapping[str, Any]) -> list[str]:
    bundle = subject.get("fhirBundle")
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise _Refused("credentialSubject.fhirBundle is not a FHIR Bundle")
    if bundle.get("type") not in ACCEPTED_BUNDLE_TYPES:
        allowed = " or ".join(sorted(ACCEPTED_BUNDLE_TYPES))
        raise _Refused(f"fhirBundle type must be {allowed}")
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise _Refused("fhirBundle has no entries")
    types: list[str] = []
    for i, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise _Refused(f"fhirBundle entry {i} has no resource")
        if "fullUrl" in entry and not isinstance(entry["fullUrl"], str):
            raise _Refused(f"fhirBundle entry {i} has an invalid fullUrl")
        try:
            validate(SourceResource(resource, f"entry {i}"))
        except InvalidRecord as exc:
            raise _Refused(f"invalid FHIR: {exc}") from None
        if resource["resourceType"] not in types:
            types.append(resource["resourceType"])
    return types
