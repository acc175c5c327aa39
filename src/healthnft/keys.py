"""Participant keys: one Ethereum secret per participant, in a keystore v3 file.

The secret signs transactions (secp256k1) and, through HKDF, yields the
participant's X25519 encryption key, so one passphrase-protected file is all a
participant has to keep. Keystores live in ``HOME/keystore/<address>.json``.

Real keys are random and use scrypt at eth-account's default cost (n = 2**18).
Demo keys are derived from a fixed seed and use a light scrypt (n = 2**14) so
the demo starts fast; the demo says so when it creates them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_account import Account
from eth_account.signers.local import LocalAccount

from healthnft.errors import CredentialRejected
from healthnft.home import PRIVATE_DIR, write_private
from healthnft.vault import encryption_key, public_bytes

DEMO_SCRYPT_N = 2**14
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@dataclass(frozen=True)
class Identity:
    """An unlocked participant: signing account and decryption key."""

    account: LocalAccount
    enc_private: X25519PrivateKey

    @property
    def address(self) -> str:
        return self.account.address

    @property
    def enc_public(self) -> bytes:
        return public_bytes(self.enc_private)

    @property
    def did_private(self) -> Any:
        """The Ed25519 key of the participant's did:key (derived from the same secret)."""
        from healthnft.credentials.did import ed25519_from_secret

        return ed25519_from_secret(bytes(self.account.key))

    @property
    def did(self) -> str:
        from healthnft.credentials.did import did_for

        return did_for(self.did_private)

    @property
    def did_public(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return self.did_private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def card_key(self) -> Any:
        """The participant's ES256 (P-256) key for SMART Health Cards, as a joserfc JWK.

        Derived from the account secret (HKDF, then reduced into the curve's
        scalar range), so a hospital's card key needs no file of its own.
        """
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        from healthnft.credentials.shc import issuer_key

        seed = HKDF(algorithm=hashes.SHA256(), length=48, salt=None,
                    info=b"healthnft/p256-card-key/v1").derive(bytes(self.account.key))  # fmt: skip
        scalar = int.from_bytes(seed, "big") % (_P256_ORDER - 1) + 1
        return issuer_key(ec.derive_private_key(scalar, ec.SECP256R1()))


def identity_from_secret(secret: bytes) -> Identity:
    account = Account.from_key(secret)
    return Identity(account, encryption_key(bytes(account.key)))


def new_secret() -> bytes:
    return os.urandom(32)


def write_keystore(
    folder: Path, secret: bytes, passphrase: str, light: bool = False
) -> Identity:
    """Encrypt ``secret`` under ``passphrase`` into ``folder/<address>.json``."""
    if not passphrase:
        raise CredentialRejected("an empty passphrase is not allowed")
    ident = identity_from_secret(secret)
    data = keystore_document(secret, passphrase, light)
    folder.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    write_private(folder / f"{ident.address}.json", json.dumps(data).encode())
    return ident


def keystore_document(secret: bytes, passphrase: str, light: bool = False) -> dict[str, Any]:
    """``secret`` encrypted under ``passphrase`` as an Ethereum keystore v3 document."""
    if not passphrase:
        raise CredentialRejected("an empty passphrase is not allowed")
    return dict(Account.encrypt(secret, passphrase, iterations=DEMO_SCRYPT_N if light else None))


def read_keystore(folder: Path, address: str, passphrase: str) -> Identity:
    """Unlock the keystore of ``address``; a wrong passphrase is a clear error."""
    path = _find(folder, address)
    try:
        secret = Account.decrypt(json.loads(path.read_text()), passphrase)
    except ValueError:
        raise CredentialRejected(f"wrong passphrase for the keystore of {address}") from None
    return identity_from_secret(bytes(secret))


def has_keystore(folder: Path, address: str) -> bool:
    try:
        _find(folder, address)
    except CredentialRejected:
        return False
    return True


def _find(folder: Path, address: str) -> Path:
    if folder.is_dir():
        for path in folder.glob("*.json"):
            if path.stem.lower() == address.lower():
                return path
    raise CredentialRejected(f"no keystore for {address} in {folder}")
