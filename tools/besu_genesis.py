"""Write a Hyperledger Besu QBFT genesis file for a healthnft network.

Run by hand when a consortium is set up (never at run time): the output is the
``genesis.json`` every validator and every other node of the network starts from.
``deploy/besu/genesis.example.json`` was written by this script with synthetic
addresses. See ``docs/besu.md``.

What it writes, following Besu's QBFT genesis format (block header validator selection):

- ``config.chainId`` and the forks up to **London** at block 0, nothing later. The
  contracts are compiled for ``paris`` (vyper ``evm_version="paris"``: no ``PUSH0``),
  the same bytecode as on the geth Clique test network; Paris adds no opcode a
  QBFT chain lacks (``PREVRANDAO`` is the old ``DIFFICULTY`` opcode, and the contracts
  use neither). Shanghai and later are left off on purpose: one bytecode everywhere.
- ``config.qbft``: ``blockperiodseconds``, ``epochlength``, ``requesttimeoutseconds``.
- ``config.zeroBaseFee``: the London base fee stays 0 (a free-gas network; the nodes
  also run with ``min-gas-price=0``). healthnft's client still sends
  ``maxPriorityFeePerGas = 1``, so a sender pays 1 wei per gas: fund the accounts that
  send transactions through ``alloc`` (``--alloc``).
- ``extraData`` = ``RLP([32 zero bytes, [validator addresses], [], 0x, []])``: vanity,
  validators, no vote (an empty list), round 0 (the empty byte string) and no committed
  seals, as Besu's ``QbftExtraDataCodec`` encodes a genesis block.
- ``difficulty`` 1, ``nonce`` 0 and the BFT ``mixHash`` Besu requires of IBFT 2.0 / QBFT
  blocks.

Usage::

    python tools/besu_genesis.py --chain-id 2025 \\
        --validator 0x.. --validator 0x.. --validator 0x.. --validator 0x.. \\
        --alloc 0x..=1000000000000000000000 --out genesis.json

Bad input (a malformed address, a wrong EIP-55 checksum, a repeated validator, a
negative balance...) is one line on stderr, exit status 2, and nothing written.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import rlp
from eth_utils import is_checksum_address, to_checksum_address

#: The ``mixHash`` of every IBFT 2.0 / QBFT block ("ctical byzantine fault tolerance").
BFT_MIX_HASH = "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365"
VANITY = bytes(32)
#: Forks switched on at block 0: everything up to London, nothing after it.
FORKS = (
    "homesteadBlock", "eip150Block", "eip155Block", "eip158Block", "byzantiumBlock",
    "constantinopleBlock", "petersburgBlock", "istanbulBlock", "muirGlacierBlock",
    "berlinBlock", "londonBlock",
)  # fmt: skip
#: The vyper ``evm_version`` to compile the contracts with for this network.
EVM_VERSION = "paris"
DEFAULT_GAS_LIMIT = 30_000_000
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


class GenesisError(ValueError):
    """Input that cannot make a genesis file; the message says which and why."""


def parse_address(text: str, what: str = "address") -> str:
    """Return ``text`` as a checksummed address, or raise :class:`GenesisError`.

    All-lowercase and all-uppercase hex are accepted as they are; mixed case must be a
    correct EIP-55 checksum (a mistyped character is then caught, not silently used).
    """
    text = text.strip()
    if not _ADDRESS.fullmatch(text):
        raise GenesisError(f"{what} {text!r} is not 0x followed by 40 hex digits")
    body = text[2:]
    mixed = body != body.lower() and body != body.upper()
    if mixed and not is_checksum_address(text):
        raise GenesisError(f"{what} {text} has a wrong EIP-55 checksum (a mistyped digit?)")
    if int(body, 16) == 0:
        raise GenesisError(f"{what} {text} is the zero address")
    return to_checksum_address(text)


def parse_alloc(text: str) -> tuple[str, int]:
    """Parse ``0xADDRESS=WEI`` (WEI in decimal or 0x hex) into (address, wei)."""
    address, sep, amount = text.partition("=")
    if not sep:
        raise GenesisError(f"alloc {text!r} is not ADDRESS=WEI")
    try:
        wei = int(amount.strip(), 0)
    except ValueError:
        raise GenesisError(f"alloc {text!r}: {amount!r} is not a whole number of wei") from None
    if wei < 0:
        raise GenesisError(f"alloc {text!r}: a balance cannot be negative")
    return parse_address(address, "alloc address"), wei


def qbft_extra_data(validators: Sequence[str]) -> str:
    """The genesis ``extraData`` naming ``validators`` (checksummed or not), as 0x-hex."""
    addresses = [bytes.fromhex(parse_address(v, "validator")[2:]) for v in validators]
    encoded = rlp.encode([VANITY, addresses, [], b"", []])
    return "0x" + encoded.hex()


def decode_qbft_extra_data(extra_data: str) -> list[str]:
    """The validators named by a QBFT genesis ``extraData``; raise if it is not one."""
    try:
        items = rlp.decode(bytes.fromhex(extra_data.removeprefix("0x")))
    except (ValueError, rlp.DecodingError) as exc:
        raise GenesisError(f"extraData is not RLP: {exc}") from None
    if not isinstance(items, list) or len(items) != 5:
        raise GenesisError("extraData is not a 5-item RLP list")
    vanity, validators, vote, round_, seals = items
    if vanity != VANITY or vote != [] or round_ != b"" or seals != []:
        raise GenesisError("extraData is not a genesis QBFT extraData (vanity/vote/round/seals)")
    if not isinstance(validators, list) or not all(
        isinstance(v, bytes) and len(v) == 20 for v in validators
    ):
        raise GenesisError("extraData's validator list is not a list of 20-byte addresses")
    return [to_checksum_address(v) for v in validators]


def build_genesis(
    chain_id: int,
    validators: Sequence[str],
    alloc: Mapping[str, int] | None = None,
    *,
    block_period_seconds: int = 2,
    epoch_length: int = 30_000,
    request_timeout_seconds: int = 4,
    gas_limit: int = DEFAULT_GAS_LIMIT,
) -> dict[str, Any]:
    """The genesis document, as a dict ready for ``json.dump``."""
    if chain_id <= 0:
        raise GenesisError(f"chain id must be a positive integer, not {chain_id}")
    if not validators:
        raise GenesisError("at least one --validator is needed (four to tolerate one fault)")
    checked = [parse_address(v, "validator") for v in validators]
    seen: set[str] = set()
    for v in checked:
        if v in seen:
            raise GenesisError(f"validator {v} is listed twice")
        seen.add(v)
    if block_period_seconds < 1 or epoch_length < 1:
        raise GenesisError("blockperiodseconds and epochlength must be at least 1")
    if request_timeout_seconds <= block_period_seconds:
        raise GenesisError("requesttimeoutseconds must be longer than blockperiodseconds")
    balances: dict[str, str] = {}
    for address, wei in (alloc or {}).items():
        key = parse_address(address, "alloc address")
        if wei < 0:
            raise GenesisError(f"alloc {key}: a balance cannot be negative")
        if key.lower()[2:] in balances:
            raise GenesisError(f"alloc {key} is listed twice")
        balances[key.lower()[2:]] = hex(wei)
    config: dict[str, Any] = {"chainId": chain_id}
    config.update(dict.fromkeys(FORKS, 0))
    config["zeroBaseFee"] = True
    config["qbft"] = {
        "blockperiodseconds": block_period_seconds,
        "epochlength": epoch_length,
        "requesttimeoutseconds": request_timeout_seconds,
    }
    return {
        "config": config,
        "nonce": "0x0",
        "timestamp": "0x0",
        "gasLimit": hex(gas_limit),
        "difficulty": "0x1",
        "mixHash": BFT_MIX_HASH,
        "coinbase": "0x" + "00" * 20,
        "extraData": qbft_extra_data(checked),
        "alloc": {a: {"balance": b} for a, b in balances.items()},
    }


def write_json(document: Mapping[str, Any], out: Path) -> None:
    """Write ``document`` to ``out`` atomically (a reader never sees half a file)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", dir=out.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(document, fh, indent=2)
            fh.write("\n")
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="besu_genesis",
        description="Write a Hyperledger Besu QBFT genesis file (see docs/besu.md).",
    )
    p.add_argument("--chain-id", type=int, required=True, help="the network's chain id")
    p.add_argument(
        "--validator",
        action="append",
        default=[],
        metavar="0xADDRESS",
        help="a validator's address (repeat; 4 validators tolerate 1 fault)",
    )
    p.add_argument(
        "--alloc",
        action="append",
        default=[],
        metavar="0xADDRESS=WEI",
        help="a starting balance, e.g. for the admin account (repeat)",
    )
    p.add_argument("--block-period", type=int, default=2, help="blockperiodseconds (2)")
    p.add_argument("--epoch-length", type=int, default=30_000, help="epochlength (30000)")
    p.add_argument("--request-timeout", type=int, default=4, help="requesttimeoutseconds (4)")
    p.add_argument("--gas-limit", type=int, default=DEFAULT_GAS_LIMIT, help="block gas limit")
    p.add_argument("--out", type=Path, required=True, help="the genesis file to write")
    return p  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        alloc: dict[str, int] = {}
        for item in args.alloc:
            address, wei = parse_alloc(item)
            if address in alloc:
                raise GenesisError(f"alloc {address} is listed twice")
            alloc[address] = wei
        genesis = build_genesis(
            args.chain_id, args.validator, alloc,
            block_period_seconds=args.block_period, epoch_length=args.epoch_length,
            request_timeout_seconds=args.request_timeout, gas_limit=args.gas_limit,
        )  # fmt: skip
    except GenesisError as exc:
        print(f"besu_genesis: error: {exc}; nothing written", file=sys.stderr)
        return 2
    write_json(genesis, args.out)
    n = len(args.validator)
    f = (n - 1) // 3
    print(f"wrote {args.out}: chain {args.chain_id}, {n} validators (tolerates {f} faulty), "
          f"contracts compiled with evm_version={EVM_VERSION!r}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
