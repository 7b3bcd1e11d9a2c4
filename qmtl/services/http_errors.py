"""The answer to errors the web framework raises itself (unknown route, wrong method, body too large),
in the one error shape, for both services.

A 405 names every method the path accepts in ``Allow`` (RFC 9110).  Starlette's own header lists only
the first route that matched the path, so a path served by two routes (``GET`` and ``PUT
/worlds/{id}/policy``) would advertise one of them: the methods are collected from every route here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from .errors import error_body

_HTTP_CODES = {404: "E_NOT_FOUND", 405: "E_METHOD_NOT_ALLOWED", 413: "E_PAYLOAD_TOO_LARGE"}


def http_error_code(status: int) -> str:
    return _HTTP_CODES.get(status, f"E_HTTP_{status}")


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> list[str]:
    """Every method one of ``routes`` accepts at the request's path."""
    methods: set[str] = set()
    for route in routes:
        if route.matches(scope)[0] != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def http_exception_handler(routes: Callable[[], Iterable[BaseRoute]]
                           ) -> Callable[[Request, HTTPException], Awaitable[JSONResponse]]:
    """The ``HTTPException`` handler of an app whose routes (as added, not as a router nests them)
    ``routes()`` gives."""
    async def handle(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            methods = allowed_methods(routes(), request.scope)
            if methods:
                headers["Allow"] = ", ".join(methods)
        return JSONResponse(error_body(http_error_code(exc.status_code), str(exc.detail)),
                            status_code=exc.status_code, headers=headers or None)
    return handle
