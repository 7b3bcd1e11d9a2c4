"""Per-route request metrics, as an ASGI middleware (the body-size cap is ``qmtl.services.body_limit``)."""

from __future__ import annotations

import time

from ..body_limit import ASGIApp, Message, Receive, Scope, Send
from .metrics import Metrics


class RequestMetrics:
    """Counts requests by route *template* (``/strategies/{strategy_id}``), never by raw path, so a
    client cannot blow up the number of series by requesting random URLs."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "<unmatched>"
            self.metrics.inc("http_requests_total", route=route, method=scope["method"], status=str(status))
            self.metrics.observe("http_request_duration_ms", (time.perf_counter() - started) * 1000,
                                 route=route)
