"""Every 4xx/5xx the gateway answers has one shape: ``{"error": {"code": "E_…", "message": "…"}}``.

Handlers here map FastAPI/Starlette's own errors (validation, unknown route, wrong method) onto that
shape, so a client never has to parse two error formats.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import error_body, validation_message
from ..http_errors import http_exception_handler

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the client can act on; raised anywhere below a route and answered as JSON."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def error_response(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status)


def describe_validation(exc: ValidationError | RequestValidationError, prefix: str = "") -> str:
    """``field.path: problem`` for each error (``qmtl.services.errors.validation_message``)."""
    return validation_message(exc.errors(), prefix)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, "E_SCHEMA", describe_validation(exc))

    app.add_exception_handler(StarletteHTTPException,  # type: ignore[arg-type]
                              http_exception_handler(lambda: app.router.routes))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "E_INTERNAL", f"internal error: {type(exc).__name__}")
