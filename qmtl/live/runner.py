"""The live runner: bars from a feed through the compiled strategy's kernels, orders onto the log.

Per bar, in this order (docs/design.md "Live runs"):

1. parse and check it (``bars``, ``bar_rule``): a malformed, duplicate, late or off-grid bar is
   dropped, counted and logged, and acknowledged so the feed does not send it again;
2. run it through the kernels (``kernels``): the ticks it completes — its own, and before it the
   close of a coarser source's bucket the feed skipped — as one batch;
3. for each row an Execution node emitted at them, size the order against the domain's exposure
   rebuilt from the log (``books.Exposure``) and, if the gate is open and the bar is not older than
   the maximum age (``bar_age``), append it (``order_log``);
4. store the instrument's kernel state (``state_store``);
5. acknowledge the bar.

The process holds its (world, strategy) lock (``lock``) throughout: no bar is handled on a lock it has
not confirmed within the lock's expiry.

A process killed anywhere in 2-5 gets the bar again after its restart: its state is the one before
the bar, its orders are found on the log by their keys and not sent again.  Killed after 5, the bar
is a duplicate of the stored state's last bar.

A strategy with a portfolio-total cap decides an *instant* (every instrument's bar of one ts) at a
time (``instant``): in 2 the bar joins its instant, which runs through the kernels and the held
book (``LiveKernels.step_instant``) once complete or once a later bar arrives, and 3 follows for
each of its bars; 4 stores one entry for the whole run — every instrument's state, the held book and
the bars still waiting — so a restart resumes from one consistent instant.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from qmtl.ir.dag import strategy_id
from qmtl.ir.ops import order_for

from .bar_age import STALE_REASON, BarAge, checked_max_age
from .bar_rule import FUTURE_SKEW_S, BarSequence
from .bars import BadBar, Bar, parse_bar
from .books import Exposure
from .connection import connect
from .feed import BarRef, FeedAddress, FeedMessage, JetStreamFeed
from .gate_state import OrderGate
from .instant import Instant
from .kernels import LiveKernels, Rows
from .lock import ProcessLock
from .metrics import LiveMetrics
from .order_log import OrderLog, OrderRecord, check_token, order_key
from .state_store import KeyState, StateStore, book_state_key, state_key

log = logging.getLogger("qmtl.live")

#: seconds one wait for the next bar lasts before the runner checks whether it should stop
_POLL_S = 0.25


def live_strategy_id(compiled: Any) -> str:
    """The id a live process of ``compiled`` goes by: the gateway's, derived from its DAG document,
    so the world's decision about the submitted strategy is the decision about this process."""
    return strategy_id(compiled.dag["checksum"], compiled.dag["outputs"])


