"""An ASGI middleware capping request bodies, shared by the gateway and the world service.

It answers 413 ``E_PAYLOAD_TOO_LARGE`` from the ``Content-Length`` header before a byte of the body is
read, and for chunked uploads stops reading as soon as the running total passes the limit.  The body
(at most ``limit`` bytes) is read here and replayed to the app, so a handler never sees part of an
oversized body and neither app needs an exception handler for the case.
"""

from __future__ import annotations

from .asgi import (ASGIApp, BodyTooLarge, ClientDisconnected, HttpMiddleware, Receive, Scope, Send,
                   read_body, replay_body, send_json)
from .errors import error_body


class BodySizeLimit(HttpMiddleware):
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        super().__init__(app)
        self.limit = max_body_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            declared = _content_length(scope)
            if declared is not None and declared > self.limit:
                raise BodyTooLarge
            body = await read_body(receive, self.limit)
        except BodyTooLarge:
            message = f"request body is larger than the limit of {self.limit} bytes"
            await send_json(send, 413, error_body("E_PAYLOAD_TOO_LARGE", message))
            return
        except ClientDisconnected:
            return
        await self.app(scope, replay_body(body, receive), send)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
