"""From files to per-patient record lists, all validated before anything is minted.

A whole input is read and prepared first, so a single invalid resource stops
the run with a clear error before any ciphertext is stored or token minted.

Inputs are dispatched by kind: FHIR JSON, clinical notes (text, PDF) and DICOM. A file
named explicitly goes by its suffix (``.json``, ``.txt``/``.pdf``, ``.dcm``); without
one of those, by its first bytes (DICOM's preamble and ``DICM``, or JSON's ``{``/``[``);
anything else is refused. A folder contributes its FHIR and note files (by suffix, as
before) and every DICOM file found in it or its subfolders (a disc export: nested
series folders, files without suffixes), recognised by its header; the other files in
it (a disc's README, viewer, DICOMDIR index) are left alone. DICOM instances from all
inputs are then grouped into studies — one record per study — and each study is
hashed into its manifest (:func:`healthnft.records.dicom.prepare_study`).

Every file is named in errors by its position in the expanded input (``input file 3
of 40``), never by its name, which often carries the patient's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from healthnft.errors import InputNotFound, InvalidRecord
from healthnft.records import (
    Record,
    SourceResource,
    is_reference_data,
    prepare,
    read_resources,
)

#: Files read as clinical notes (unstructured): plain text and PDF.
NOTE_SUFFIXES = frozenset({".txt", ".text", ".pdf"})
#: Files read as DICOM when named (in folders, DICOM is recognised by its header).
DICOM_SUFFIXES = frozenset({".dcm", ".dicom"})
#: What a folder given as input contributes by suffix (DICOM files are found by header).
FOLDER_SUFFIXES = frozenset({".json", *NOTE_SUFFIXES})
_NOT_SUPPORTED = "not a FHIR JSON, DICOM, text or PDF file"


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


def _head(path: Path, size: int = 132) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(size)
    except OSError:
        return b""


def _kind_of_named_file(path: Path) -> str | None:
    """"fhir", "note" or "dicom" for a file named explicitly; None when it is none."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "fhir"
    if suffix in NOTE_SUFFIXES:
        return "note"
    if suffix in DICOM_SUFFIXES:
        return "dicom"
    from healthnft.records.dicom import sniff

    head = _head(path)
    if sniff(head) is not None:
        return "dicom"
    if head.lstrip()[:1] in (b"{", b"["):
        return "fhir"  # JSON without a .json suffix (an upload, a pipe): as before
    return None


def _dicom_in_folder(folder: Path, taken: set[Path]) -> list[Path]:
    """Files under ``folder`` (recursively, sorted) whose header says DICOM."""
    from healthnft.records.dicom import expand_inputs, sniff

    return [
        path
        for path, _ in expand_inputs([folder])
        if path not in taken
        and (path.suffix.lower() in DICOM_SUFFIXES or sniff(_head(path)) is not None)
    ]


def expand_inputs(paths: list[Path]) -> list[tuple[Path, str | None]]:
    """Every input file in order, with its kind (None: a named file of no known kind)."""
    out: list[tuple[Path, str | None]] = []
    for path in paths:
        if path.is_dir():
            found = iter_input_files([path])
            out += [(p, "note" if p.suffix.lower() in NOTE_SUFFIXES else "fhir") for p in found]
            out += [(p, "dicom") for p in _dicom_in_folder(path, set(found))]
        else:
            out.append((path, _kind_of_named_file(path)))
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

    @property
    def warnings(self) -> list[str]:
        """Every record's warnings (codes outside extensible value sets), in input order.

        Each names a file by position, an entry and an element path, never a value.
        """
        # An imaging study (StudyRecord) has no FHIR bindings, hence no warnings.
        return [w for g in self.patients for r in g.records for w in getattr(r, "warnings", ())]


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
    expanded = expand_inputs(paths)
    instances = []
    for path, kind in expanded:
        files += 1
        pending: list[Record] = []
        # Files are named by position: their names often carry the patient's name.
        label = f"input file {files} of {len(expanded)}"
        if kind is None:
            empty = path.is_file() and path.stat().st_size == 0
            raise InvalidRecord(f"{label}: {'empty file (0 bytes), ' if empty else ''}"
                                f"{_NOT_SUPPORTED}")  # fmt: skip
        if kind == "dicom":
            from healthnft.records.dicom import read_instance

            if on_resource:
                on_resource()
            instances.append(read_instance(path, label))
            continue
        if kind == "note":
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
            pending.append(_prepare_resource(src))
        for ref, rec in assign_patients(pending):
            group = by_patient.setdefault(ref, PatientRecords(ref))
            group.records.append(rec)
            group.sources.add(str(path))
    if files == 0:
        raise InputNotFound("no FHIR JSON files (nor text, PDF or DICOM files) found in the input")
    if instances:
        from healthnft.records.dicom import group_studies, prepare_study

        # One record per study, whichever inputs its instances came from. The studies
        # are about no FHIR Patient the input names: like notes, the wallet's patient.
        group = by_patient.setdefault(None, PatientRecords(None))
        for study in group_studies(instances):
            group.records.append(prepare_study(study))  # type: ignore[arg-type]
            group.sources.update(str(i.path) for i in study.instances)
    return IngestResult(list(by_patient.values()), reference, files)


def _prepare_resource(src: SourceResource) -> Record:
    """A FHIR resource as a record: a note (unstructured) when it carries one inline."""
    from healthnft.records.notes import has_inline_note, note_from_resource

    return note_from_resource(src) if has_inline_note(src.resource) else prepare(src)


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
