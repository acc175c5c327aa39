"""records.notes: clinical notes (text, PDF, FHIR attachments) read as unstructured records."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from healthnft.errors import InputNotFound, InvalidRecord
from healthnft.records import Record, commit, matches, new_salt, read_resources
from healthnft.records.fhir import SourceResource, validate
from healthnft.records.notes import (
    EXTRACTED_TEXT_TITLE,
    MAX_NOTE_BYTES,
    SHA256_EXTENSION,
    Note,
    note_from_resource,
    parse_note,
    read_fhir_notes,
    read_note,
)

NOTE_TEXT = (
    "Progress note\n"
    "Patient seen for follow-up of type 2 diabetes. HbA1c 6.9 %, down from 7.4 %.\n"
    "Plan: continue metformin 500 mg twice daily; recheck in three months.\n"
)


def text_pdf(pages: list[list[str]]) -> bytes:
    """A small, valid PDF whose pages show the given lines in Helvetica (extractable text)."""
    objects: list[bytes] = [b"", b""]  # 1: catalog, 2: pages (filled in below)
    font = 3
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    kids = []
    for lines in pages:
        ops = [b"BT /F1 11 Tf 72 740 Td 14 TL"]
        for line in lines:
            esc = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(b"(" + esc.encode("latin-1") + b") Tj T*")
        ops.append(b"ET")
        stream = b"\n".join(ops)
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        content = len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>" % (font, content)
        )
        kids.append(len(objects))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids),
        len(kids),
    )
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    )
    return out.getvalue()


def encrypted(pdf: bytes, password: str = "s3cret") -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password=password, algorithm="AES-128")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def image_pdf() -> bytes:
    """A one-page PDF holding only a picture, like a scanned page (made by Pillow)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (400, 200), "white")
    ImageDraw.Draw(img).text((20, 80), "Scanned discharge summary", fill="black")
    buf = io.BytesIO()
    img.save(buf, "PDF")
    return buf.getvalue()


def resource_of(note: Note) -> dict:
    return json.loads(note.canonical)


def test_text_note_is_an_unstructured_record(tmp_path: Path) -> None:
    path = tmp_path / "note.txt"
    path.write_text(NOTE_TEXT, encoding="utf-8")
    note = read_note(path, subject_ref="urn:uuid:1234", date="2021-03-04")
    assert isinstance(note, Record) and not note.structured
    assert (note.resource_type, note.category, note.kind) == ("DocumentReference", "note", "text")
    assert note.effective_date == "2021-03-04" and note.subject_ref == "urn:uuid:1234"
    assert note.page_count is None and note.char_count == len(NOTE_TEXT) and note.text == NOTE_TEXT
    assert note.encoding == "utf-8" and note.media_type == "text/plain"
    assert note.sha256 == hashlib.sha256(NOTE_TEXT.encode()).hexdigest()
    assert NOTE_TEXT not in repr(note)  # the text stays out of logs
    res = resource_of(note)
    validate(SourceResource(res, "wrapper"))  # a valid FHIR R4 DocumentReference
    (content,) = res["content"]
    att = content["attachment"]
    assert base64.b64decode(att["data"]) == path.read_bytes()
    assert att["extension"] == [{"url": SHA256_EXTENSION, "valueString": note.sha256}]
    assert res["context"]["period"]["start"] == "2021-03-04"
    # The commitment machinery takes it as any record; the same file gives the same bytes.
    salt = new_salt()
    assert matches(note.canonical, salt, commit(note.canonical, salt))
    assert (
        read_note(path, subject_ref="urn:uuid:1234", date="2021-03-04").canonical == note.canonical
    )


def test_other_encodings_are_decoded_visibly_or_refused(tmp_path: Path) -> None:
    latin = "Pt. complains of dizziness; café au lait spots noted.\n"
    path = tmp_path / "legacy.txt"
    path.write_bytes(latin.encode("cp1252"))
    note = read_note(path)
    assert note.encoding == "cp1252" and note.text == latin
    res = resource_of(note)
    original, extracted = (c["attachment"] for c in res["content"])
    assert original["contentType"] == "text/plain; charset=cp1252"
    assert base64.b64decode(original["data"]) == latin.encode("cp1252")  # unchanged bytes
    assert extracted["title"] == EXTRACTED_TEXT_TITLE
    assert base64.b64decode(extracted["data"]).decode("utf-8") == latin
    # A BOM says UTF-16; an explicit encoding is honoured.
    path.write_bytes(latin.encode("utf-16"))
    assert read_note(path).encoding == "utf-16"
    path.write_bytes("Привет".encode("koi8-r"))
    assert read_note(path, encoding="koi8_r").text == "Привет"
    # Bytes that no text holds are refused, whatever cp1252 would make of them.
    path.write_bytes(b"\x00\x01\x02binary\xff")
    with pytest.raises(InvalidRecord, match=r"^legacy\.txt: binary data, not text$"):
        read_note(path)
    path.write_bytes(b"abc \x81\x8d\x8f\x90\x9d")  # undefined in cp1252, invalid UTF-8
    with pytest.raises(InvalidRecord, match="neither UTF-8 nor Windows-1252"):
        read_note(path)


