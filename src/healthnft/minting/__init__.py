"""minting: the pipeline from prepared records to tokens in a patient's wallet."""

from healthnft.minting.pipeline import DEFAULT_BATCH_SIZE, Minter, MintResult

__all__ = ["DEFAULT_BATCH_SIZE", "MintResult", "Minter"]
