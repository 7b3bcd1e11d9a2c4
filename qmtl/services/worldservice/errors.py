"""Errors the world service answers with: ``{"error": {"code": "E_...", "message": "..."}}``."""

from __future__ import annotations

from qmtl.services.errors import error_body


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict:
        return error_body(self.code, self.message)


def unknown_world(world_id: str) -> ApiError:
    return ApiError(404, "E_UNKNOWN_WORLD", f"unknown world {world_id!r}")
