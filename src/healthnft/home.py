"""The files of one home, named in one place.

A home is a folder that is one node of the network::

    HOME/config.json        deployment addresses, backend, demo flag (written atomically)
    HOME/chain.sqlite       the embedded chain (py-evm state; store ladder ``CHAIN``)
    HOME/vault.sqlite       ciphertexts, content-addressed (store ladder ``VAULT``)
    HOME/drugs.sqlite       a manufacturer's packs: salts and Merkle trees (ladder ``DRUGS``)
    HOME/index.sqlite       catalogue, mint journal, custody, transfers, derivative
                            links, request reasons, challenges (store ladder ``INDEX``)
    HOME/keystore/          one keystore v3 file per local participant
    HOME/secret.key         the home's HMAC key for record de-duplication (mode 0600)
    HOME/credentials/       participants' identity credentials (``<address>.identity.jwt``)
    HOME/challenges.sqlite  legacy: one-time challenges before they moved into the index

Code that needs a file asks :class:`Home` for it instead of joining names, so the
layout can change in one place. This module knows names and ``config.json``; opening
the SQLite files is :mod:`healthnft.store`'s job (:meth:`Home.open_index` is a shortcut).

A home is private to the user who runs it: the folder and its sub-folders are 0700, its
files 0600, whatever the umask (:func:`write_private`, :meth:`Home.make_private`; the
SQLite files are created 0600 by :mod:`healthnft.store`, and SQLite gives their WAL and
shared-memory companions the database's mode). A home made before this rule is tightened
when it is next opened.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from healthnft.errors import InvalidInput, NotFound
from healthnft.store import Index

#: A home's folders and files: their owner only.
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically with ``data``, readable by its owner only (0600):
    written to ``<name>.tmp``, flushed to disk, then renamed over the old file."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), PRIVATE_FILE)  # a crashed write's leftover may be looser
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


@dataclass(frozen=True)
class Home:
    """One home folder and the names of everything in it."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # -- the files --------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @property
    def chain_path(self) -> Path:
        return self.root / "chain.sqlite"

    @property
    def vault_path(self) -> Path:
        return self.root / "vault.sqlite"

    @property
    def index_path(self) -> Path:
        return self.root / "index.sqlite"

    @property
    def drugs_path(self) -> Path:
        """A manufacturer's pack salts and batch trees (see :mod:`healthnft.store.serials`)."""
        return self.root / "drugs.sqlite"

    @property
    def keystore_dir(self) -> Path:
        return self.root / "keystore"

    @property
    def secret_key_path(self) -> Path:
        return self.root / "secret.key"

    @property
    def credentials_dir(self) -> Path:
        return self.root / "credentials"

    @property
    def legacy_challenges_path(self) -> Path:
        """Where challenges lived before schema version 2 of the index (see store.challenges)."""
        return self.root / "challenges.sqlite"

    @property
    def uploads_dir(self) -> Path:
        """Where the web service stages uploaded files while it mints them: inside the
        home (private), never the system's temporary folder; emptied at start-up."""
        return self.root / "uploads"

    def keystore_file(self, address: str) -> Path:
        """The keystore of a local participant (``keystore/<address>.json``)."""
        return self.keystore_dir / f"{address}.json"

    def identity_credential_path(self, address: str) -> Path:
        """A participant's identity credential (``credentials/<address>.identity.jwt``)."""
        return self.credentials_dir / f"{address.lower()}.identity.jwt"

    def chain_files(self) -> list[Path]:
        """The chain database and its WAL/SHM companions that exist now."""
        return sorted(self.root.glob(self.chain_path.name + "*"))

    # -- config.json -----------------------------------------------------------

    def exists(self) -> bool:
        """Whether a network was created here (its ``config.json`` is written last)."""
        return self.config_path.exists()

    def read_config(self) -> dict[str, Any]:
        """The home's configuration; :class:`NotFound` when there is no home here."""
        try:
            text = self.config_path.read_text()
        except FileNotFoundError:
            raise NotFound(
                f"no healthnft network in {self.root}: run `healthnft --home {self.root} init` "
                f"(or `healthnft --home {self.root} demo`)"
            ) from None
        try:
            config = json.loads(text)
        except json.JSONDecodeError:
            raise InvalidInput(f"{self.config_path} is not valid JSON") from None
        if not isinstance(config, dict):
            raise InvalidInput(f"{self.config_path} is not a JSON object")
        return config

    def write_config(self, config: dict[str, Any]) -> None:
        """Replace ``config.json`` atomically: a reader sees the old file or the new one.

        Written to ``config.json.tmp``, flushed to disk, then renamed over the old file.
        """
        self.root.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        write_private(self.config_path, json.dumps(config, indent=2).encode())

    def update_config(self, **changes: Any) -> dict[str, Any]:
        """Read, change and atomically rewrite ``config.json``; returns the new config."""
        config = self.read_config()
        config.update(changes)
        self.write_config(config)
        return config

    # -- privacy ----------------------------------------------------------------

    def make_private(self) -> None:
        """Create the home folder owner-only, or tighten an existing home: the folder and
        everything in it lose every bit for group and others (0755 → 0700, 0644 → 0600).

        Only what this user owns is changed (and a symbolic link is not followed); a
        file that cannot be changed is left as it is rather than failing the command.
        """
        self.root.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        for path in [self.root, *self.root.rglob("*")]:
            _tighten(path)

    # -- opening ----------------------------------------------------------------

    def open_index(self) -> Index:
        """``index.sqlite`` with its repositories (created or migrated as needed)."""
        return Index.open(self.index_path)


def _tighten(path: Path) -> None:
    try:
        info = path.lstat()
        mode = stat.S_IMODE(info.st_mode)
        if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid() or not mode & 0o077:
            return
        os.chmod(path, mode & 0o700)
    except OSError:
        pass  # gone meanwhile, or not ours to change: the command goes on
