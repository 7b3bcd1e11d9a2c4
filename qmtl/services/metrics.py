"""Prometheus metrics for both services, with ``prometheus_client``: every name starts with ``qmtl_``
and every duration is in seconds (the Prometheus conventions a dashboard expects).

Each app gets its own ``CollectorRegistry`` (two apps in one process, as in the embedded pair and the
tests, never share or collide), and every metric is declared up front so ``/metrics`` lists it before
the first request: a dashboard can tell "no traffic" from "metric missing".

``RequestMetrics`` counts requests by route *template* (``/strategies/{strategy_id}``), never by raw
path, so a client cannot blow up the number of series by requesting random URLs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from .asgi import ASGIApp, HttpMiddleware, Message, Receive, Scope, Send

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServiceMetrics:
    """The metrics every service has (HTTP traffic); a service adds its own on ``registry``."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter("qmtl_http_requests", "HTTP requests by route template, method and status.",
                                     ["service", "route", "method", "status"], registry=self.registry)
        self.http_duration = Histogram("qmtl_http_request_duration_seconds", "HTTP request latency (s).",
                                       ["service", "route"], buckets=LATENCY_BUCKETS_S, registry=self.registry)

    def render(self) -> bytes:
        """This service's metrics; under ``serve --workers`` (``PROMETHEUS_MULTIPROC_DIR`` set), summed
        over every worker process, since the one that answers a scrape saw only its share."""
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return generate_latest(self.registry)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_ServiceShare(self.service))
        return generate_latest(registry)


class _ServiceShare:
    """The worker processes' metric files merged (``MultiProcessCollector``), keeping only this
    service's families: the gateway and the world service of each process write to the same files."""

    def __init__(self, service: str) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        for metric in MultiProcessCollector(None).collect():
            if metric.name.startswith("qmtl_http_"):
                metric.samples = [s for s in metric.samples if s.labels.get("service") == self.service]
            elif not metric.name.startswith(f"qmtl_{self.service}_"):
                continue
            yield metric


class GatewayMetrics(ServiceMetrics):
    def __init__(self) -> None:
        super().__init__("gateway")
        r = self.registry
        self.submissions = Counter("qmtl_gateway_submissions", "Strategy submissions answered, by result.",
                                   ["result"], registry=r)
        self.nodeid_mismatches = Counter("qmtl_gateway_nodeid_mismatches",
                                         "Submitted nodes whose NodeID did not match the recomputation.",
                                         registry=r)
        self.checksum_mismatches = Counter("qmtl_gateway_checksum_mismatches",
                                           "Submissions whose DAG checksum did not match.", registry=r)
        self.diff_duration = Histogram("qmtl_gateway_diff_duration_seconds",
                                       "Time to diff a submission against the GSG and persist it (s).",
                                       buckets=LATENCY_BUCKETS_S, registry=r)
        for result in ("created", "existing", "rejected"):
            self.submissions.labels(result=result)


class WorldServiceMetrics(ServiceMetrics):
    def __init__(self) -> None:
        super().__init__("worldservice")
        self.evaluations = Counter("qmtl_worldservice_evaluations", "World-wide evaluations run.",
                                   registry=self.registry)
        self.applies = Counter("qmtl_worldservice_apply_phases", "Apply phases committed, by phase.",
                               ["phase"], registry=self.registry)
        for phase in ("freeze", "switch", "unfreeze"):
            self.applies.labels(phase=phase)


class RequestMetrics(HttpMiddleware):
    """ASGI middleware feeding ``ServiceMetrics.http_*``."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        super().__init__(app)
        self.metrics = metrics

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
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
            m = self.metrics
            m.http_requests.labels(service=m.service, route=route, method=scope["method"],
                                   status=str(status)).inc()
            m.http_duration.labels(service=m.service, route=route).observe(time.perf_counter() - started)
