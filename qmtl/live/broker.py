"""Brokers: what turns a world's logged orders into fills.

``BrokerAdapter`` is the seam a real broker plugs into: ``execute(order)`` places the order (its
``key`` is the client order id a broker dedupes on, so placing it twice after a restart is one
order) and returns its fill once there is one, or None while it is working.  ``serve`` runs any
adapter on a domain's log: a durable consumer on ``{world}.{domain}.orders``; each fill is appended
with a key derived from its order's, and the order is acknowledged only after that, so a broker
killed anywhere neither loses nor repeats a fill (fills on the log are read first, as the runner
reads its orders).

``SimulatedBroker`` fills by the backtest's cost model (``qmtl.ir.ops.fill_terms``): a market order
decided at a bar's close fills at the next bar's open of its instrument, with slippage and fees:
the first feed bar opening at or after that close (for an order on a coarser clock than the feed's,
the open of the next bucket the feed has a bar in — binding's bucket's open).  It keeps no bars: it
looks the next bar up on the feed's stream after the order's bar.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from qmtl.ir.ops import fill_terms

from .bar_rule import BarSequence
from .bars import BadBar, Bar, parse_bar
from .metrics import LiveMetrics
from .order_log import FillRecord, OrderLog, OrderRecord, fill_key, parse_record

log = logging.getLogger("qmtl.live.broker")

#: seconds before an order with no next bar yet is looked at again, doubling per delivery up to
#: ``RETRY_MAX_S`` (an order of the feed's last bar waits for the next bar without spinning)
RETRY_S = 0.05
RETRY_MAX_S = 2.0


class BrokerAdapter(Protocol):
    async def execute(self, order: OrderRecord) -> FillRecord | None:
        """Place ``order`` (idempotently, by its key); its fill, or None while it has none."""
        ...


class SimulatedBroker:
    """Fills at the open of the bar after the order's, on the feed's JetStream stream ``js``."""

    def __init__(self, js: Any) -> None:
        self.js = js

    async def execute(self, order: OrderRecord) -> FillRecord | None:
        bar = await self._next_bar(order)
        if bar is None:
            return None
        price, fee = fill_terms(order.qty, bar.open, order.fee_bps, order.slippage_bps)
        return FillRecord(key=fill_key(order.key), order_key=order.key, strategy=order.strategy, node=order.node,
                          instrument=order.instrument, bar_ts=bar.ts, qty=order.qty, price=price, fee=fee,
                          world=order.world, domain=order.domain, filled_at=time.time())

    async def _next_bar(self, order: OrderRecord) -> Bar | None:
        """The first bar of the order's instrument opening at or after its bar's close, on the order
        bar's subject, that the runner's rule admits (``bar_rule``): on the feed's grid."""
        from nats.js.errors import NotFoundError
        closed = order.bar_ts + (order.clock or order.interval)
        rule = BarSequence(order.interval, {order.instrument: closed - order.interval})
        seq = order.bar.seq  # a bar after a gap can itself be the next bucket's first
        while True:
            try:
                raw = await self.js.get_msg(order.bar.stream, seq=seq, subject=order.bar.subject, next=True)
            except NotFoundError:
                return None
            seq = raw.seq + 1
            try:
                bar = parse_bar(raw.data or b"", raw.subject)
            except BadBar:
                continue
            if bar.symbol.lower() == order.instrument.lower() and rule.reject(order.instrument, bar.ts) is None:
                return bar


async def serve(js: Any, world: str, domain: str, adapter: BrokerAdapter, stop: asyncio.Event,
                metrics: LiveMetrics | None = None, name: str = "sim") -> None:
    """Fill ``world``'s orders in ``domain`` through ``adapter`` until ``stop`` is set.  ``name``
    names the durable consumer: brokers of one name share the domain's orders between them."""
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.api import AckPolicy, ConsumerConfig
    order_log = OrderLog(js, world)
    stream = await order_log.ensure(domain)
    subject = order_log.subject(domain, "orders")
    filled = {r.order_key for r in await order_log.records(domain, "fills") if isinstance(r, FillRecord)}
    sub = await js.pull_subscribe(subject, durable=f"qmtl_broker_{name}_{domain}", stream=stream,
                                  config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=30.0))
    try:
        while not stop.is_set():
            try:
                msgs = await sub.fetch(32, timeout=0.25)
            except (NatsTimeout, asyncio.TimeoutError):
                continue
            for msg in msgs:
                order = parse_record(msg.data, msg.subject)
                if not isinstance(order, OrderRecord):
                    log.warning("broker: %s seq %d is not an order; skipped", subject, msg.metadata.sequence.stream)
                    await msg.term()
                    continue
                if order.key in filled:
                    await msg.ack()
                    continue
                fill = await adapter.execute(order)
                if fill is None:
                    await msg.nak(delay=min(RETRY_S * 2 ** (msg.metadata.num_delivered - 1), RETRY_MAX_S))
                    continue
                await order_log.append(fill)
                filled.add(order.key)
                if metrics is not None:
                    metrics.fills.labels(domain=domain).inc()
                await msg.ack()
    finally:
        await sub.unsubscribe()