def test_pdf_note_keeps_the_pdf_and_its_text(tmp_path: Path) -> None:
    pdf = text_pdf(
        [["Discharge summary", "Admitted with pneumonia."], ["Discharged home (stable)."]]
    )
    path = tmp_path / "summary.pdf"
    path.write_bytes(pdf)
    note = read_note(path, title="Discharge summary")
    assert (note.kind, note.media_type, note.page_count) == ("pdf", "application/pdf", 2)
    assert "Admitted with pneumonia." in note.text and "Discharged home (stable)." in note.text
    assert note.char_count == len(note.text) and note.encoding is None
    res = resource_of(note)
    validate(SourceResource(res, "wrapper"))
    original, extracted = (c["attachment"] for c in res["content"])
    assert base64.b64decode(original["data"]) == pdf  # the wallet can give back the file
    assert original["contentType"] == "application/pdf" and original["title"] == "Discharge summary"
    assert original["hash"] == base64.b64encode(hashlib.sha1(pdf).digest()).decode()
    assert base64.b64decode(extracted["data"]).decode() == note.text
    print(f"\nPDF note: {note.page_count} pages, {note.char_count} characters, {len(pdf)} bytes")


def test_pdf_without_text_is_refused_or_kept_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(image_pdf())
    with pytest.raises(InvalidRecord, match=r"^scan\.pdf: PDF has no extractable text"):
        read_note(path)
    note = read_note(path, require_text=False)
    assert note.char_count == 0 and note.page_count == 1
    assert len(resource_of(note)["content"]) == 1  # only the original; no empty text attachment


def test_bad_note_files_are_refused_with_one_clear_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(InvalidRecord, match=r"^empty\.txt: empty file \(0 bytes\)$"):
        read_note(empty)
    (tmp_path / "empty.pdf").write_bytes(b"")
    with pytest.raises(InvalidRecord, match="empty file"):
        read_note(tmp_path / "empty.pdf")

    locked = tmp_path / "locked.pdf"
    locked.write_bytes(encrypted(text_pdf([["Confidential"]])))
    with pytest.raises(InvalidRecord, match=r"^locked\.pdf: encrypted PDF \(password-protected\)"):
        read_note(locked)

    fake = tmp_path / "fake.pdf"
    fake.write_text("This is a text file pretending to be a PDF.\n")
    with pytest.raises(InvalidRecord, match=r"^fake\.pdf: not a PDF \(no %PDF- header\)$"):
        read_note(fake)
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 8)
    with pytest.raises(InvalidRecord, match=r"^broken\.pdf: not a readable PDF"):
        read_note(broken)
    pdf_as_text = tmp_path / "really-a-pdf.txt"
    pdf_as_text.write_bytes(text_pdf([["x"]]))
    with pytest.raises(InvalidRecord, match="is a PDF, not plain text"):
        read_note(pdf_as_text)

    blank = tmp_path / "blank.txt"
    blank.write_text(" \n\t\n")
    with pytest.raises(InvalidRecord, match="no text"):
        read_note(blank)
    with pytest.raises(InvalidRecord, match="unsupported note file type"):
        read_note(tmp_path / "scan.docx")
    with pytest.raises(InputNotFound, match=r"^missing\.txt: no such file$"):
        read_note(tmp_path / "missing.txt")
    folder = tmp_path / "folder.txt"
    folder.mkdir()
    with pytest.raises(InputNotFound, match=r"^folder\.txt: is a folder"):
        read_note(folder)
    with pytest.raises(InvalidRecord, match="date is not a FHIR date"):
        read_note(blank, date="04/03/2021")


def test_a_file_over_the_cap_is_refused_before_it_is_read(tmp_path: Path) -> None:
    assert MAX_NOTE_BYTES == 64 * 2**20
    big = tmp_path / "huge.txt"
    with big.open("wb") as fh:  # sparse where the filesystem allows: cheap to make
        fh.seek(10 * 2**20)
        fh.write(b"end\n")
    with pytest.raises(InvalidRecord, match=r"^huge\.txt: larger than the 1 MiB limit for notes$"):
        read_note(big, max_bytes=2**20)
    small = tmp_path / "small.txt"
    small.write_text("x" * 2000)
    with pytest.raises(InvalidRecord, match="larger than the 1000-byte limit"):
        read_note(small, max_bytes=1000)
    assert read_note(small, max_bytes=2000).char_count == 2000
    with pytest.raises(InvalidRecord, match="limit"):
        parse_note(b"x" * 2001, "text/plain", "upload", max_bytes=2000)


