"""Pure-ASGI building blocks for the middlewares both services share (``body_limit``,
``request_guard``, ``logs``, ``metrics``): the ASGI types, a base class for middleware that acts on
HTTP requests only, reading a request body once and replaying it to the app, and a JSON answer.

Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``: a body read by one layer must reach the
next layer and the handler unchanged, and server-sent event streams must not be buffered.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class HttpMiddleware:
    """Acts on HTTP requests (``handle``); lifespan and any other scope pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class BodyTooLarge(Exception):
    """The body passed the limit while it was read."""


class ClientDisconnected(Exception):
    """The client went away before its body was complete: nobody is left to answer."""


async def read_body(receive: Receive, limit: int | None = None) -> bytes:
    """The whole request body, read once; ``BodyTooLarge`` as soon as it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the already-read body as one message, then the client's own messages
    (a disconnect, which streaming routes wait for)."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    """Answer ``status`` with ``body`` as JSON, from a middleware (before any handler ran)."""
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
