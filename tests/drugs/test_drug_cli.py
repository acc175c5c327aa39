"""``healthnft drug …`` as a user runs it: shapes of the --json output, exit codes, one
error line per refusal, names rather than addresses (the service is tested in
test_drug_service.py; here, the adapter)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import one_error_line, run_cli, run_cli_json
from healthnft.errors import AccessDenied, DispenseRefused, InputNotFound, InvalidInput
from healthnft.network import DEMO_PASSPHRASE, Network

GTIN = "09506000134352"
LOT = "CLI1"


def hri(serial: str, lot: str = LOT) -> str:
    return f"(01){GTIN}(17)301231(10){lot}(21){serial}"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("drugcli") / "home"
    net = Network.create(home, DEMO_PASSPHRASE, demo=True)
    try:
        for kind, name in (("manufacturer", "Acme"), ("pharmacy", "Corner Pharmacy"),
                           ("government", "Medicines Agency"), ("hospital", "City Hospital"),
                           ("patient", "pat")):  # fmt: skip
            net.add_participant(kind, name)
    finally:
        net.close()
    serials = home.parent / "serials.txt"
    serials.write_text("".join(f"S{i}\n" for i in range(5)))
    done = run_cli_json(home, "drug", "commission", "--manufacturer", "Acme", "--gtin", GTIN,
                        "--lot", LOT, "--expiry", "301231", "--serials", str(serials),
                        "--product-name", "Amoxicillin 500 mg capsules")  # fmt: skip
    assert (done["packs"], done["already"], done["manufacturer"]) == (5, False, "Acme")
    return home


def test_commission_again_answers_the_first_result(home: Path) -> None:
    again = run_cli_json(home, "drug", "commission", "--manufacturer", "Acme", "--gtin", GTIN,
                         "--lot", LOT, "--expiry", "301231",
                         "--serials", str(home.parent / "serials.txt"))  # fmt: skip
    assert again["already"] is True and again["packs"] == 5


def test_verify_shapes_and_exit_codes(home: Path, tmp_path: Path) -> None:
    got = run_cli_json(home, "drug", "verify", "--", hri("S0"))
    assert set(got) == {"status", "reason", "gtin", "lot", "expiry", "serial", "product"}
    assert got["status"] == "active"
    assert got["product"] == {"name": "Amoxicillin 500 mg capsules", "manufacturer": "Acme"}
    proc = run_cli(home, "drug", "verify", "--json", "--", hri("FAKE"))
    assert proc.returncode == 1 and json.loads(proc.stdout)["status"] == "unknown"
    proc = run_cli(home, "drug", "verify", hri("S0"))
    assert proc.returncode == 0 and proc.stdout.startswith("ACTIVE")
    from healthnft.drugs.scan import datamatrix_png

    photo = tmp_path / "pack.png"
    photo.write_bytes(datamatrix_png(hri("S1")))
    assert run_cli_json(home, "drug", "verify", "--image", str(photo))["serial"] == "S1"


def test_bad_input_is_one_error_line(home: Path, tmp_path: Path) -> None:
    line = one_error_line(run_cli(home, "drug", "verify", f"(01){GTIN[:-1]}9(21)X(10)L(17)301231"),
                          InvalidInput)  # fmt: skip
    assert "check digit" in line
    one_error_line(run_cli(home, "drug", "verify"), InvalidInput)
    one_error_line(run_cli(home, "drug", "verify", "--image", str(tmp_path / "none.png")),
                   InputNotFound)  # fmt: skip
    (tmp_path / "junk.png").write_bytes(b"not a picture")
    assert "unreadable image" in one_error_line(
        run_cli(home, "drug", "verify", "--image", str(tmp_path / "junk.png")), InvalidInput)


def test_dispense_alert_undo_recall_quarantine_events(home: Path, tmp_path: Path) -> None:
    done = run_cli_json(home, "drug", "dispense", "--by", "Corner Pharmacy", "--", hri("S2"))
    assert (done["outcome"], done["alert"], done["by"]) == ("dispensed", False, "Corner Pharmacy")
    proc = run_cli(home, "drug", "dispense", "--by", "City Hospital", "--json", "--", hri("S2"))
    assert proc.returncode == 1 and json.loads(proc.stdout)["alert"] is True
    alerts = run_cli_json(home, "drug", "alerts", "--gtin", GTIN, "--lot", LOT,
                          "--by", "Medicines Agency")  # fmt: skip
    assert len(alerts) == 1 and "serial" not in alerts[0]
    undone = run_cli_json(home, "drug", "undo", "--by", "Corner Pharmacy", "--", hri("S2"))
    assert undone["action"] == "undone"
    line = one_error_line(run_cli(home, "drug", "dispense", "--by", "Corner Pharmacy",
                                  hri("NOPE")), DispenseRefused)  # fmt: skip
    assert "unknown" in line
    one_error_line(run_cli(home, "drug", "quarantine", "--by", "Acme", "--gtin", GTIN,
                           "--lot", LOT), AccessDenied)  # fmt: skip
    q = run_cli_json(home, "drug", "quarantine", "--by", "Medicines Agency", "--gtin", GTIN,
                     "--lot", LOT)  # fmt: skip
    assert q["action"] == "quarantined"
    proc = run_cli(home, "drug", "verify", "--json", "--", hri("S3"))
    assert json.loads(proc.stdout)["status"] == "quarantined"
    run_cli_json(home, "drug", "release", "--by", "Medicines Agency", "--gtin", GTIN,
                 "--lot", LOT)  # fmt: skip
    r = run_cli_json(home, "drug", "recall", "--manufacturer", "Acme", "--gtin", GTIN,
                     "--lot", LOT)  # fmt: skip
    assert r["action"] == "recalled"
    out = tmp_path / "lot.json"
    got = run_cli_json(home, "drug", "events", "--gtin", GTIN, "--lot", LOT, "--epcis", str(out))
    doc = json.loads(out.read_text())
    assert got["events"] == len(doc["epcisBody"]["eventList"]) and doc["type"] == "EPCISDocument"


def test_dispense_to_a_patient_then_verify_the_token(home: Path) -> None:
    patient = next(p for p in run_cli_json(home, "participant", "list")
                   if p["kind"] == "patient")["address"]  # fmt: skip
    serials = home.parent / "serials2.txt"
    serials.write_text("P1\nP2\n")
    run_cli_json(home, "drug", "commission", "--manufacturer", "Acme", "--gtin", GTIN,
                 "--lot", "CLI2", "--expiry", "301231", "--serials", str(serials))  # fmt: skip
    done = run_cli_json(home, "drug", "dispense", "--by", "City Hospital", "--patient", patient,
                        "--", hri("P1", lot="CLI2"))  # fmt: skip
    assert done["token_id"] is not None
    assert run_cli_json(home, "verify", str(done["token_id"]))["valid"] is True