def test_errors_never_echo_the_file_name_when_given_a_label(tmp_path: Path) -> None:
    path = tmp_path / "Bibi254_Schowalter414_note.pdf"
    path.write_text("not a pdf")
    with pytest.raises(InvalidRecord) as info:
        read_note(path, label="file 3")
    assert str(info.value) == "file 3: not a PDF (no %PDF- header)"


def _document_reference(attachments: list[dict]) -> dict:
    return {
        "resourceType": "DocumentReference",
        "id": "doc-1",
        "status": "current",
        "subject": {"reference": "Patient/p-1"},
        "context": {"period": {"start": "2020-11-02T10:00:00-05:00"}},
        "content": [{"attachment": a} for a in attachments],
    }


def test_fhir_document_reference_and_diagnostic_report_with_notes(tmp_path: Path) -> None:
    pdf = text_pdf([["Radiology report", "No acute findings."]])
    doc = _document_reference(
        [
            {"contentType": "text/plain", "data": base64.b64encode(NOTE_TEXT.encode()).decode()},
            {"contentType": "application/pdf", "data": base64.b64encode(pdf).decode()},
            {"contentType": "image/png", "url": "https://example.org/x.png"},  # not a note
        ]
    )
    report = {
        "resourceType": "DiagnosticReport",
        "id": "rep-1",
        "status": "final",
        "code": {"text": "Chest X-ray report"},
        "subject": {"reference": "urn:uuid:p-2"},
        "effectiveDateTime": "2019-06-07",
        "presentedForm": [
            {"contentType": "application/pdf", "data": base64.b64encode(pdf).decode()}
        ],
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": doc},
            {"resource": {"resourceType": "Patient", "id": "p-1"}},
            {"resource": report},
        ],
    }
    path = tmp_path / "notes.json"
    path.write_text(json.dumps(bundle))
    first, second = read_fhir_notes(path)
    assert (first.resource_type, first.resource_id, first.kind) == (
        "DocumentReference",
        "doc-1",
        "fhir",
    )
    assert first.category == "note" and not first.structured
    assert first.effective_date == "2020-11-02" and first.subject_ref == "urn:uuid:p-1"
    assert first.page_count == 1 and "No acute findings." in first.text and NOTE_TEXT in first.text
    assert first.media_type == "text/plain" and first.sha256 is None
    assert json.loads(first.canonical)["content"][1]["attachment"]["data"]  # the note is committed
    assert (second.resource_type, second.effective_date) == ("DiagnosticReport", "2019-06-07")
    assert second.subject_ref == "urn:uuid:p-2" and second.category == "note"
    with pytest.raises(InvalidRecord, match="holds 2 notes, expected one"):
        read_note(path)
    single = tmp_path / "doc.json"
    single.write_text(json.dumps(doc))
    assert read_note(single).resource_id == "doc-1"


def test_fhir_resources_without_a_readable_note_are_refused(fhir_dir: Path) -> None:
    only_url = _document_reference(
        [{"contentType": "application/pdf", "url": "https://x.org/a.pdf"}]
    )
    with pytest.raises(InvalidRecord, match=r"^doc: DocumentReference has no attached note"):
        note_from_resource(SourceResource(only_url, "doc"))
    bad_b64 = _document_reference([{"contentType": "text/plain", "data": "not base64!"}])
    with pytest.raises(InvalidRecord, match=r"content\.0\.attachment\.data \(base64_decode\)"):
        note_from_resource(SourceResource(bad_b64, "doc"))
    locked = _document_reference(
        [
            {
                "contentType": "application/pdf",
                "data": base64.b64encode(encrypted(text_pdf([["x"]]))).decode(),
            }
        ]
    )
    with pytest.raises(InvalidRecord, match="attachment 0: encrypted PDF"):
        note_from_resource(SourceResource(locked, "doc"))
    invalid = _document_reference([{"contentType": "text/plain", "data": "aGk="}])
    invalid["status"] = 42
    with pytest.raises(InvalidRecord, match="invalid DocumentReference"):
        note_from_resource(SourceResource(invalid, "doc"))
    # A real Synthea patient has DiagnosticReports, but none with an attached note.
    patient_file = sorted(fhir_dir.glob("*.json"))[0]
    with pytest.raises(
        InvalidRecord, match="no DocumentReference or DiagnosticReport with an attachment"
    ):
        read_fhir_notes(patient_file, label="patient file")
    report = next(
        s for s in read_resources(patient_file) if s.resource["resourceType"] == "DiagnosticReport"
    )
    with pytest.raises(InvalidRecord, match="has no attached note"):
        note_from_resource(report)
