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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def create_network(home: Path, passphrase: str) -> NetworkCreated:
    """A new home: admin key, embedded chain, contracts (an existing one is reused)."""
    from healthnft.network import Network

    net = Network.create(home, passphrase)
    try:
        return NetworkCreated(str(home), net.config["admin"], net.config["registry"],
                              net.config["token"])  # fmt: skip
    finally:
        net.close()


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
    """Demo homes only: every member's keystore, locked with the documented passphrase.

    The page unlocks one in the browser to sign in. A real home answers ``NotFound``.
    """
    from healthnft.errors import NotFound
    from healthnft.network import DEMO_PASSPHRASE

    if not net.is_demo:
        raise NotFound("not a demo network")
    out = []
    for m in members(net):
        if m.kind == "custodian":
            continue
        path = net.files.keystore_file(m.address)
        if path.exists():
            out.append({**m.as_dict(), "passphrase": DEMO_PASSPHRASE,
                        "keystore": json.loads(path.read_text())})  # fmt: skip
    return out
