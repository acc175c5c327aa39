"""`healthnft shc export`: a wallet's records as a card that `shc verify` accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from healthnft.credentials.shc import QR_SINGLE_MAX_CHARS
from healthnft.errors import Conflict, InvalidInput


def _tokens(home: Path, owner: str) -> list[dict]:
    return json.loads(run_cli(home, "wallet", "list", "--owner", owner, "--json",
                              check=True).stdout)  # fmt: skip


def test_exported_card_verifies_with_the_spec_code_path(
    demo_home: tuple[Path, dict], tmp_path: Path
) -> None:
    home, summary = demo_home
    owner = summary["patients"][0]["address"]
    rows = _tokens(home, owner)
    chosen = [r["token_id"] for r in rows if r["category"] in ("immunization", "laboratory")][:4]
    assert chosen
    proc = run_cli(home, "shc", "export", *map(str, chosen), "--out", str(tmp_path / "card"),
                   "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    card = json.loads(proc.stdout)
    assert card["resource_types"][0] == "Patient"
    assert len(card["qr_png_files"]) == len(card["qr_text_files"]) == 1  # one code, no chunks
    png = Path(card["qr_png_files"][0]).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    trust = f"{card['iss']}={tmp_path / 'card' / 'issuer'}"
    verify = run_cli(home, "shc", "verify", card["card_file"], "--issuer-keys", trust, "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    result = json.loads(verify.stdout)
    assert result["valid"] is True and result["iss"] == card["iss"]
    # The QR text is the same card.
    qr = run_cli(home, "shc", "verify", *card["qr_text_files"], "--issuer-keys", trust, "--json")
    assert json.loads(qr.stdout)["valid"] is True
    # Without trusting the issuer, the same card is refused.
    untrusted = run_cli(home, "shc", "verify", card["card_file"], "--json")
    assert untrusted.returncode == 1 and "unknown issuer" in json.loads(untrusted.stdout)["reason"]


def test_only_immunization_and_laboratory_records_go_on_a_card(
    demo_home: tuple[Path, dict], tmp_path: Path
) -> None:
    home, summary = demo_home
    owner = summary["patients"][0]["address"]
    other = next(r["token_id"] for r in _tokens(home, owner) if r["category"] == "encounter")
    proc = run_cli(home, "shc", "export", str(other), "--out", str(tmp_path / "card"))
    assert proc.returncode != 0
    assert proc.stderr.startswith("error: ") and "encounter record" in proc.stderr
    assert not (tmp_path / "card").exists()


def _card_tokens(home: Path, owner: str) -> list[str]:
    return [str(r["token_id"]) for r in _tokens(home, owner)
            if r["category"] in ("immunization", "laboratory")]  # fmt: skip


def _one_error_line(proc, exit_code: int) -> str:
    assert proc.returncode == exit_code, proc.stderr
    assert proc.stdout == "" and len(proc.stderr.splitlines()) == 1, proc.stderr
    line = proc.stderr.strip()
    assert line.startswith("error: ") and "internal error" not in line, line
    return line


def test_out_naming_an_existing_file_is_refused_and_the_file_kept(
    demo_home: tuple[Path, dict], tmp_path: Path
) -> None:
    home, summary = demo_home
    token = _card_tokens(home, summary["patients"][0]["address"])[0]
    existing = tmp_path / "Jane Roe vaccinations.pdf"
    existing.write_bytes(b"%PDF-1.7 the only copy")
    proc = run_cli(home, "shc", "export", token, "--out", str(existing))
    line = _one_error_line(proc, InvalidInput.exit_code)
    assert "--out" in line and "folder" in line and "Jane" not in line
    assert existing.read_bytes() == b"%PDF-1.7 the only copy"
    assert [p.name for p in tmp_path.iterdir()] == [existing.name]


def test_a_card_already_in_the_folder_is_replaced_only_with_force(
    demo_home: tuple[Path, dict], tmp_path: Path
) -> None:
    home, summary = demo_home
    first, second = _card_tokens(home, summary["patients"][0]["address"])[:2]
    out = tmp_path / "cards"
    run_cli(home, "shc", "export", first, "--out", str(out), check=True)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    proc = run_cli(home, "shc", "export", second, "--out", str(out))
    line = _one_error_line(proc, Conflict.exit_code)
    assert "--name" in line and "--force" in line and str(out) not in line
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    other = run_cli(home, "shc", "export", second, "--out", str(out), "--name", "second",
                    "--json", check=True)  # fmt: skip
    assert Path(json.loads(other.stdout)["card_file"]).name == "second.smart-health-card"
    forced = run_cli(home, "shc", "export", second, "--out", str(out), "--force", check=True)
    assert forced.returncode == 0
    assert (out / "health-card.smart-health-card").read_bytes() != before[
        "health-card.smart-health-card"]  # fmt: skip


def test_a_card_too_large_for_one_qr_code_is_refused_not_chunked(
    demo_home: tuple[Path, dict], tmp_path: Path
) -> None:
    """The spec deprecates chunked QR codes: such a card is refused with what to do
    instead (the card file alone, or fewer records a card), and nothing is written."""
    home, summary = demo_home
    tokens = _card_tokens(home, summary["patients"][0]["address"])
    alone = run_cli(home, "shc", "export", *tokens, "--out", str(tmp_path / "file-only"),
                    "--no-qr", "--json", check=True)  # fmt: skip
    card = json.loads(alone.stdout)
    if len(json.loads(Path(card["card_file"]).read_text())["verifiableCredential"][0]) <= (
        QR_SINGLE_MAX_CHARS
    ):
        pytest.skip("this patient's records fit in one QR code")
    assert card["qr_png_files"] == [] and card["qr_text_files"] == []
    assert not list((tmp_path / "file-only").glob("*-qr*"))
    trust = f"{card['iss']}={tmp_path / 'file-only' / 'issuer'}"
    verify = run_cli(home, "shc", "verify", card["card_file"], "--issuer-keys", trust)
    assert verify.returncode == 0, verify.stderr
    out = tmp_path / "with-qr"
    proc = run_cli(home, "shc", "export", *tokens, "--out", str(out))
    line = _one_error_line(proc, InvalidInput.exit_code)
    assert "too large for one QR code" in line and "--no-qr" in line and "fewer records" in line
    assert not out.exists()


def test_export_help_names_the_qr_and_force_options(demo_home: tuple[Path, dict]) -> None:
    proc = run_cli(demo_home[0], "shc", "export", "--help")
    assert proc.returncode == 0
    for option in ("--no-qr", "--force", "--name", "--out"):
        assert option in proc.stdout, option
