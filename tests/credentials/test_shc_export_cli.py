"""`healthnft shc export`: a wallet's records as a card that `shc verify` accepts."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli


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
