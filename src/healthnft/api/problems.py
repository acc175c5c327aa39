"""Errors as RFC 9457 ``application/problem+json``, mapped once from the error tree.

Every refusal the API gives is a problem document whose ``status``, ``code`` and
``title`` come from the raised class in :mod:`healthnft.errors`; ``detail`` is
its message (which names ids and fields, never values). FastAPI's own request
validation errors become ``invalid_input`` problems that list the fields at
fault without echoing what was sent (it could be health data); ``fields`` is
present on those only. The framework's own refusals (Starlette's
``HTTPException``: no such path, a body it cannot parse…) take the class of the
tree with their status, so a 400 is ``invalid_input`` whoever refused it. An
unexpected exception is a 500 naming only its type.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from healthnft.errors import (
    PROBLEM_TYPE_BASE,
    AccessDenied,
    Conflict,
    CredentialRejected,
    HealthNFTError,
    InvalidInput,
    InvalidRecord,
    NotFound,
    RateLimited,
    TooLarge,
    Unavailable,
    problem,
)

MEDIA_TYPE = "application/problem+json"

#: The class of the tree a framework's refusal with this HTTP status stands for.
_BY_STATUS: dict[int, type[HealthNFTError]] = {
    cls.http_status: cls
    for cls in (InvalidInput, CredentialRejected, AccessDenied, NotFound, Conflict, TooLarge,
                InvalidRecord, RateLimited, Unavailable)
}  # fmt: skip


def _answer(doc: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(doc, status_code=doc["status"], media_type=MEDIA_TYPE, headers=headers)


def refusal(exc: HealthNFTError, path: str) -> JSONResponse:
    """The problem response for ``exc`` (for middleware, which runs outside the handlers)."""
    retry = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, RateLimited) else None
    return _answer(problem(exc, path), headers=retry)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into one problem document."""

    @app.exception_handler(HealthNFTError)
    async def _known(request: Request, exc: HealthNFTError) -> JSONResponse:
        return refusal(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        fields = sorted({_field(e) for e in errors})
        if any(e.get("type") == "json_invalid" for e in errors):
            message = "the request body is not valid JSON"
        else:
            message = f"missing or invalid: {', '.join(fields)}"
        doc = problem(InvalidInput(message), request.url.path)
        doc["fields"] = fields
        return _answer(doc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # The framework's own answers (no such path, a body it cannot parse…) in the
        # shape and with the code of the tree's class for that status.
        headers = getattr(exc, "headers", None)
        cls = _BY_STATUS.get(exc.status_code)
        if cls is not None:
            return _answer(problem(cls(str(exc.detail)), request.url.path), headers=headers)
        code = "method_not_allowed" if exc.status_code == 405 else "http"
        title = "Method not allowed" if exc.status_code == 405 else "HTTP error"
        return _answer({"type": PROBLEM_TYPE_BASE + code, "title": title,
                        "status": exc.status_code, "detail": str(exc.detail), "code": code,
                        "instance": request.url.path}, headers=headers)  # fmt: skip

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        # Never the message: it could quote input. The type is enough to report a bug.
        return _answer({"type": PROBLEM_TYPE_BASE + "internal", "title": "Internal error",
                        "status": 500, "detail": f"internal error ({type(exc).__name__})",
                        "code": "internal", "instance": request.url.path})  # fmt: skip


def _field(error: dict[str, Any]) -> str:
    """Where a validation error is: ``token_ids.0``, ``query.qr``, ``path.token_id``; the
    body as a whole is ``body`` (missing, or not JSON: its loc is then a character
    offset, which names nothing)."""
    loc = error.get("loc", ())
    if error.get("type") == "json_invalid":
        return "body"
    return ".".join(str(p) for p in loc if p != "body") or "body"
