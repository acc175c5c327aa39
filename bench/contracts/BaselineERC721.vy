# pragma version ~=0.4.3
"""
@title BaselineERC721
@custom:contract-name BaselineERC721
@license Apache-2.0
@notice The gas benchmark's baseline: snekmate's stock ERC-721 (enumerable,
        per-token URI storage), minted one token per transaction. A thin
        wrapper, because snekmate's wheel ships modules, not deployable mocks.
"""

from snekmate.auth import ownable as ow
from snekmate.tokens import erc721

initializes: ow
initializes: erc721[ownable := ow]

exports: erc721.__interface__


@deploy
@payable
def __init__(
    name_: String[25],
    symbol_: String[5],
    base_uri_: String[80],
    name_eip712_: String[50],
    version_eip712_: String[20],
):
    """
    @param name_ The token collection's name.
    @param symbol_ Its symbol.
    @param base_uri_ Prefix for `tokenURI`.
    @param name_eip712_ EIP-712 signing-domain name.
    @param version_eip712_ EIP-712 signing-domain version.
    """
    ow.__init__()
    erc721.__init__(name_, symbol_, base_uri_, name_eip712_, version_eip712_)
