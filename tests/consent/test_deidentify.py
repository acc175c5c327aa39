"""De-identified copies: minted as tokens of their own, linked, scrubbed, and the only
thing a grant limited to de-identified data releases."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from conftest import run_cli
from healthnft.wallet.files import note_text


def _j(home: Path, *args: str) -> Any:
    return json.loads(run_cli(home, *args, "--json", check=True).stdout)


def _identifiers(patient: dict) -> dict[str, set[str]]:
    """Every identifying string of a Patient resource, by kind (what the test searches for)."""
    found: dict[str, set[str]] = {"name": set(), "identifier": set(), "telecom": set(),
                                  "address": set(), "birth date": set()}
    for name in patient.get("name", []):
        found["name"] |= {p for p in [name.get("family"), *name.get("given", [])] if p}
    found["identifier"] |= {i["value"] for i in patient.get("identifier", []) if i.get("value")}
    found["telecom"] |= {t["value"] for t in patient.get("telecom", []) if t.get("value")}
    for addr in patient.get("address", []):
        found["address"] |= {p for p in [*addr.get("line", []), addr.get("city"),
                                         addr.get("postalCode")] if p}
    if patient.get("birthDate"):
        found["birth date"].add(patient["birthDate"])
    return found


def _hits(text: str, needles: dict[str, set[str]]) -> list[str]:
    return [f"{kind}: {n!r}" for kind, values in needles.items() for n in values
            if re.search(r"(?<![0-9A-Za-z])" + re.escape(n) + r"(?![0-9A-Za-z])", text)]


def test_deidentified_copies_and_de_identified_only_grants(fresh_demo_home, tmp_path) -> None:
    home, summary = fresh_demo_home
    owner = summary["patients"][0]["address"]
    rows = _j(home, "wallet", "list", "--owner", owner)
    patient_token = next(r["token_id"] for r in rows if r["resource_type"] == "Patient")
    patient = _j(home, "wallet", "show", str(patient_token))["resource"]
    needles = _identifiers(patient)
    print("\nsearched for:", {k: len(v) for k, v in needles.items()})
    assert needles["name"] and needles["birth date"]

    # A note naming the patient, minted by the hospital, then copied without identifiers.
    given, family = patient["name"][0]["given"][0], patient["name"][0]["family"]
    note = tmp_path / "letter.txt"
    note.write_text(f"Dear colleague,\n{given} {family} (born {patient['birthDate']}) was seen "
                    "today; lungs clear. Review in 3 months.\n")
    minted = _j(home, "mint", "--issuer", "demo-hospital", "--patient", owner, str(note))
    note_token = minted["token_ids"][0]
    lab = next(r["token_id"] for r in rows if r["category"] == "laboratory")

    copies = {}
    for token in (patient_token, lab, note_token):
        out = _j(home, "deidentify", str(token))
        assert out["derived_from"] == token and out["token_id"] != token
        copies[token] = out["token_id"]
        resource = _j(home, "wallet", "show", str(out["token_id"]))["resource"]
        text = json.dumps(resource) + "\n" + (note_text(resource) or "")  # notes: decoded too
        assert _hits(text, needles) == [], token
        assert _j(home, "verify", str(out["token_id"]))["valid"] is True
    note_copy = _j(home, "wallet", "show", str(copies[note_token]))["resource"]
    assert "lungs clear" in note_text(note_copy)  # the clinical content stays
    assert given not in note_text(note_copy) and family not in note_text(note_copy)
    # Idempotent: asking again gives the same copy, mints nothing.
    before = len(_j(home, "wallet", "list", "--owner", owner))
    assert _j(home, "deidentify", str(lab))["token_id"] == copies[lab]
    assert len(_j(home, "wallet", "list", "--owner", owner)) == before
    refused = run_cli(home, "deidentify", str(copies[lab]))
    assert refused.returncode != 0 and "itself a de-identified copy" in refused.stderr

    # A research grant limited to de-identified data releases the copy only.
    research = next(p["address"] for p in _j(home, "participant", "list")
                    if p["kind"] == "research")
    g = _j(home, "share", "--category", "laboratory", "--owner", owner, "--to", research,
           "--purpose", "research", "--days", "30", "--deidentified-only")
    assert g["grant_id"]
    original = run_cli(home, "open", str(lab), "--as", research)
    assert original.returncode != 0 and "de-identified" in original.stderr
    opened = _j(home, "open", str(copies[lab]), "--as", research)
    assert opened["token_id"] == copies[lab]
    assert _hits(json.dumps(opened["resource"]), needles) == []
    log = _j(home, "access-log", "--owner", owner)
    assert {e["token_id"] for e in log if e["grantee"] == research} == {copies[lab]}

    # A grant naming the original record covers its de-identified copy (which holds
    # strictly less): the copy opens, and the chain's log names the record granted.
    _j(home, "share", str(note_token), "--owner", owner, "--to", research, "--purpose",
       "research")  # fmt: skip
    copy = _j(home, "open", str(copies[note_token]), "--as", research)
    assert "lungs clear" in note_text(copy["resource"])
    log = _j(home, "access-log", "--owner", owner)
    assert {e["token_id"] for e in log if e["grantee"] == research} == {copies[lab], note_token}


def test_deidentified_copy_of_an_imaging_study(fresh_demo_home, tmp_path) -> None:
    import pydicom
    from pydicom.data import get_testdata_file

    home, summary = fresh_demo_home
    owner = summary["patients"][1]["address"]
    ct = Path(get_testdata_file("CT_small.dcm"))
    source = pydicom.dcmread(ct)
    minted = _j(home, "mint", "--issuer", "demo-hospital", "--patient", owner, str(ct))
    study = minted["token_ids"][0]
    out = _j(home, "deidentify", str(study))
    assert out["method"].startswith("DICOM PS3.15")
    folder = tmp_path / "copy"
    run_cli(home, "wallet", "show", str(out["token_id"]), "--out", str(folder), check=True)
    [path] = sorted(folder.iterdir())
    raw = path.read_bytes()
    copy = pydicom.dcmread(path)
    searched = {"PatientName": str(source.PatientName), "PatientID": source.PatientID,
                "StudyInstanceUID": source.StudyInstanceUID,
                "SOPInstanceUID": source.SOPInstanceUID, "StudyDate": source.StudyDate}
    print("\nsearched the copy's bytes for:", sorted(searched))
    for name, value in searched.items():
        assert value and value.encode() not in raw, name
    assert copy.PatientIdentityRemoved == "YES"
    assert copy.pixel_array.shape == source.pixel_array.shape  # the image itself is kept
    assert _j(home, "verify", str(out["token_id"]))["valid"] is True
    assert _j(home, "deidentify", str(study))["token_id"] == out["token_id"]  # idempotent
