"""A home's files, named in one place; config.json written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from healthnft.errors import InvalidInput, NotFound
from healthnft.home import Home


def test_the_files_of_a_home(tmp_path: Path) -> None:
    home = Home(tmp_path / "h")
    assert home.index_path == tmp_path / "h" / "index.sqlite"
    assert home.vault_path.name == "vault.sqlite" and home.chain_path.name == "chain.sqlite"
    assert home.keystore_file("0xAb").parent == home.keystore_dir
    assert home.identity_credential_path("0xAB").name == "0xab.identity.jwt"
    assert home.legacy_challenges_path.name == "challenges.sqlite"
    assert home.secret_key_path.name == "secret.key" and home.credentials_dir.name == "credentials"


def test_config_is_read_back_and_replaced_atomically(tmp_path: Path) -> None:
    home = Home(tmp_path / "h")
    assert not home.exists()
    with pytest.raises(NotFound, match="no healthnft network"):
        home.read_config()
    home.write_config({"backend": "embedded", "demo": True})
    assert home.exists() and home.read_config() == {"backend": "embedded", "demo": True}
    assert home.update_config(token="0x1")["token"] == "0x1"
    assert json.loads(home.config_path.read_text())["token"] == "0x1"
    assert not list(home.root.glob("*.tmp"))


def test_a_broken_config_is_named(tmp_path: Path) -> None:
    home = Home(tmp_path)
    home.config_path.write_text("{not json")
    with pytest.raises(InvalidInput, match="config.json is not valid JSON"):
        home.read_config()


def test_the_chain_files_and_the_index(tmp_path: Path) -> None:
    home = Home(tmp_path)
    index = home.open_index()
    index.catalogue.participants()
    index.close()
    assert home.index_path.exists()
    (tmp_path / "chain.sqlite").write_bytes(b"")
    (tmp_path / "chain.sqlite-wal").write_bytes(b"")
    assert [p.name for p in home.chain_files()] == ["chain.sqlite", "chain.sqlite-wal"]
