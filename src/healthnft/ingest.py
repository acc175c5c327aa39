"""From files to per-patient record lists, all validated before anything is minted.

A whole input is read and prepared first, so a single invalid resource stops
the run with a clear error before any ciphertext is stored or token minted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from healthnft.errors import InputNotFound, InvalidRecord
from healthnft.records import Record, is_reference_data, prepare, read_resources

#: Files read as clinical notes (unstructured): plain text and PDF.
NOTE_SUFFIXES = frozenset({".txt", ".text", ".pdf"})
#: What a folder given as input contributes (other files in it are left alone).
FOLDER_SUFFIXES = frozenset({".json", *NOTE_SUFFIXES})


def iter_input_files(paths: list[Path]) -> list[Path]:
    """Expand folders into their FHIR and note files (sorted); files pass through."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.iterdir()
                          if p.is_file() and p.suffix.lower() in FOLDER_SUFFIXES)  # fmt: skip
        else:
            out.append(path)
    return out


@dataclass
class PatientRecords:
    """The records of one patient found in the input."""

    patient_ref: str | None
    records: list[Record] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)


@dataclass
class IngestResult:
    patients: list[PatientRecords]
    reference_resources: int
    files: int


def ingest(
    paths: list[Path], on_resource: Callable[[], None] | None = None
) -> IngestResult:
    """Read, validate and group every patient resource in ``paths`` by patient."""
    by_patient: dict[str | None, PatientRecords] = {}
    reference = 0
    files = 0
    for i, path in enumerate(paths, 1):
        if not path.exists():
            raise InputNotFound(f"input {i} of {len(paths)}: no such file or folder")
    expanded = iter_input_files(paths)
    for path in expanded:
        files += 1
        pending: list[Record] = []
        # Files are named by position: their names often carry the patient's name.
        label = f"input file {files} of {len(expanded)}"
        if path.suffix.lower() in NOTE_SUFFIXES:
            from healthnft.records.notes import read_note

            if on_resource:
                on_resource()
            note = read_note(path, label=label)
            by_patient.setdefault(None, PatientRecords(None)).records.append(note)
            by_patient[None].sources.add(str(path))
            continue
        for src in read_resources(path, label):
            if on_resource:
                on_resource()
            if is_reference_data(src):
                reference += 1
                continue
            pending.append(prepare(src))
        for ref, rec in assign_patients(pending):
            group = by_patient.setdefault(ref, PatientRecords(ref))
            group.records.append(rec)
            group.sources.add(str(path))
    if files == 0:
        raise InputNotFound("no FHIR JSON, text or PDF files found in the input")
    return IngestResult(list(by_patient.values()), reference, files)


def assign_patients(records: list[Record]) -> list[tuple[str | None, Record]]:
    """Pair each record of one file with its patient reference.

    A file about one patient (Synthea writes one Bundle per patient) gives that
    patient to resources that do not name their own subject.
    """
    patients = {r.subject_ref for r in records if r.resource_type == "Patient" and r.subject_ref}
    default_ref = next(iter(patients)) if len(patients) == 1 else None
    return [
        (r.subject_ref if r.subject_ref and r.subject_ref.startswith(("urn:uuid:", "Patient/"))
         else default_ref, r)
        for r in records
    ]  # fmt: skip


def single_patient(result: IngestResult) -> list[Record]:
    """All records, insisting they are about one patient (for ``mint --patient``)."""
    groups = [g for g in result.patients if g.records]
    refs = {g.patient_ref for g in groups if g.patient_ref is not None}
    if len(refs) > 1:
        raise InvalidRecord(
            f"the input holds records of {len(refs)} different patients; "
            "mint one patient's records at a time"
        )
    return [r for g in groups for r in g.records]
