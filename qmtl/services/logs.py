"""Structured JSON logs for both services: one object per line, carrying the request id and, where the
code knows them, the strategy and world ids, so a line can be joined with the request that caused it.

* ``RequestContext`` (ASGI middleware) takes ``X-Request-ID`` from the client (or makes one), puts it
  in a context variable for every log line of that request, and echoes it in the response.
  The gateway's proxy forwards the header, so the world service logs under the same id.
* ``bind(strategy_id=…, world_id=…)`` adds ids to the current request's lines.
* ``JsonFormatter`` renders a record with those fields; ``configure()`` installs it (``qmtl serve``).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import uuid
from typing import Any

from .asgi import HttpMiddleware, Message, Receive, Scope, Send

_CONTEXT: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("qmtl_log_context", default={})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def bind(**ids: Any) -> None:
    """Add ids (``strategy_id``, ``world_id``, ``world_ids``) to every later line of this request."""
    _CONTEXT.set({**_CONTEXT.get(), **{k: v for k, v in ids.items() if v is not None}})


def context() -> dict[str, Any]:
    return dict(_CONTEXT.get())


class RequestContext(HttpMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        given = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"x-request-id"), "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        token = _CONTEXT.set({"request_id": request_id})

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _CONTEXT.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"ts": round(record.created, 6), "level": record.levelname.lower(),
                                "logger": record.name, "message": record.getMessage()}
        line.update(_CONTEXT.get())
        line.update(getattr(record, "ids", {}))
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(level: int = logging.INFO) -> None:
    """JSON lines on stderr for the qmtl loggers (uvicorn's own access/error logs are left alone)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("qmtl")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
