"""wallet: open and verify records; tampered blobs or proofs are never shown."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from conftest import run_cli
from healthnft.errors import Tampered
from healthnft.network import Network


@pytest.fixture
def home_copy(demo_home: tuple[Path, dict], tmp_path: Path) -> tuple[Path, dict]:
    """A private copy of the demo home (SQLite files copied while nothing writes)."""
    src, summary = demo_home
    dst = tmp_path / "home"
    shutil.copytree(src, dst)
    return dst, summary


def _flip(db: Path, table: str, column: str, key_col: str, key: object, index: int = 40) -> None:
    con = sqlite3.connect(db)
    (data,) = con.execute(f"SELECT {column} FROM {table} WHERE {key_col} = ?", (key,)).fetchone()
    data = bytearray(data)
    data[index % len(data)] ^= 0x01
    con.execute(f"UPDATE {table} SET {column} = ? WHERE {key_col} = ?", (bytes(data), key))
    con.commit()
    con.close()


def test_open_and_verify_every_record_of_a_wallet(demo_home: tuple[Path, dict]) -> None:
    home, summary = demo_home
    net = Network.open(home)
    try:
        owner = summary["patients"][0]["address"]
        ident = net.identity(owner)
        wallet = net.wallet()
        listed = wallet.list(owner)
        assert len(listed) == summary["patients"][0]["records"]
        for item in listed:
            rec = wallet.open(item["token_id"], ident)
            assert rec.resource["resourceType"] == item["resource_type"]
            assert "text" not in rec.resource  # narrative dropped before minting
            v = wallet.verify(item["token_id"], ident)
            assert v.valid and v.checked_content, v.reason
    finally:
        net.close()


def test_a_flipped_byte_in_any_blob_is_caught(home_copy: tuple[Path, dict]) -> None:
    home, _ = home_copy
    net = Network.open(home)
    try:
        rows = net.catalog._conn.execute("SELECT token_id, blob_digest, owner FROM records")
        rows = rows.fetchall()
        vault = net.blobs._conn
        wallet = net.wallet()
        for token_id, digest, _owner in rows:  # every stored blob
            (data,) = vault.execute("SELECT data FROM blobs WHERE digest = ?", (digest,)).fetchone()
            bad = bytearray(data)
            bad[len(bad) // 2] ^= 0x01
            vault.execute("UPDATE blobs SET data = ? WHERE digest = ?", (bytes(bad), digest))
            result = wallet.verify(token_id)
            assert not result.valid and "tampered" in result.reason
            vault.execute("UPDATE blobs SET data = ? WHERE digest = ?", (data, digest))
        token_id, digest, owner = rows[0]
        ident = net.identity(owner)
        _flip(home / "vault.sqlite", "blobs", "data", "digest", digest)
        with pytest.raises(Tampered, match="altered"):
            wallet.open(token_id, ident)
    finally:
        net.close()


def test_cli_refuses_a_tampered_blob(home_copy: tuple[Path, dict]) -> None:
    home, _ = home_copy
    con = sqlite3.connect(home / "index.sqlite")
    (digest,) = con.execute("SELECT blob_digest FROM records WHERE token_id = 5").fetchone()
    con.close()
    _flip(home / "vault.sqlite", "blobs", "data", "digest", digest, index=100)
    verify = run_cli(home, "verify", "5", "--json")
    assert verify.returncode != 0
    assert json.loads(verify.stdout)["valid"] is False
    show = run_cli(home, "wallet", "show", "5")
    assert show.returncode != 0 and show.stdout == ""
    assert show.stderr.strip().startswith("error: token 5:")
    assert len(show.stderr.strip().splitlines()) == 1
    # The other records are untouched.
    assert run_cli(home, "verify", "6", "--json").returncode == 0


@pytest.mark.parametrize(
    ("column", "reason"),
    [
        ("proof", "on-chain root"),
        ("commitment", "on-chain root"),
        ("sealed_dek", "tampered"),
    ],
)
def test_tampered_catalogue_entries(home_copy: tuple[Path, dict], column: str, reason: str) -> None:
    home, _ = home_copy
    _flip(home / "index.sqlite", "records", column, "token_id", 7, index=3)
    proc = run_cli(home, "verify", "7", "--json")
    assert proc.returncode != 0
    out = json.loads(proc.stdout)
    assert out["valid"] is False and reason in out["reason"]
    show = run_cli(home, "wallet", "show", "7")
    assert show.returncode != 0 and "error:" in show.stderr


def test_verify_unknown_token(demo_home: tuple[Path, dict]) -> None:
    home, _ = demo_home
    proc = run_cli(home, "verify", "999999", "--json")
    assert proc.returncode != 0
    assert json.loads(proc.stdout)["valid"] is False