class LiveRunner:
    """``compiled`` on the bars of ``feed`` (``nats://host:port/subject``) for ``world``, warmed up on
    ``history`` (anything the data loader reads), sending orders while ``gate`` is open.

    ``on_rows(key, rows)`` sees what every output emitted: over the history at the warm-up, then at
    each live bar.  The feed's bars are of the history's interval (``LiveKernels``).  ``max_bar_age``:
    seconds after its close a bar's orders are still sent (None: ``bar_age``'s default of a few feed
    intervals; ``math.inf``: any age)."""

    def __init__(self, compiled: Any, history: Any, feed: str, world: str, gate: OrderGate, *,
                 metrics: LiveMetrics | None = None,
                 on_rows: Callable[[Any, Rows], None] | None = None,
                 max_bar_age: float | None = None) -> None:
        self.address = FeedAddress.parse(feed)
        self.world = check_token(world, "world")
        self.kernels = LiveKernels(compiled, history)
        token = self.address.subject.rsplit(".", 1)[-1]
        self.kernels.name_unnamed(None if token in ("*", ">") else token)
        self.strategy = live_strategy_id(compiled)
        self.gate = gate
        self.metrics = metrics or LiveMetrics()
        self.on_rows = on_rows or (lambda key, rows: None)
        self.durable = f"qmtl_{self.world}_{self.strategy.removeprefix('blake3:')[:16]}"
        self.sequence = BarSequence(self.kernels.interval)
        self.bar_age = BarAge(self.kernels.interval, checked_max_age(max_bar_age, self.kernels.interval))
        self.ready = asyncio.Event()
        self._exposure: dict[str, Exposure] = {}
        self._log: OrderLog | None = None
        self._store: StateStore | None = None
        self._lock: ProcessLock | None = None
        #: with a cap: the instant waiting for its bars, and the ts of the last one decided
        self._instant = Instant()
        self._decided: int | None = None

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until ``stop`` is set (or forever)."""
        stop = stop or asyncio.Event()
        nc = await connect(self.address.server, f"qmtl-live-{self.world}")
        try:
            js = nc.jetstream()
            # the lock first: the state and the log are read only once no other process writes them
            self._lock = await ProcessLock.acquire(js, self.world, self.strategy)
            keeper = asyncio.create_task(self._lock.keep())
            try:
                self._log = OrderLog(js, self.world)
                self._store = await StateStore.open(js)
                await self._start()
                feed = await JetStreamFeed.open(js, self.address.subject, self.durable, self._deliver_from())
                self.ready.set()
                log.info("live: %s in world %s on %s (consumer %s)", self.strategy, self.world,
                         self.address.subject, self.durable)
                try:
                    while not stop.is_set():
                        if keeper.done():
                            keeper.result()  # the lock was lost: raised here, the process stops
                        msg = await feed.next(_POLL_S)
                        if msg is not None:
                            self._lock.check()  # no bar, hence no order, on a lock not confirmed in time
                            await self._handle(msg)
                finally:
                    await feed.close()
            finally:
                keeper.cancel()
                await asyncio.gather(keeper, return_exceptions=True)
                await self._lock.release()
        finally:
            await nc.close()

    async def _start(self) -> None:
        """Each instrument from its stored state when that is of these kernels and not older than
        the history, else warmed up on the history."""
        k = self.kernels
        if k.capped:
            return await self._start_book()
        for key in k.history:
            saved = await self._store.load(self._state_key(key))
            end = k.history_end(key)
            if saved is not None and saved.digest == k.digest and (end is None or saved.last_ts >= end):
                k.restore(key, saved.snapshot)
                self.sequence.advance(key, saved.last_ts)
                continue
            # in a thread: the lock's refreshes go on while a long history runs
            self.on_rows(key, await asyncio.to_thread(k.warm_up, key))
            if end is not None:
                self.sequence.advance(key, end)

    async def _start_book(self) -> None:
        """With a cap: every instrument, the held book and the waiting bars from the one stored entry
        when it is of these kernels and not older than the history, else all warmed up together."""
        k = self.kernels
        saved = await self._store.load(book_state_key(self.world, self.strategy))
        ends = {key: k.history_end(key) for key in k.history}
        if saved is not None and saved.digest == k.digest and all(
                end is None or saved.snapshot["seen"].get(key, end - 1) >= end for key, end in ends.items()):
            for key in k.history:
                k.restore(key, saved.snapshot["keys"][key])
            k.restore_book(saved.snapshot["book"])
            self._instant = Instant.restored(saved.snapshot["instant"])
            self._decided = saved.snapshot["decided"]
            for key, ts in saved.snapshot["seen"].items():
                self.sequence.advance(key, ts)
            return
        for key, rows in (await asyncio.to_thread(k.warm_up_all)).items():
            self.on_rows(key, rows)
        for key, end in ends.items():
            if end is not None:
                self.sequence.advance(key, end)

    def _deliver_from(self) -> int | None:
        """Where a new consumer starts on the feed's stream (epoch seconds of the server's publish
        time; None: at its first message): shortly before the history's end, so days of bars the
        warm-up already covered are not delivered only to be dropped as late.  A bar after the
        history closes a whole interval after its end and is published no earlier; the margin of
        one more interval (at least ``FUTURE_SKEW_S``) absorbs a publisher or server clock that is
        off.  An instrument without history means every bar is wanted: from the first."""
        ends = [self.kernels.history_end(key) for key in self.kernels.history]
        if not ends or any(end is None for end in ends):
            return None
        return min(ends) - max(FUTURE_SKEW_S, self.kernels.interval)

    def _state_key(self, key: Any) -> str:
        return state_key(self.world, self.strategy, key)

    async def _handle(self, msg: FeedMessage) -> None:
        admitted = self._admit(msg)
        if admitted is not None and self.kernels.capped:
            await self._join(*admitted, msg)
        elif admitted is not None:
            bar, key = admitted
            rows = self.kernels.step(key, bar)
            self.metrics.bars.inc()
            self.on_rows(key, rows)
            await self._orders(bar, key, rows, msg.ref)
            self.sequence.advance(key, bar.ts)
            await self._store.save(self._state_key(key), KeyState(self.kernels.digest, bar.ts,
                                                                  self.kernels.snapshot(key)))
        await msg.ack()

    async def _join(self, bar: Bar, key: Any, msg: FeedMessage) -> None:
        """With a cap: ``bar`` joins its instant (``instant``); the instant before it is decided when
        a later bar arrives, and its own once every instrument's bar is there; then the whole state
        is stored."""
        if self._decided is not None and bar.ts <= self._decided:
            self._drop("late", f"{bar.symbol} ts={bar.ts}: the portfolio cap already decided the instant "
                       f"ts={self._decided} without it", msg)
            return
        if self._instant.ts is not None and bar.ts > self._instant.ts:
            await self._decide()
        self._instant.add(key, bar, msg.ref)
        self.sequence.advance(key, bar.ts)
        if self._instant.complete(self.kernels.history):
            await self._decide()
        k = self.kernels
        snapshot = {"keys": {key: k.snapshot(key) for key in k.history}, "book": k.snapshot_book(),
                    "instant": self._instant.snapshot(), "decided": self._decided, "seen": dict(self.sequence.last)}
        await self._store.save(book_state_key(self.world, self.strategy),
                               KeyState(k.digest, -1 if self._decided is None else self._decided, snapshot))

    async def _decide(self) -> None:
        """Run the waiting instant's bars through the kernels and the held book, and send their orders."""
        waiting, self._instant = self._instant, Instant()
        rows = self.kernels.step_instant({key: bar for key, (bar, _ref) in waiting.bars.items()})
        for key, (bar, ref) in waiting.bars.items():
            self.metrics.bars.inc()
            self.on_rows(key, rows[key])
            await self._orders(bar, key, rows[key], ref)
        self._decided = waiting.ts

    def _admit(self, msg: FeedMessage) -> tuple[Bar, Any] | None:
        """The bar in ``msg`` and its run key, or None when the rule drops it (counted and logged)."""
        try:
            bar = parse_bar(msg.payload, msg.ref.subject)
        except BadBar as exc:
            return self._drop(exc.reason, str(exc), msg)
        try:
            key = self.kernels.key_for(bar.symbol)
        except KeyError:
            return self._drop("unknown_instrument", f"{bar.symbol}: not an instrument this strategy reads", msg)
        missing = self.kernels.missing_field(bar)
        if missing is not None:
            return self._drop("malformed", f"{bar.symbol} ts={bar.ts}: no field {missing!r} (the history has it)",
                              msg)
        reason = self.sequence.reject(key, bar.ts)
        if reason is not None:
            return self._drop(reason, f"{bar.symbol} ts={bar.ts}: last processed ts={self.sequence.last.get(key)}",
                              msg)
        return bar, key

    def _drop(self, reason: str, detail: str, msg: FeedMessage) -> None:
        self.metrics.dropped.labels(reason=reason).inc()
        # a repeat or an older bar is what a restart or a first start over a long stream brings: a
        # note; a bar that is not one, or that this strategy cannot take, is the feed's fault: a warning
        level = logging.INFO if reason in ("duplicate", "late") else logging.WARNING
        log.log(level, "live: bar dropped (%s) at %s seq %d: %s", reason, msg.ref.stream, msg.ref.seq, detail)
        return None

    async def _orders(self, bar: Bar, key: Any, rows: Rows, ref: BarRef) -> None:
        """Append the order of each row an Execution node emitted at ``bar``'s ticks (gate permitting).

        The live book follows the simulated one: its target is the simulated position after the
        node's order at that row's bar, and the order is that target minus the domain's exposure on
        the log, so bars spent with the gate closed, or too old for orders (``bar_age``: counted as
        gated, ``stale_bar``), are caught up by the first order after it opens."""
        instrument = bar.symbol if key is None else str(key)
        gate = None
        stale: str | None = None  # why the bar is too old for orders ("" when it is not), asked once
        for name, op in self.kernels.executions.items():
            ts, cols = rows.get(name, (None, None))
            for i in range(0 if ts is None else len(ts)):
                bar_ts = int(ts[i])
                target = float(cols["position"][i] + cols["order_qty"][i])
                gate = gate or self.gate.state()
                if not gate.open or gate.domain is None:
                    if cols["order_qty"][i] != 0.0:
                        self.metrics.gated.labels(reason=gate.reason).inc()
                        log.info("live: order of %s for %s at ts=%d not sent: gate closed (%s: %s)", name,
                                 instrument, bar_ts, gate.reason, gate.detail)
                    continue
                stale = self.bar_age.stale(bar.ts) if stale is None else stale
                if stale:
                    if cols["order_qty"][i] != 0.0:
                        self.metrics.gated.labels(reason=STALE_REASON).inc()
                        log.info("live: order of %s for %s at ts=%d not sent: %s (%s)", name, instrument,
                                 bar_ts, STALE_REASON, stale)
                    continue
                exposure = await self._exposure_in(gate.domain)
                okey = order_key(self.strategy, op.node_id, instrument, bar_ts)
                if okey in exposure.keys:
                    self.metrics.already.inc()
                    continue
                qty = order_for(target, exposure.position(op.node_id, instrument, bar_ts))
                if qty == 0.0:
                    continue
                order = OrderRecord(key=okey, strategy=self.strategy, node=name, node_id=op.node_id,
                                    instrument=instrument, bar_ts=bar_ts, interval=self.kernels.interval,
                                    clock=self.kernels.clocks[name], qty=qty, target=target, world=self.world,
                                    domain=gate.domain, fee_bps=float(op.attr("fee_bps", 0.0)),
                                    slippage_bps=float(op.attr("slippage_bps", 0.0)), bar=ref,
                                    sent_at=time.time())
                await self._log.append(order)
                exposure.add(order)
                self.metrics.orders.labels(domain=gate.domain).inc()

    async def _exposure_in(self, domain: str) -> Exposure:
        """This strategy's exposure in ``domain``, read from the log the first time it is needed."""
        if domain not in self._exposure:
            self._exposure[domain] = Exposure.from_log(self.strategy, await self._log.records(domain, "orders"))
        return self._exposure[domain]
