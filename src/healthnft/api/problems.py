"""Errors as RFC 9457 ``application/problem+json``, mapped once from the error tree.

Every refusal the API gives is a problem document whose ``status``, ``code`` and
``title`` come from the raised class in :mod:`healthnft.errors`; ``detail`` is
its message (which names ids and fields, never values). FastAPI's own request
validation errors become ``invalid_input`` problems that list the fields at
fault without echoing what was sent (it could be health data). An unexpected
exception is a 500 naming only its type.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from healthnft.errors import PROBLEM_TYPE_BASE, HealthNFTError, InvalidInput, RateLimited, problem

MEDIA_TYPE = "application/problem+json"


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
        fields = sorted({".".join(str(p) for p in e.get("loc", ()) if p != "body")
                         for e in exc.errors()})  # fmt: skip
        doc = problem(InvalidInput(f"missing or invalid: {', '.join(fields) or 'the request'}"),
                      request.url.path)  # fmt: skip
        doc["fields"] = fields
        return _answer(doc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Routing's own answers (no such path, method not allowed) in the same shape.
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http")
        return _answer({"type": PROBLEM_TYPE_BASE + code, "title": str(exc.detail),
                        "status": exc.status_code, "detail": str(exc.detail), "code": code,
                        "instance": request.url.path},
                       headers=getattr(exc, "headers", None))  # fmt: skip

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        # Never the message: it could quote input. The type is enough to report a bug.
        return _answer({"type": PROBLEM_TYPE_BASE + "internal", "title": "Internal error",
                        "status": 500, "detail": f"internal error ({type(exc).__name__})",
                        "code": "internal", "instance": request.url.path})  # fmt: skip
