"""Hospitals mint uploaded records into a patient's wallet, as a job to poll."""

from __future__ import annotations

import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request

from healthnft.api.deps import Me, Service, Svc, require_kind
from healthnft.api.sessions import Session
from healthnft.api.uploads import receive
from healthnft.errors import HealthNFTError, InvalidInput, NotFound
from healthnft.services.minting import MintProgress, mint_files

router = APIRouter(tags=["minting"])


_FORM = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "required": ["patient", "files"],
            "properties": {
                "patient": {"type": "string", "description": "The patient's address (0x…)."},
                "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                          "description": "FHIR JSON, clinical notes (.txt, .pdf), DICOM."},
            },
        }}},
    }
}  # fmt: skip


@router.post("/api/mint", openapi_extra=_FORM)
async def mint(request: Request, me: Me, svc: Svc) -> dict[str, Any]:
    """Validate uploaded files (FHIR, notes, DICOM) and mint them into a patient's wallet
    (a job to poll for progress). At most 64 MiB in all, refused (413) as it arrives."""
    require_kind(me, "hospital")
    upload = await receive(request, svc.uploads)
    patient = upload.fields.get("patient")
    if not patient or not upload.files:
        shutil.rmtree(upload.folder, ignore_errors=True)
        raise InvalidInput("missing or invalid: " + ", ".join(
            name for name, ok in (("patient", patient), ("files", upload.files)) if not ok))
    job_id = uuid.uuid4().hex
    job: dict[str, Any] = {"job_id": job_id, "state": "running", "done": 0, "total": 0,
                           "owner": me.address}  # fmt: skip
    svc.jobs[job_id] = job
    threading.Thread(target=_mint_job, args=(svc, job, me, patient, upload.folder),
                     daemon=True).start()  # fmt: skip
    return {k: v for k, v in job.items() if k != "owner"}


def _mint_job(svc: Service, job: dict[str, Any], me: Session, patient: str,
              folder: Path) -> None:  # fmt: skip
    def advance(n: int) -> None:
        job["done"] += n

    # Warnings (codes outside extensible value sets) are shown as soon as the input is
    # validated, and kept in the result: where each is, never the value.
    watch = MintProgress(on_total=lambda n, _b: job.update(total=n), on_records=advance,
                         on_warnings=lambda w: job.update(warnings=w))  # fmt: skip
    try:
        res = svc.run(mint_files, me.name, patient, sorted(folder.iterdir()), svc.passphrase,
                      watch)  # fmt: skip
        job.update(state="done", result={"records_minted": res.records_minted,
                                         "already_minted": res.already_minted,
                                         "batches": res.batches,
                                         "token_ids": res.token_ids,
                                         "warnings": res.warnings})  # fmt: skip
    except HealthNFTError as exc:
        job.update(state="failed", error=str(exc), code=exc.code)
    except Exception as exc:  # never the message: it could quote the upload
        job.update(state="failed", error=f"internal error ({type(exc).__name__})",
                   code="internal")  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@router.get("/api/jobs/{job_id}")
def job_status(job_id: str, me: Me, svc: Svc) -> dict[str, Any]:
    """A mint job of yours: running (done of total), done (its result) or failed (why)."""
    job = svc.jobs.get(job_id)
    if job is None or job["owner"].lower() != me.address.lower():
        raise NotFound("no such job of yours")
    return {k: v for k, v in job.items() if k != "owner"}
