"""`healthnft shc verify`: the relied-on command form, on the specification's cards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SHARED_DATA, run_cli

SHC = SHARED_DATA / "shc"
ISS = "https://spec.smarthealth.cards/examples/issuer"
pytestmark = pytest.mark.skipif(not SHC.is_dir(), reason="../shared/data/shc is absent")


def _verify(tmp_path: Path, *files: Path, trust: bool = True):
    args = ["shc", "verify", *map(str, files), "--json"]
    if trust:
        args += ["--issuer-keys", f"{ISS}={SHC / 'issuer'}"]
    return run_cli(tmp_path / "home", *args)


@pytest.mark.parametrize("form", ["e-file.smart-health-card", "d-jws.txt", "qr"])
@pytest.mark.parametrize("example", ["00", "01", "02"])
def test_spec_examples_verify_in_every_form(tmp_path: Path, example: str, form: str) -> None:
    if form == "qr":
        files = sorted(SHC.glob(f"example-{example}-f-qr-code-numeric-value-*.txt"))[::-1]
    else:
        files = [SHC / f"example-{example}-{form}"]
    proc = _verify(tmp_path, *files)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["valid"] is True and out["iss"] == ISS and out["resource_types"]


def test_revoked_example_is_refused(tmp_path: Path) -> None:
    proc = _verify(tmp_path, SHC / "example-03-d-jws.txt")
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["valid"] is False and out["reason"].startswith("revoked")


def test_unknown_issuer_and_modified_card(tmp_path: Path) -> None:
    proc = _verify(tmp_path, SHC / "example-00-d-jws.txt", trust=False)
    assert proc.returncode == 1 and "unknown issuer" in json.loads(proc.stdout)["reason"]
    jws = (SHC / "example-00-d-jws.txt").read_text().strip()
    head, payload, sig = jws.split(".")
    flipped = tmp_path / "flipped.txt"
    flipped.write_text(".".join([head, payload, ("A" if sig[5] != "A" else "B").join(
        [sig[:5], sig[6:]])]))  # fmt: skip
    proc = _verify(tmp_path, flipped)
    assert proc.returncode == 1 and "signature" in json.loads(proc.stdout)["reason"]


def test_unreadable_input_still_gives_one_json_verdict(tmp_path: Path) -> None:
    missing = run_cli(tmp_path / "home", "shc", "verify", str(tmp_path / "absent.txt"), "--json")
    assert missing.returncode == 2
    assert json.loads(missing.stdout) == {"valid": False, "reason": f"{tmp_path / 'absent.txt'}"
                                          ": no such file", "iss": "", "resource_types": []}
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("no card here\n")
    proc = run_cli(tmp_path / "home", "shc", "verify", str(garbage), "--json")
    assert proc.returncode == 3
    out = json.loads(proc.stdout)
    assert out["valid"] is False and out["iss"] == "" and out["resource_types"] == []
    assert out["reason"].startswith(f"{garbage}: not a SMART Health Card")
    assert "no card here" not in out["reason"]
    # Without --json it stays the usual one error line.
    plain = run_cli(tmp_path / "home", "shc", "verify", str(garbage))
    assert plain.returncode == 3 and plain.stdout == "" and plain.stderr.count("\n") == 1
