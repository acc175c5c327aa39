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
    assert json.loads(missing.stdout) == {"source": "", "valid": False,
                                          "reason": "file 1 of 1: no such file", "iss": "",
                                          "resource_types": []}  # fmt: skip
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("no card here\n")
    proc = run_cli(tmp_path / "home", "shc", "verify", str(garbage), "--json")
    assert proc.returncode == 3
    out = json.loads(proc.stdout)
    assert out["valid"] is False and out["iss"] == "" and out["resource_types"] == []
    assert out["reason"].startswith("file 1 of 1: not a SMART Health Card")
    assert "no card here" not in out["reason"]
    # Without --json it stays the usual one error line.
    plain = run_cli(tmp_path / "home", "shc", "verify", str(garbage))
    assert plain.returncode == 3 and plain.stdout == "" and plain.stderr.count("\n") == 1


def test_cards_are_named_by_position_never_by_file_name(tmp_path: Path) -> None:
    """A card's file is often named after its patient: verdicts and errors say "file 2
    of 3", in text and in JSON, and never repeat a path."""
    named = tmp_path / "Doe, John"
    named.mkdir()
    valid = named / "John Doe vaccines.smart-health-card"
    valid.write_bytes((SHC / "example-00-e-file.smart-health-card").read_bytes())
    revoked = named / "John Doe labs.txt"
    revoked.write_bytes((SHC / "example-03-d-jws.txt").read_bytes())
    chunks = sorted(SHC.glob("example-02-f-qr-code-numeric-value-*.txt"))
    copies = []
    for n, chunk in enumerate(chunks, 1):
        copies.append(named / f"John Doe QR {n}.txt")
        copies[-1].write_bytes(chunk.read_bytes())
    trust = ["--issuer-keys", f"{ISS}={SHC / 'issuer'}"]
    files = [str(valid), str(copies[2]), str(revoked), str(copies[0]), str(copies[1])]
    text = run_cli(tmp_path / "home", "shc", "verify", *files, *trust)
    as_json = run_cli(tmp_path / "home", "shc", "verify", *files, *trust, "--json")
    for proc in (text, as_json):
        assert proc.returncode == 1  # one card of three is revoked
        assert "John" not in proc.stdout + proc.stderr and str(tmp_path) not in proc.stdout
    assert text.stdout.splitlines()[0].startswith("file 1 of 5: valid")
    assert text.stdout.splitlines()[1].startswith("QR chunks in files 2, 4, 5 of 5: valid")
    assert text.stderr.startswith("file 3 of 5: invalid: revoked")
    verdicts = json.loads(as_json.stdout)
    assert [v["source"] for v in verdicts] == [
        "file 1 of 5", "QR chunks in files 2, 4, 5 of 5", "file 3 of 5"]  # fmt: skip
    assert [v["valid"] for v in verdicts] == [True, True, False]
    several = named / "John and Jane Doe.smart-health-card"
    several.write_text(json.dumps({"verifiableCredential": [
        (SHC / f"example-{n}-d-jws.txt").read_text().strip() for n in ("00", "01")]}))
    proc = run_cli(tmp_path / "home", "shc", "verify", str(several), *trust, "--json")
    assert [v["source"] for v in json.loads(proc.stdout)] == [
        "file 1 of 1, card 1 of 2", "file 1 of 1, card 2 of 2"]  # fmt: skip


def test_an_unreadable_file_is_named_by_position(tmp_path: Path) -> None:
    absent = tmp_path / "Jane Roe.smart-health-card"
    folder = tmp_path / "Jane Roe"
    folder.mkdir()
    garbage = tmp_path / "Jane Roe notes.txt"
    garbage.write_text("Jane Roe, vaccinated 2021\n")
    for files, reason in [
        ([SHC / "example-00-d-jws.txt", absent], "file 2 of 2: no such file"),
        ([folder], "file 1 of 1: is a folder"),
        ([SHC / "example-00-d-jws.txt", SHC / "example-01-d-jws.txt", garbage],
         "file 3 of 3: not a SMART Health Card"),
    ]:  # fmt: skip
        plain = run_cli(tmp_path / "home", "shc", "verify", *map(str, files))
        assert plain.stderr.startswith(f"error: {reason}"), plain.stderr
        assert "Jane" not in plain.stderr and plain.stdout == ""
        as_json = run_cli(tmp_path / "home", "shc", "verify", *map(str, files), "--json")
        assert json.loads(as_json.stdout)["reason"].startswith(reason)
        assert "Jane" not in as_json.stdout
