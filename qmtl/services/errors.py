"""The one error shape both services answer with: ``{"error": {"code": "E_…", "message": "…"}}``.

``details`` is added only when there are some, so clients see the same two keys on every error.
"""

from __future__ import annotations

from typing import Any


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        err["details"] = details
    return {"error": err}
