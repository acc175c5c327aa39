"""Sign-In with Ethereum (EIP-4361): the message the wallet signs, and its check.

Written here rather than taken from the ``siwe`` package because that package
pins web3 < 8 (this project runs web3 8). Only what a server needs is here:
build the message for a fresh nonce, parse it strictly back, and verify the
EIP-191 ``personal_sign`` signature over it with eth-account. The server keeps
every nonce it issued and accepts each one once, so a signed message cannot be
replayed; the domain, URI and chain id must be this server's, so a message
signed for another site is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from eth_account import Account
from eth_account.messages import encode_defunct

STATEMENT = "Sign in to your healthnft health wallet. This signs no transaction and costs nothing."

_TEMPLATE = (
    "{domain} wants you to sign in with your Ethereum account:\n"
    "{address}\n"
    "\n"
    "{statement}\n"
    "\n"
    "URI: {uri}\n"
    "Version: 1\n"
    "Chain ID: {chain_id}\n"
    "Nonce: {nonce}\n"
    "Issued At: {issued_at}\n"
    "Expiration Time: {expiration_time}"
)

_PATTERN = re.compile(
    r"\A(?P<domain>[^\s/]+) wants you to sign in with your Ethereum account:\n"
    r"(?P<address>0x[0-9a-fA-F]{40})\n"
    r"\n"
    r"(?P<statement>[^\n]*)\n"
    r"\n"
    r"URI: (?P<uri>\S+)\n"
    r"Version: 1\n"
    r"Chain ID: (?P<chain_id>[0-9]+)\n"
    r"Nonce: (?P<nonce>[A-Za-z0-9]{8,})\n"
    r"Issued At: (?P<issued_at>\S+)\n"
    r"Expiration Time: (?P<expiration_time>\S+)\Z"
)


class SiweError(ValueError):
    """The message or its signature does not hold; the text says which part."""


@dataclass(frozen=True)
class SiweMessage:
    domain: str
    address: str
    statement: str
    uri: str
    chain_id: int
    nonce: str
    issued_at: datetime
    expiration_time: datetime

    def text(self) -> str:
        """The exact text the wallet signs."""
        return _TEMPLATE.format(
            domain=self.domain,
            address=self.address,
            statement=self.statement,
            uri=self.uri,
            chain_id=self.chain_id,
            nonce=self.nonce,
            issued_at=_iso(self.issued_at),
            expiration_time=_iso(self.expiration_time),
        )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str, field: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SiweError(f"sign-in message: {field} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise SiweError(f"sign-in message: {field} has no time zone")
    return moment


def parse(text: str) -> SiweMessage:
    """Parse an EIP-4361 message in exactly the form :meth:`SiweMessage.text` writes."""
    match = _PATTERN.match(text or "")
    if match is None:
        raise SiweError("not an EIP-4361 sign-in message in the form this server issues")
    g = match.groupdict()
    return SiweMessage(
        domain=g["domain"],
        address=g["address"],
        statement=g["statement"],
        uri=g["uri"],
        chain_id=int(g["chain_id"]),
        nonce=g["nonce"],
        issued_at=_parse_time(g["issued_at"], "Issued At"),
        expiration_time=_parse_time(g["expiration_time"], "Expiration Time"),
    )


def recover(text: str, signature: str) -> str:
    """The address that made ``signature`` (EIP-191 personal_sign) over ``text``."""
    try:
        return Account.recover_message(encode_defunct(text=text), signature=signature)
    except Exception:  # malformed hex, wrong length, bad v: all one answer
        raise SiweError("the signature is not a valid Ethereum signature") from None


def sign(text: str, private_key: bytes) -> str:
    """Sign a sign-in message as a wallet would (for the CLI, tests and benchmarks)."""
    signed = Account.sign_message(encode_defunct(text=text), private_key=private_key)
    return "0x" + signed.signature.hex().removeprefix("0x")
