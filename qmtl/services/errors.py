"""The one error shape both services answer with: ``{"error": {"code": "E_…", "message": "…"}}``.

``details`` is added only when there are some, so clients see the same two keys on every error.
Validation errors are 400 ``E_SCHEMA`` on both services, worded by ``validation_message``: a client
sees one status and one message form whichever service it reached.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# pydantic error types that mean "the body is not an object at all" (``[]``, ``"x"``, nothing)
_NOT_AN_OBJECT = frozenset({"model_attributes_type", "model_type", "dict_type", "missing"})
MAX_LISTED_ERRORS = 10


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        err["details"] = details
    return {"error": err}


def validation_message(errors: Sequence[Mapping[str, Any]], prefix: str = "") -> str:
    """One message for pydantic's errors (a request's or a model's): malformed JSON and a body that is
    no object are said in words; otherwise ``field.path: problem`` for each (at most
    ``MAX_LISTED_ERRORS``), the way a user would look the field up (``prefix`` names the document)."""
    if any(e.get("type") == "json_invalid" for e in errors):
        problem = next(str(e.get("ctx", {}).get("error", "")) for e in errors if e.get("type") == "json_invalid")
        return "request body is not valid JSON" + (f": {problem}" if problem else "")
    if any(tuple(e.get("loc", ())) == ("body",) and e.get("type") in _NOT_AN_OBJECT for e in errors):
        return "request body must be a JSON object"
    parts = []
    for err in errors[:MAX_LISTED_ERRORS]:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        where = ".".join(([prefix] if prefix else []) + loc) or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    more = len(errors) - MAX_LISTED_ERRORS
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")

