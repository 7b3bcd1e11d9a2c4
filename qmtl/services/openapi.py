"""The served OpenAPI documents the whole API as it answers: every route, its body and answer models,
and every error status with the one error shape both services use.

FastAPI documents a ``422 HTTPValidationError`` by itself, which is not what either service sends (both
answer validation errors with 400 ``E_SCHEMA`` as ``ErrorBody``; no 422 is left in either schema), and it
cannot know about what the middlewares answer (400 from ``RequestGuard``, 413 from ``BodySizeLimit``).
``finish_schema`` puts that right after generation.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

ERROR_DESCRIPTIONS = {
    400: "E_SCHEMA: malformed request (bad JSON, a control character, an encoded slash, nesting or numbers "
         "out of bounds) or a body or parameter of the wrong shape (the message names the field)",
    404: "unknown world, strategy, run or route",
    409: "conflict with the current state (exists already, etag changed, decision does not allow it)",
    413: "E_PAYLOAD_TOO_LARGE: the body is over the size limit",
    502: "E_WORLD_UNAVAILABLE: the world service answered with an error",
    503: "the world service or a backend did not answer",
}


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    """Every 4xx/5xx: ``{"error": {"code": "E_…", "message": "…"}}``."""

    error: ErrorDetail


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the listed statuses, each with ``ErrorBody``."""
    return {code: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[code]} for code in codes}


_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


def documented_error(code: int) -> dict[str, Any]:
    return {"description": ERROR_DESCRIPTIONS[code], "content": {"application/json": {"schema": _ERROR_REF}}}


def finish_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop FastAPI's 422 validation-error entries (validation errors are answered 400 ``E_SCHEMA``)
    and add the 400 (validation and ``RequestGuard``, every operation) and 413 (operations with a body)."""
    for item in schema.get("paths", {}).values():
        for op in item.values():
            responses = op.setdefault("responses", {})
            if "HTTPValidationError" in str(responses.get("422", {})):
                del responses["422"]
            responses.setdefault("400", documented_error(400))
            if "requestBody" in op:
                responses.setdefault("413", documented_error(413))
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    error_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(error_schema.pop("$defs", {}))
    components["ErrorBody"] = error_schema
    return schema


def merge_schemas(base: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """``other``'s paths and component schemas added to ``base`` (the gateway serves the world routes);
    a path ``base`` documents already (``/health``, ``/metrics``) stays ``base``'s: it answers it."""
    paths = base.setdefault("paths", {})
    for path, item in other.get("paths", {}).items():
        paths.setdefault(path, item)
    base.setdefault("components", {}).setdefault("schemas", {}).update(
        other.get("components", {}).get("schemas", {}))
    return base
