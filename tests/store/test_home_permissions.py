"""A home is private: the folder 0700, every file in it 0600, whatever the umask.

A home holds the vault (ciphertexts, but also the catalogue's record metadata), the
keystores, the de-duplication secret and identity credentials. They were created with
the process's umask (0644 and 0755 with the usual 022): readable by every user of the
machine. New homes are now created private; a home made by an earlier version is
tightened when it is next opened.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from conftest import run_cli
from healthnft.network import Network
from healthnft.store.connection import connect


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.fixture(autouse=True)
def _a_umask_that_would_show_it() -> None:
    if _umask() & 0o044:
        pytest.skip("the umask already hides files from group and others: nothing to show")


def _loose(home: Path) -> list[str]:
    """Everything in ``home`` (and itself) that group or others may read, write or enter."""
    found = []
    for path in [home, *sorted(home.rglob("*"))]:
        if path.stat().st_uid == os.getuid() and stat.S_IMODE(path.stat().st_mode) & 0o077:
            found.append(f"{path.relative_to(home.parent)} {stat.S_IMODE(path.stat().st_mode):o}")
    return found


def test_a_new_demo_home_is_private(demo_home: tuple[Path, dict]) -> None:
    home, _ = demo_home
    names = {p.name for p in home.iterdir()}
    assert {"chain.sqlite", "index.sqlite", "vault.sqlite", "keystore", "secret.key",
            "config.json"} <= names  # fmt: skip
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert _loose(home) == []


def test_a_home_made_by_init_is_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run_cli(home, "init", "--passphrase", "a long enough passphrase", check=True)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert _loose(home) == []


def test_the_wal_and_shm_companions_are_private_too(fresh_demo_home: tuple[Path, dict]) -> None:
    home, summary = fresh_demo_home
    net = Network.open(home)  # held open: the WAL and shared-memory files exist meanwhile
    try:
        net.catalog.participants()
        companions = [p for p in home.iterdir() if p.name.endswith(("-wal", "-shm"))]
        assert companions, sorted(p.name for p in home.iterdir())
        assert _loose(home) == []
    finally:
        net.close()


def test_an_existing_home_is_tightened_when_opened(fresh_demo_home: tuple[Path, dict]) -> None:
    home, summary = fresh_demo_home
    (home / "credentials").mkdir(exist_ok=True)
    (home / "credentials" / "0xabc.identity.jwt").write_text("e30.e30.sig\n")
    for path in [home, *home.rglob("*")]:  # as an earlier version left it (umask 022)
        path.chmod(0o755 if path.is_dir() else 0o644)
    for suffix in ("-wal", "-shm"):  # companions left by a process that was killed
        companion = home / f"index.sqlite{suffix}"
        if not companion.exists():
            companion.write_bytes(b"")
            companion.chmod(0o644)
    assert _loose(home)
    owner = summary["patients"][0]["address"]
    listed = run_cli(home, "wallet", "list", "--owner", owner, "--json", check=True)
    assert json.loads(listed.stdout)  # a reading command: the home still opens as before
    assert _loose(home) == []


def test_a_database_file_is_created_private(tmp_path: Path) -> None:
    conn = connect(tmp_path / "new" / "some.sqlite")
    try:
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
        assert _loose(tmp_path / "new") == []
    finally:
        conn.close()
    assert sqlite3.connect(tmp_path / "new" / "some.sqlite").execute(
        "SELECT x FROM t").fetchone() == (1,)  # fmt: skip


def test_make_private_takes_group_and_other_bits_only(tmp_path: Path) -> None:
    from healthnft.home import Home

    home = Home(tmp_path / "h")
    home.make_private()
    assert stat.S_IMODE(home.root.stat().st_mode) == 0o700
    (home.root / "sub").mkdir(mode=0o775)
    for name, mode in (("read-only", 0o444), ("script", 0o755), ("shared", 0o666)):
        (home.root / "sub" / name).write_text(name)
        (home.root / "sub" / name).chmod(mode)
    outside = tmp_path / "outside"
    outside.write_text("not the home's")
    outside.chmod(0o644)
    (home.root / "link").symlink_to(outside)
    home.make_private()
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (home.root / "sub").iterdir()}
    assert modes == {"read-only": 0o400, "script": 0o700, "shared": 0o600}
    assert stat.S_IMODE((home.root / "sub").stat().st_mode) == 0o700
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644  # a link is not followed
