"""consent: custodians that release key shares only when the chain says a grant holds.

Above the ledger and the vault, below the CLI: :class:`CustodianService` is one
custodian; :func:`open_as_grantee` is the grantee's side (prove its DID with a
presentation, collect k shares, open and check the record).
"""

from healthnft.consent.custodian import CustodianService, open_as_grantee

__all__ = ["CustodianService", "open_as_grantee"]
