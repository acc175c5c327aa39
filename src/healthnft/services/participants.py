"""Members of the network: create a home, register participants, list them.

Only registered members hold or receive tokens (which closes the phishing path
of a transfer to an attacker's fresh address); their kind is on chain, their
human-readable names stay in this home.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from healthnft.network import Network


@dataclass(frozen=True)
class Member:
    address: str
    kind: str
    name: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NetworkCreated:
    home: str
    admin: str
    registry: str
    token: str
    backend: str = "embedded"
    rpc_url: str | None = None
    chain_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def create_network(home: Path, passphrase: str, *, rpc_url: str | None = None,
                   admin_key_file: Path | None = None,
                   confirmations: int = 1) -> NetworkCreated:  # fmt: skip
    """A new home: admin key, chain, contracts (an existing one is reused).

    The chain is the embedded one, or with ``rpc_url`` a running EVM node's, where the
    admin is the funded account whose private key ``admin_key_file`` holds (hex)."""
    from healthnft.errors import InvalidInput
    from healthnft.network import Network

    if (admin_key_file is None) != (rpc_url is None):
        raise InvalidInput("--rpc and --admin-key-file go together: the admin must hold "
                           "funds on that node")  # fmt: skip
    if not 1 <= confirmations <= 64:
        raise InvalidInput("--confirmations must be between 1 and 64")
    secret = read_private_key(admin_key_file) if admin_key_file else None
    net = Network.create(home, passphrase, rpc_url=rpc_url, admin_secret=secret,
                         confirmations=confirmations)  # fmt: skip
    try:
        c = net.config
        return NetworkCreated(str(home), c["admin"], c["registry"], c["token"],
                              c.get("backend", "embedded"), c.get("rpc_url"),
                              c.get("chain_id"))  # fmt: skip
    finally:
        net.close()


_SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def read_private_key(path: Path) -> bytes:
    """A 32-byte private key written as hex (with or without 0x) in ``path``; the error
    never shows the file's content."""
    from healthnft.errors import InputNotFound, InvalidInput

    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise InputNotFound(f"no key file at {path}") from None
    except (OSError, UnicodeDecodeError):
        raise InvalidInput(f"the key file {path} cannot be read as text") from None
    digits = text.removeprefix("0x")
    if len(digits) != 64 or any(ch not in "0123456789abcdefABCDEF" for ch in digits):
        raise InvalidInput(f"the key file {path} must hold one private key: 64 hex digits")
    secret = bytes.fromhex(digits)
    if not 0 < int.from_bytes(secret, "big") < _SECP256K1_ORDER:
        raise InvalidInput(f"the key file {path} does not hold a valid secp256k1 key")
    return secret


def add_participant(net: Network, kind: str, name: str, passphrase: str | None = None,
                    *, same_person: bool = False) -> Member:  # fmt: skip
    """A new key, registered on chain with its kind. A name already used for ``kind`` is
    refused (names are labels, not identities) unless ``same_person`` says it is them:
    then their existing registration is answered."""
    p = net.add_participant(kind, name, passphrase, existing_ok=same_person)
    return Member(p.address, p.kind, p.label)


def members(net: Network, kinds: tuple[str, ...] | None = None) -> list[Member]:
    """Participants whose keys live in this home (optionally of some kinds only)."""
    return [Member(p.address, p.kind, p.label) for p in net.catalog.participants()
            if kinds is None or p.kind in kinds]  # fmt: skip


def who(net: Network, address: str) -> Member:
    """A registered participant, as the chain says (name from this home, if known)."""
    p = net.participant(address)
    return Member(p.address, p.kind, p.label)


def holds_wallet(net: Network, address: str) -> bool:
    """Whether this home keeps the participant's keystore (it can act for them)."""
    return net.has_key(address)


def institutions(net: Network, excluding: str) -> list[Member]:
    """Members a record can be shared with or transferred to (not patients, not custodians)."""
    return [m for m in members(net) if m.kind not in ("patient", "custodian")
            and m.address.lower() != excluding.lower()]  # fmt: skip


def demo_wallets(net: Network) -> list[dict[str, Any]]:
    """Demo homes only: the institutions' keystores, locked with the documented passphrase.

    The page unlocks one in the browser to sign in. Never a patient's: a demo patient's
    key is handed to the page's own storage (``GET /api/demo/patients/{address}/keystore``)
    and the page
    opens their records itself. A real home answers ``NotFound``.
    """
    from healthnft.errors import NotFound
    from healthnft.network import DEMO_PASSPHRASE

    if not net.is_demo:
        raise NotFound("not a demo network")
    out = []
    for m in members(net):
        if m.kind in ("custodian", "patient"):
            continue
        path = net.files.keystore_file(m.address)
        if path.exists():
            out.append({**m.as_dict(), "passphrase": DEMO_PASSPHRASE,
                        "keystore": json.loads(path.read_text())})  # fmt: skip
    return out
