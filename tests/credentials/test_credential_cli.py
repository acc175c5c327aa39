"""`healthnft credential …` and `wallet present`: attest, revoke, identity, presentations."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli


def _ok(proc) -> dict:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def _refused(proc) -> dict:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert out["valid"] is False
    return out


def test_revoking_an_attestation_shows_in_verify(fresh_demo_home: tuple[Path, dict]) -> None:
    home, _ = fresh_demo_home
    before = _ok(run_cli(home, "credential", "verify", "4", "--json"))
    assert before["valid"] and "HealthRecordAttestation" in before["type"]
    assert before["issuer"].startswith("did:key:z6Mk")
    revoked = _ok(run_cli(home, "credential", "revoke", "4", "--json"))
    assert revoked["revoked"] == before["id"]
    assert _refused(run_cli(home, "credential", "verify", "4", "--json"))["reason"] == (
        "attestation revoked by its issuer"
    )
    assert _refused(run_cli(home, "verify", "4", "--json"))["reason"] == (
        "attestation revoked by its issuer"
    )
    assert _ok(run_cli(home, "verify", "5", "--json"))["valid"]  # only that one


def test_identity_credential_presented_once_against_a_challenge(
    fresh_demo_home: tuple[Path, dict], tmp_path: Path
) -> None:
    home, summary = fresh_demo_home
    alice, bob = (p["address"] for p in summary["patients"][:2])
    issued = _ok(run_cli(home, "credential", "issue", "--patient", alice, "--issuer",
                         "demo-hospital", "--json"))  # fmt: skip
    assert _ok(run_cli(home, "credential", "verify", issued["file"], "--json"))["valid"]
    domain = "insurer.example"
    challenge = _ok(run_cli(home, "credential", "challenge", "--domain", domain,
                            "--json"))["challenge"]  # fmt: skip
    vp = tmp_path / "vp.jwt"
    proc = run_cli(home, "wallet", "present", "--owner", alice, "--challenge", challenge,
                   "--domain", domain, "--out", str(vp))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    checked = _ok(run_cli(home, "credential", "check-presentation", str(vp), "--domain", domain,
                          "--json"))  # fmt: skip
    assert checked["holder"] == issued["holder"] and checked["credentials"] == 1
    # The same presentation again is a replay.
    replay = _refused(run_cli(home, "credential", "check-presentation", str(vp), "--domain",
                              domain, "--json"))  # fmt: skip
    assert "replayed" in replay["reason"]
    # Bob presenting Alice's credential (a foreign presentation) is refused.
    challenge2 = _ok(run_cli(home, "credential", "challenge", "--domain", domain,
                             "--json"))["challenge"]  # fmt: skip
    foreign = tmp_path / "foreign.jwt"
    run_cli(home, "wallet", "present", "--owner", bob, "--challenge", challenge2, "--domain",
            domain, "--credential", issued["file"], "--out", str(foreign), check=True)  # fmt: skip
    refused = _refused(run_cli(home, "credential", "check-presentation", str(foreign),
                               "--domain", domain, "--json"))  # fmt: skip
    assert "not the holder" in refused["reason"]
    # A revoked identity credential no longer verifies.
    _ok(run_cli(home, "credential", "revoke", issued["file"], "--json"))
    assert _refused(run_cli(home, "credential", "verify", issued["file"], "--json"))[
        "reason"
    ] == "revoked"


def test_credential_files_are_not_named_in_errors(demo_home: tuple[Path, dict],
                                                  tmp_path: Path) -> None:  # fmt: skip
    """A credential's file may be named after its holder: errors say which file by its
    role or position, never its name (as `shc verify` does)."""
    home, summary = demo_home
    owner = summary["patients"][0]["address"]
    named = tmp_path / "Jane Roe"
    named.mkdir()
    absent = named / "Jane Roe identity.jwt"
    prose = named / "Jane Roe notes.txt"
    prose.write_text("Jane Roe, seen on Monday\n")
    for args, fragment in [
        (["credential", "verify", str(absent)], "no such file"),
        (["credential", "revoke", str(absent)], "no such file"),
        (["credential", "check-presentation", str(absent), "--domain", "v.example"],
         "no such file"),
        (["credential", "check-presentation", str(prose), "--domain", "v.example"],
         "not a presentation"),
        (["wallet", "present", "--owner", owner, "--challenge", "c", "--domain", "v.example",
          "--credential", str(prose), "--credential", str(absent)], "file 2 of 2"),
    ]:  # fmt: skip
        proc = run_cli(home, *args)
        assert proc.returncode != 0 and proc.stdout == "", proc.stderr
        assert proc.stderr.startswith("error: ") and fragment in proc.stderr, proc.stderr
        assert "Jane" not in proc.stderr and len(proc.stderr.splitlines()) == 1
