"""A live run on the real NATS JetStream server equals a backtest over history + live bars, sends the
orders the live rule derives from it, drops bad bars by the stated rule, and follows its gate."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pandas as pd
import pytest

from qmtl.live.books import book
from qmtl.live.gate_state import GateState, StaticGate
from qmtl.live.order_log import FillRecord, OrderLog, OrderRecord, fill_key
from qmtl.live.process import serve_live
from qmtl.live.runner import LiveRunner

from .conftest import NATS_URL
from .support import (ANY_AGE, assert_equal_to_backtest, bars, compile_strategy, drained, expected_orders,
                      frames_from_rows,
                      make_bars_stream, make_log_stream, publish, running)

OPEN = GateState(True, "paper", "active")


async def _connect():
    import nats
    nc = await nats.connect(NATS_URL)
    return nc, nc.jetstream()


def test_live_outputs_orders_and_fills_equal_a_backtest(scope, tmp_path):
    compiled, _ = compile_strategy(tmp_path)
    history, live = bars(120), bars(40, first=120)
    chunks: list[dict] = []
    runner = LiveRunner(compiled, history, scope.feed("BTC"), scope.world, StaticGate(OPEN),
                        on_rows=lambda key, rows: chunks.append(rows), max_bar_age=ANY_AGE)

    async def scenario() -> list:
        nc, js = await _connect()
        await make_bars_stream(js, scope)
        await make_log_stream(js, scope)
        stop = asyncio.Event()
        process = asyncio.create_task(serve_live(runner, ("paper",), stop))  # runner + simulated broker
        await asyncio.wait_for(runner.ready.wait(), 60)
        subject = scope.subject("BTC")
        await publish(js, subject, live.iloc[:20])
        # the stated rule: a redelivered bar, an older one, one inside the history, off the grid,
        # and messages that are not bars are dropped and counted; none reaches the kernels
        for junk in (live.iloc[19:20], live.iloc[5:6], history.iloc[-1:]):
            await publish(js, subject, junk)
        for raw in (b"{not json", b'{"ts": 1, "open": "x"}', json.dumps([1, 2]).encode(),
                    json.dumps({"ts": int(live.ts.iloc[20]) + 1, "open": 1, "high": 1, "low": 1, "close": 1,
                                "volume": 1}).encode()):
            await js.publish(subject, raw)
        await publish(js, subject, live.iloc[20:])
        await drained(js, scope.stream, runner.durable)
        log = OrderLog(js, scope.world)
        last = int(live.ts.iloc[-1])
        for _ in range(200):  # the broker fills every order but the last bar's (it has no next bar)
            records = await log.records("paper")
            fillable = sum(isinstance(r, OrderRecord) and r.bar_ts < last for r in records)
            if sum(isinstance(r, FillRecord) for r in records) >= fillable:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await process
        await nc.close()
        return records

    records = asyncio.run(scenario())

    backtest = compiled.run(pd.concat([history, live], ignore_index=True)).outputs
    assert_equal_to_backtest(frames_from_rows(chunks), backtest)

    m = runner.metrics
    assert m.bars._value.get() == len(live)
    dropped = {s.labels["reason"]: s.value for s in m.dropped.collect()[0].samples if s.name.endswith("_total")}
    assert dropped == {"duplicate": 1, "late": 2, "malformed": 3, "off_grid": 1, "future": 0, "unknown_instrument": 0}

    orders = [r for r in records if isinstance(r, OrderRecord)]
    want = expected_orders(backtest["orders"], live.ts.tolist())
    assert {o.bar_ts: o.qty for o in orders} == want and len(want) > 10
    assert len({o.key for o in orders}) == len(orders)

    fills = {f.order_key: f for f in records if isinstance(f, FillRecord)}
    opens = live.set_index("ts").open
    fillable = [o for o in orders if o.bar_ts < live.ts.iloc[-1]]
    assert len(fills) == len(fillable)
    for o in fillable:
        f = fills[o.key]
        assert f.key == fill_key(o.key) and f.bar_ts == o.bar_ts + 60
        price = opens[f.bar_ts] * (1 + np.sign(o.qty) * 1 / 1e4)
        assert f.price == pytest.approx(price, rel=1e-15) and f.fee == pytest.approx(abs(o.qty) * price * 2 / 1e4)
    assert m.fills.labels(domain="paper")._value.get() == len(fillable)
    (position,) = book(records).values()
    assert position.qty == pytest.approx(sum(o.qty for o in fillable))
    assert position.fees == pytest.approx(sum(f.fee for f in fills.values()))


class _Switch:
    """A gate the test opens and closes between bursts of bars."""

    def __init__(self, state: GateState) -> None:
        self.now = state

    def state(self) -> GateState:
        return self.now


def test_orders_stop_while_the_gate_is_closed_and_catch_up_when_it_opens(scope, tmp_path):
    compiled, _ = compile_strategy(tmp_path)
    history, live = bars(60, seed=3), bars(45, first=60, seed=3)
    gate = _Switch(OPEN)
    runner = LiveRunner(compiled, history, scope.feed("BTC"), scope.world, gate, max_bar_age=ANY_AGE)
    closed = set(live.ts.iloc[15:30])

    async def scenario() -> list:
        nc, js = await _connect()
        await make_bars_stream(js, scope)
        async with running(runner):
            for lo, hi, state in ((0, 15, OPEN), (15, 30, GateState(False, "paper", "frozen")), (30, 45, OPEN)):
                gate.now = state
                await publish(js, scope.subject("BTC"), live.iloc[lo:hi])
                await drained(js, scope.stream, runner.durable)
        records = await OrderLog(js, scope.world).records("paper", "orders")
        await nc.close()
        return records

    orders = asyncio.run(scenario())
    execution = compiled.run(pd.concat([history, live], ignore_index=True)).outputs["orders"]
    want = expected_orders(execution, live.ts.tolist(), gate_open=lambda ts: ts not in closed)
    assert {o.bar_ts: o.qty for o in orders} == want
    assert not closed & {o.bar_ts for o in orders}
    # what the simulated book traded while closed was counted, not sent
    traded_while_closed = int((execution.loc[sorted(closed), "order_qty"] != 0).sum())
    assert runner.metrics.gated.labels(reason="frozen")._value.get() == traded_while_closed > 0
    # the first order after reopening takes the live book to the simulated target in one step
    first = min((o for o in orders if o.bar_ts > max(closed)), key=lambda o: o.bar_ts)
    target = execution.position + execution.order_qty
    assert sum(o.qty for o in orders if o.bar_ts <= first.bar_ts) == pytest.approx(target[first.bar_ts])


def test_bars_older_than_the_maximum_age_run_through_the_kernels_but_send_no_order(scope, tmp_path):
    """A new process on a stream holding old bars: every bar runs through the kernels (outputs equal the
    backtest), but the orders of bars that closed more than ``max_bar_age`` ago are counted as gated
    (``stale_bar``) and not sent; the first fresh bar's order takes the book to the simulated target.
    Bars here are of the last two hours, on the wall clock: 15 that closed over 40 minutes ago, then 15
    whose last closed at most a minute ago; 20 minutes is the maximum age."""
    compiled, _ = compile_strategy(tmp_path)
    now = int(time.time()) // 60 * 60
    shift = now - 60 - int(bars(1, first=79).ts.iloc[0])  # the last fresh bar opens a minute before now
    gap = 45 * 60  # between the old bars and the fresh ones
    history = bars(50, seed=9).assign(ts=lambda f: f.ts + shift - gap)
    old = bars(15, first=50, seed=9).assign(ts=lambda f: f.ts + shift - gap)
    fresh = bars(15, first=65, seed=9).assign(ts=lambda f: f.ts + shift)
    live = pd.concat([old, fresh], ignore_index=True)
    chunks: list[dict] = []
    runner = LiveRunner(compiled, history, scope.feed("BTC"), scope.world, StaticGate(OPEN),
                        on_rows=lambda key, rows: chunks.append(rows), max_bar_age=20 * 60)

    async def scenario() -> tuple[list, object]:
        nc, js = await _connect()
        await make_bars_stream(js, scope)
        await make_log_stream(js, scope)
        async with running(runner):
            await publish(js, scope.subject("BTC"), live)
            await drained(js, scope.stream, runner.durable)
        records = await OrderLog(js, scope.world).records("paper", "orders")
        consumer = await js.consumer_info(scope.stream, runner.durable)
        await nc.close()
        return records, consumer

    orders, consumer = asyncio.run(scenario())
    backtest = compiled.run(pd.concat([history, live], ignore_index=True)).outputs
    assert_equal_to_backtest(frames_from_rows(chunks), backtest)
    assert runner.metrics.bars._value.get() == len(live)
    stale = set(old.ts.tolist())
    execution = backtest["orders"]
    want = expected_orders(execution, live.ts.tolist(), gate_open=lambda ts: ts not in stale)
    assert want and {o.bar_ts: o.qty for o in orders} == want
    # counted as a closed gate counts: each order the simulated book made at a stale bar
    traded_while_stale = int((execution.loc[sorted(stale), "order_qty"] != 0).sum())
    assert runner.metrics.gated.labels(reason="stale_bar")._value.get() == traded_while_stale > 0
    first = min((o for o in orders if o.bar_ts > max(stale)), key=lambda o: o.bar_ts)
    target = execution.position + execution.order_qty
    assert first.qty == pytest.approx(target[first.bar_ts])  # flat until then: one step to the target
    # a brand-new consumer starts at the history's end (less a margin), not at the stream's first bar
    from nats.js.api import DeliverPolicy
    assert consumer.config.deliver_policy == DeliverPolicy.BY_START_TIME
    assert consumer.config.opt_start_time.timestamp() == int(history.ts.iloc[-1]) - 60


MANY = '''
from qmtl.runtime.sdk import Strategy, StreamInput, Node, RiskControl, Execution

class Many(Strategy):
    def setup(self):
        price = StreamInput(interval="60s", period=3)
        signal = Node(expr={"signal": (price.close.diff() > 0).astype(float) * 2 - 1}, name="signal")
        risk = RiskControl(signal, max_position=5, max_notional=1_000)
        orders = Execution(risk, fee_bps=2, slippage_bps=1)
        self.add_nodes([price, signal, risk, orders])
'''


def test_one_feed_of_several_instruments_runs_each_on_its_own_state(scope, tmp_path):
    import qmtl
    path = tmp_path / "many.py"
    path.write_text(MANY)
    compiled = qmtl.compile(str(path))
    data = {s: (bars(30, seed=i), bars(12, first=30, seed=i)) for i, s in enumerate(("BTC", "ETH"), 21)}
    frame = lambda part: pd.concat([d[part].assign(symbol=s) for s, d in data.items()]).sort_values(["ts", "symbol"])
    chunks: dict = {"BTC": [], "ETH": []}
    runner = LiveRunner(compiled, frame(0), f"{NATS_URL}/{scope.prefix}.bars.*", scope.world, StaticGate(OPEN),
                        on_rows=lambda key, rows: chunks[key].append(rows), max_bar_age=ANY_AGE)

    async def scenario() -> list:
        nc, js = await _connect()
        await make_bars_stream(js, scope)
        async with running(runner):
            for i in range(12):  # the instruments' bars interleaved on their own subjects
                for symbol, (_, live) in data.items():
                    await publish(js, scope.subject(symbol), live.iloc[i:i + 1])
            await drained(js, scope.stream, runner.durable)
        records = await OrderLog(js, scope.world).records("paper", "orders")
        await nc.close()
        return records

    orders = asyncio.run(scenario())
    backtest = compiled.run(pd.concat([frame(0), frame(1)])).outputs
    for symbol, (_, live) in data.items():
        seen = frames_from_rows(chunks[symbol])
        for name, whole in backtest.items():
            mine = whole[whole.symbol == symbol].drop(columns="symbol")
            assert seen[name].index.tolist() == mine.index.tolist(), (symbol, name)
            for col in mine.columns:
                np.testing.assert_array_equal(seen[name][col].to_numpy(), mine[col].to_numpy())
        execution = backtest["orders"][backtest["orders"].symbol == symbol]
        want = expected_orders(execution, live.ts.tolist())
        assert {o.bar_ts: o.qty for o in orders if o.instrument == symbol} == want and want
