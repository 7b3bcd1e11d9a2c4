"""Prometheus metrics of a live process: what arrived, what was dropped and why, what was sent and
what the gate held back.  One ``CollectorRegistry`` per process object (two runners in one test
process never collide), every series declared up front so a dashboard tells "none" from "missing"."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest

from .bar_age import STALE_REASON

#: why a bar was dropped (``bar_rule`` and ``bars``): declared up front as label values
DROP_REASONS = ("malformed", "duplicate", "late", "off_grid", "future", "unknown_instrument")


class LiveMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.bars = Counter("qmtl_live_bars_processed", "Bars that ran through the kernels.", registry=r)
        self.dropped = Counter("qmtl_live_bars_dropped", "Bars dropped, by reason.", ["reason"], registry=r)
        self.orders = Counter("qmtl_live_orders_sent", "Orders appended to the log, by domain.", ["domain"],
                              registry=r)
        self.gated = Counter("qmtl_live_orders_gated", "Orders not sent because the gate was closed (by "
                             "the gate's reason) or their bar was older than --max-bar-age (stale_bar).",
                             ["reason"], registry=r)
        self.already = Counter("qmtl_live_orders_already_logged", "Orders found on the log already "
                               "(a bar processed again after a restart), not sent again.", registry=r)
        self.fills = Counter("qmtl_live_fills", "Fills a broker appended to the log, by domain.", ["domain"],
                             registry=r)
        for reason in DROP_REASONS:
            self.dropped.labels(reason=reason)
        self.gated.labels(reason=STALE_REASON)

    def render(self) -> bytes:
        return generate_latest(self.registry)
