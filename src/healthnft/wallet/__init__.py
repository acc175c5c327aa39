"""wallet: the patient's side — list, open and verify the records it owns."""

from healthnft.wallet.wallet import OpenedRecord, Verification, Wallet

__all__ = ["OpenedRecord", "Verification", "Wallet"]
