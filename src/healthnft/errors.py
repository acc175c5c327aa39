"""Every error healthnft raises on purpose, in one tree.

::

    HealthNFTError                 base, never raised itself: one clear line, safe to print
     ├── InvalidInput              invalid_input       exit 2   HTTP 400
     │    ├── InputNotFound        input_not_found     exit 2   HTTP 400
     │    ├── TooLarge             too_large           exit 2   HTTP 413
     │    └── InvalidRecord        invalid_record      exit 3   HTTP 422
     ├── NotFound                  not_found           exit 4   HTTP 404
     │    └── UnknownParticipant   unknown_participant exit 4   HTTP 404
     ├── CredentialRejected        credential_rejected exit 5   HTTP 401
     ├── AccessDenied              access_denied       exit 6   HTTP 403
     │    └── NotAnIssuer          not_an_issuer       exit 4   HTTP 403
     ├── Tampered                  tampered            exit 7   HTTP 409
     ├── LedgerError               ledger              exit 8   HTTP 502
     ├── Conflict                  conflict            exit 10  HTTP 409
     │    └── DispenseRefused      dispense_refused    exit 10  HTTP 409
     └── Unavailable               unavailable         exit 11  HTTP 503
          ├── MintInterrupted      mint_interrupted    exit 9   HTTP 503
          ├── RateLimited          rate_limited        exit 11  HTTP 429
          └── ChainMissing         chain_missing       exit 12  HTTP 503

Each class carries its stable machine ``code``, its process ``exit_code`` and its
``http_status``: the CLI and the web API read them from here and nowhere else
(the CLI prints ``error: <message>`` and exits with the code; the API answers an
RFC 9457 ``application/problem+json`` document, see :func:`problem`). Catch the
class you mean: ``except NotFound`` also catches an unknown participant.

Messages never contain health data or identifiers: they name files, token ids,
field paths and reasons, never values.
"""

from __future__ import annotations

from typing import Any

#: What a former owner or grantee is told of a burned record (anyone else: not found).
BURNED = "burned: the token was destroyed and its record crypto-shredded"

#: Where the ``type`` of a problem document points (RFC 9457 §3.1.1: a URI reference
#: that identifies the problem type; it need not resolve).
PROBLEM_TYPE_BASE = "urn:healthnft:problem:"


class HealthNFTError(Exception):
    """Base class: a failure the user can understand and act on. Raise a subclass."""

    code = "error"
    title = "healthnft could not do this"
    exit_code = 1
    http_status = 500


class InvalidInput(HealthNFTError):
    """What the caller gave (an argument, an option, a field) cannot be used as given."""

    code = "invalid_input"
    title = "Invalid input"
    exit_code = 2
    http_status = 400


class InputNotFound(InvalidInput):
    """A file or folder given by the user does not exist or cannot be read."""

    code = "input_not_found"
    title = "Input file not found"
    exit_code = 2
    http_status = 400


class TooLarge(InvalidInput):
    """The input is over the size this door accepts (refused before it is all read)."""

    code = "too_large"
    title = "Input too large"
    exit_code = 2
    http_status = 413


class InvalidRecord(InvalidInput):
    """The input is not a valid record (FHIR R4, note or DICOM) — or not JSON at all."""

    code = "invalid_record"
    title = "Invalid record"
    exit_code = 3
    http_status = 422


class NotFound(HealthNFTError):
    """A token, grant, request, job or home that does not exist (or that the caller may
    not know exists: the two are answered alike so errors never reveal existence)."""

    code = "not_found"
    title = "Not found"
    exit_code = 4
    http_status = 404


class UnknownParticipant(NotFound):
    """An address or name is not a registered participant."""

    code = "unknown_participant"
    title = "Unknown participant"
    exit_code = 4
    http_status = 404


class CredentialRejected(HealthNFTError):
    """A key, keystore, passphrase, signature or session could not be used."""

    code = "credential_rejected"
    title = "Credential rejected"
    exit_code = 5
    http_status = 401


class AccessDenied(HealthNFTError):
    """The caller is known but may not see or change this."""

    code = "access_denied"
    title = "Access denied"
    exit_code = 6
    http_status = 403


class NotAnIssuer(AccessDenied):
    """The participant is not allowed to mint records."""

    code = "not_an_issuer"
    title = "Not an issuer"
    exit_code = 4
    http_status = 403


class Tampered(HealthNFTError):
    """Stored ciphertext, metadata or a proof does not match the on-chain commitment."""

    code = "tampered"
    title = "Integrity check failed"
    exit_code = 7
    http_status = 409


class LedgerError(HealthNFTError):
    """The ledger refused or failed a transaction."""

    code = "ledger"
    title = "The ledger refused the transaction"
    exit_code = 8
    http_status = 502


class Conflict(HealthNFTError):
    """The request clashes with the current state: already done, not yet approved,
    a duplicate, or a state the action does not apply to."""

    code = "conflict"
    title = "Conflict with the current state"
    exit_code = 10
    http_status = 409


class DispenseRefused(Conflict):
    """A medicine pack may not be dispensed: its verification status (``status``:
    unknown, mismatch, recalled, quarantined, expired) says why; nothing was changed."""

    code = "dispense_refused"
    title = "Dispense refused"
    exit_code = 10
    http_status = 409

    def __init__(self, message: str, status: str = "refused") -> None:
        super().__init__(message)
        self.status = status


class Unavailable(HealthNFTError):
    """A part the action needs is missing or not answering (custodians, a node, disk
    space); retrying later, or after fixing the named part, is safe."""

    code = "unavailable"
    title = "A required service is unavailable"
    exit_code = 11
    http_status = 503


class MintInterrupted(Unavailable):
    """A batch was interrupted; it was rolled back or will be completed on retry."""

    code = "mint_interrupted"
    title = "Minting was interrupted"
    exit_code = 9
    http_status = 503


class RateLimited(Unavailable):
    """Too many requests of this kind just now; ``retry_after_s`` says when to try again
    (the API sends it as ``Retry-After``)."""

    code = "rate_limited"
    title = "Too many requests"
    exit_code = 11
    http_status = 429

    def __init__(self, message: str, retry_after_s: int = 60) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ChainMissing(Unavailable):
    """A home's chain is gone: ``config.json`` names deployed contracts, but the chain
    file is missing, or holds no code at those addresses. The home is refused, never
    given a new empty chain in its place (that would orphan every record it holds):
    restore the file from a backup."""

    code = "chain_missing"
    title = "The home's chain is missing"
    exit_code = 12
    http_status = 503


#: Every concrete error class, for documentation and tests.
ALL_ERRORS: tuple[type[HealthNFTError], ...] = (
    InvalidInput, InputNotFound, TooLarge, InvalidRecord, NotFound, UnknownParticipant,
    CredentialRejected, AccessDenied, NotAnIssuer, Tampered, LedgerError, Conflict,
    DispenseRefused, Unavailable, MintInterrupted, RateLimited, ChainMissing,
)  # fmt: skip


def problem(exc: HealthNFTError, instance: str | None = None) -> dict[str, Any]:
    """The RFC 9457 problem document for ``exc`` (``code`` is an extension member)."""
    doc: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + exc.code,
        "title": exc.title,
        "status": exc.http_status,
        "detail": str(exc),
        "code": exc.code,
    }
    if instance:
        doc["instance"] = instance
    return doc
