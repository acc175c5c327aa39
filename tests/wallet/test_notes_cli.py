"""Clinical notes through the command line: mint .txt and .pdf, open them, give them back."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from conftest import REPO, run_cli

_spec = importlib.util.spec_from_file_location("note_files", REPO / "tests/records/test_notes.py")
note_files = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(note_files)

# Written for this test: a made-up patient, not a real person.
NOTE = ("Clinic letter\nSynthetic-Patient was seen today for asthma review.\n"
        "Peak flow 420 L/min. Plan: continue inhaler; review in 6 months.\n")


def _patient(home: Path) -> str:
    rows = json.loads(run_cli(home, "participant", "list", "--json", check=True).stdout)
    return next(r["address"] for r in rows if r["kind"] == "patient")


def _count(home: Path, owner: str) -> int:
    out = run_cli(home, "wallet", "list", "--owner", owner, "--json", check=True).stdout
    return len(json.loads(out))


def test_mint_text_and_pdf_notes_and_give_them_back(fresh_demo_home, tmp_path: Path) -> None:
    home, _ = fresh_demo_home
    owner = _patient(home)
    before = _count(home, owner)
    txt = tmp_path / "letter.txt"
    txt.write_text(NOTE)
    pdf_bytes = note_files.text_pdf([["Discharge summary", "Peak flow 410 L/min."]])
    pdf = tmp_path / "discharge.pdf"
    pdf.write_bytes(pdf_bytes)
    proc = run_cli(home, "mint", "--issuer", "demo-hospital", "--patient", owner, str(txt),
                   str(pdf), "--json", check=True)
    minted = json.loads(proc.stdout)
    assert minted["records_minted"] == 2
    rows = json.loads(run_cli(home, "wallet", "list", "--owner", owner, "--json").stdout)
    assert len(rows) == before + 2
    notes = [r for r in rows if r["token_id"] in minted["token_ids"]]
    assert {r["category"] for r in notes} == {"note"}
    t_txt, t_pdf = minted["token_ids"]
    out_txt = tmp_path / "back.txt"
    run_cli(home, "wallet", "show", str(t_txt), "--out", str(out_txt), check=True)
    assert out_txt.read_text() == NOTE
    assert oct(out_txt.stat().st_mode & 0o777) == "0o600"
    out_pdf = tmp_path / "back.pdf"
    run_cli(home, "wallet", "show", str(t_pdf), "--out", str(out_pdf), check=True)
    assert out_pdf.read_bytes() == pdf_bytes
    text_of_pdf = tmp_path / "pdf.txt"
    run_cli(home, "wallet", "show", str(t_pdf), "--out", str(text_of_pdf), check=True)
    assert "Peak flow 410 L/min." in text_of_pdf.read_text()
    bad = run_cli(home, "wallet", "show", str(t_txt), "--out", str(tmp_path / "x.png"))
    assert bad.returncode != 0 and "holds no PNG" in bad.stderr
    assert json.loads(run_cli(home, "verify", str(t_pdf), "--json").stdout)["valid"] is True
    # Minting the same files again mints nothing twice.
    again = json.loads(run_cli(home, "mint", "--issuer", "demo-hospital", "--patient", owner,
                               str(txt), str(pdf), "--json", check=True).stdout)
    assert again["records_minted"] == 0 and again["already_minted"] == 2


def test_bad_notes_are_refused_and_nothing_is_minted(fresh_demo_home, tmp_path: Path) -> None:
    home, _ = fresh_demo_home
    owner = _patient(home)
    before = _count(home, owner)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    locked = tmp_path / "locked.pdf"
    locked.write_bytes(note_files.encrypted(note_files.text_pdf([["Private"]])))
    fake = tmp_path / "fake.pdf"
    fake.write_text("not a pdf at all")
    good = tmp_path / "good.txt"
    good.write_text(NOTE)
    for bad, reason in ((empty, "empty"), (locked, "encrypted"), (fake, "not a PDF")):
        proc = run_cli(home, "mint", "--issuer", "demo-hospital", "--patient", owner, str(good),
                       str(bad))
        assert proc.returncode != 0, bad.name
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: input file 2 of 2"), proc.stderr
        assert reason in lines[0], lines[0]
        assert bad.name not in proc.stderr  # inputs are named by position
    assert _count(home, owner) == before  # the good note in the same run was not minted


def test_a_fhir_document_reference_with_a_note_is_an_unstructured_note(tmp_path: Path) -> None:
    import base64

    from healthnft.ingest import ingest

    doc = {"resourceType": "DocumentReference", "status": "current",
           "type": {"text": "Discharge summary"}, "date": "2024-05-02T10:00:00Z",
           "subject": {"reference": "urn:uuid:synthetic-patient"},
           "content": [{"attachment": {"contentType": "text/plain",
                                       "data": base64.b64encode(NOTE.encode()).decode()}}]}
    report = {"resourceType": "DiagnosticReport", "status": "final",
              "code": {"text": "Lipid panel"},
              "subject": {"reference": "urn:uuid:synthetic-patient"},
              "effectiveDateTime": "2024-05-02T10:00:00Z"}
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                "entry": [{"resource": doc}, {"resource": report}]}))
    [group] = ingest([path]).patients
    by_type = {r.resource_type: r for r in group.records}
    assert by_type["DocumentReference"].structured is False
    assert by_type["DocumentReference"].category == "note"
    assert by_type["DiagnosticReport"].structured is True  # no note attached: structured
