"""healthnft: patient-owned health records as NFTs on a permissioned EVM ledger.

The library's public surface: open a home as a :class:`Network` (issuer,
wallet and ledger operations), and the error tree in :mod:`healthnft.errors`.
Layers, lowest first: records → vault → ledger → minting → wallet → network
→ cli. A layer never imports one above it.
"""

from healthnft.errors import (
    AccessDenied,
    Conflict,
    CredentialRejected,
    HealthNFTError,
    InputNotFound,
    InvalidInput,
    InvalidRecord,
    LedgerError,
    MintInterrupted,
    NotAnIssuer,
    NotFound,
    Tampered,
    Unavailable,
    UnknownParticipant,
)

__version__ = "0.1.0"

__all__ = [
    "AccessDenied",
    "Conflict",
    "CredentialRejected",
    "HealthNFTError",
    "InputNotFound",
    "InvalidInput",
    "InvalidRecord",
    "LedgerError",
    "MintInterrupted",
    "NotAnIssuer",
    "NotFound",
    "Network",
    "Tampered",
    "Unavailable",
    "UnknownParticipant",
]


def __getattr__(name: str):  # lazy: importing errors must not load web3 and py-evm
    if name == "Network":
        from healthnft.network import Network

        return Network
    raise AttributeError(name)
