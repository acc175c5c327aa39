"""Every error healthnft raises on purpose, in one tree.

::

    HealthNFTError                 base: one clear line, safe to print
     ├── InvalidRecord             input is not a readable, valid FHIR record
     ├── InputNotFound             a file or folder named by the user is missing
     ├── UnknownParticipant        an address or name the network does not know
     ├── NotAnIssuer               the named hospital may not mint
     ├── CredentialRejected        a key or keystore could not be opened
     ├── AccessDenied              the caller may not see or change this record
     ├── Tampered                  stored data or a proof does not match the chain
     ├── LedgerError               the chain refused a transaction
     └── MintInterrupted           a batch could not complete; nothing of it is visible

Messages never contain health data or identifiers: they name files, token ids,
field paths and reasons, never values. The CLI prints ``str(error)`` as one line
and exits with :attr:`HealthNFTError.exit_code`.
"""

from __future__ import annotations


class HealthNFTError(Exception):
    """Base class: a failure the user can understand and act on."""

    exit_code = 1


class InvalidRecord(HealthNFTError):
    """The input is not valid FHIR R4 (or not JSON at all)."""

    exit_code = 3


class InputNotFound(HealthNFTError):
    """A file or folder given by the user does not exist or cannot be read."""

    exit_code = 2


class UnknownParticipant(HealthNFTError):
    """An address or name is not a registered participant."""

    exit_code = 4


class NotAnIssuer(HealthNFTError):
    """The participant is not allowed to mint records."""

    exit_code = 4


class CredentialRejected(HealthNFTError):
    """A key, keystore or passphrase could not be used."""

    exit_code = 5


class AccessDenied(HealthNFTError):
    """The caller may not see or change the record."""

    exit_code = 6


class Tampered(HealthNFTError):
    """Stored ciphertext, metadata or a proof does not match the on-chain commitment."""

    exit_code = 7


class LedgerError(HealthNFTError):
    """The ledger refused or failed a transaction."""

    exit_code = 8


class MintInterrupted(HealthNFTError):
    """A batch was interrupted; it was rolled back or will be completed on retry."""

    exit_code = 9
