"""One feed of 1-minute bars serves every source of an instrument whose interval is a multiple of
it (docs/design.md "Live runs"): a 1m + 5m strategy, and a 5m-only one, fed 1m bars with gaps that
skip 5m closes after a history that ends inside a bucket, equal a backtest over history + live bars
bit for bit — outputs, orders and fills — and so does a run stopped and restarted mid-bucket."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

from qmtl.live.bars import Bar
from qmtl.live.gate_state import GateState, StaticGate
from qmtl.live.kernels import LiveError, LiveKernels
from qmtl.live.order_log import FillRecord, OrderLog, OrderRecord
from qmtl.live.process import serve_live
from qmtl.live.runner import LiveRunner

from .conftest import NATS_URL
from .support import (ANY_AGE, MULTI, START, STRATEGY, assert_equal_to_backtest, bars, compile_strategy, drained,
                      expected_orders, frames_from_rows, make_bars_stream, make_log_stream, publish, running)

OPEN = GateState(True, "paper", "active")
FIVE = 300

#: the live tests' strategy (support.STRATEGY, execution nodes included) on 5m bars
SLOW = STRATEGY.replace('interval="60s"', 'interval="5m"')


def _minutes(n_history: int, n_live: int, gaps: list[range]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """1m BTC bars with varied volumes: a history of ``n_history``, then live bars without the
    indices (counted from the first live bar) in ``gaps``."""
    whole = bars(n_history + n_live, seed=17)
    whole["volume"] = np.random.default_rng(17).uniform(1, 20, len(whole)).round(3) + 1 / 3
    history, live = whole.iloc[:n_history], whole.iloc[n_history:]
    skip = {n_history + i for gap in gaps for i in gap}
    return history.reset_index(drop=True), live[~live.index.isin(skip)].reset_index(drop=True)


# the history ends 3 minutes into a 5m bucket: START opens at minute 4 of one, 120 bars later is minute 3
HISTORY_BARS = 120
# the live bars end on a 5m and 15m bucket's close (a backtest ending inside a bucket shows it as a
# bar; live, a bucket is a bar when it closes); live bars 11-13 open a 5m bucket whose closing minute
# (14) and the next bucket's first two are missing; 30-40 skip two whole 5m buckets
GAPS = [range(14, 17), range(30, 41)]


def test_the_history_ends_mid_bucket_and_the_live_gaps_skip_closes():
    history, live = _minutes(HISTORY_BARS, 181, GAPS)
    last = int(history.ts.iloc[-1])
    assert (last + 60) % FIVE != 0 and START % FIVE == 240 and (int(live.ts.iloc[-1]) + 60) % (3 * FIVE) == 0
    skipped = [ts for ts in range(int(live.ts.iloc[0]), int(live.ts.iloc[-1]), 60) if ts not in set(live.ts)]
    assert any((ts + 60) % FIVE == 0 for ts in skipped)


def _live_ticks(live: pd.DataFrame, clock: int) -> list[int]:
    """The bar ts of every tick on ``clock`` that live bars complete (a bucket's ts for 5m)."""
    return sorted({int(ts) // clock * clock for ts in live.ts})


async def _connect():
    import nats
    nc = await nats.connect(NATS_URL)
    return nc, nc.jetstream()


async def _run_with_broker(runner: LiveRunner, js, scope, live: pd.DataFrame) -> list:
    """``live`` through ``runner`` with the simulated broker, and amid them a repeated bar, an older
    one and one off the feed's 1m grid (inside a 5m bucket, still not a feed bar); the log once every
    fillable order is filled."""
    stop = asyncio.Event()
    process = asyncio.create_task(serve_live(runner, ("paper",), stop))
    await asyncio.wait_for(runner.ready.wait(), 60)
    subject = scope.subject("BTC")
    await publish(js, subject, live.iloc[:20])
    off_grid = live.iloc[20:21].assign(ts=lambda f: f.ts + 30)
    await publish(js, subject, pd.concat([live.iloc[19:20], live.iloc[3:4], off_grid]))
    await publish(js, subject, live.iloc[20:])
    await drained(js, scope.stream, runner.durable)
    log = OrderLog(js, scope.world)
    for _ in range(200):
        records = await log.records("paper")
        orders = [r for r in records if isinstance(r, OrderRecord)]
        fills = [r for r in records if isinstance(r, FillRecord)]
        if len(fills) >= sum(o.bar_ts + (o.clock or o.interval) <= int(live.ts.iloc[-1]) for o in orders):
            break
        await asyncio.sleep(0.05)
    stop.set()
    await process
    return records


def _check_fills(records: list, live: pd.DataFrame, clock: int) -> None:
    """Each order fills at the open of the first live bar opening at or after its bar's close (the
    backtest's next bar on the order's clock: a bucket's open is its first bar's), with slippage and fee."""
    orders = [r for r in records if isinstance(r, OrderRecord)]
    fills = {f.order_key: f for f in records if isinstance(f, FillRecord)}
    opens = live.set_index("ts").open
    fillable = [o for o in orders if o.bar_ts + clock <= live.ts.iloc[-1]]
    assert len(fills) == len(fillable) > 0
    for o in fillable:
        at = int(live.ts[live.ts >= o.bar_ts + clock].iloc[0])
        f = fills[o.key]
        price = opens[at] * (1 + np.sign(o.qty) * 1 / 1e4)
        assert f.bar_ts == at and f.price == pytest.approx(price, rel=1e-15)


def _live_and_backtest(scope, tmp_path, source: str, n_live: int) -> tuple[LiveRunner, pd.DataFrame, list, dict]:
    """``source`` run live on ``n_live`` minutes after the history, with the simulated broker: the
    runner, the live bars, the log's records, and the backtest over history + live bars (its outputs
    already checked equal to the live run's, bit for bit)."""
    compiled, _ = compile_strategy(tmp_path, source)
    history, live = _minutes(HISTORY_BARS, n_live, GAPS)
    chunks: list[dict] = []
    runner = LiveRunner(compiled, history, scope.feed("BTC"), scope.world, StaticGate(OPEN),
                        on_rows=lambda key, rows: chunks.append(rows), max_bar_age=ANY_AGE)
    assert runner.kernels.interval == 60

    async def scenario() -> list:
        nc, js = await _connect()
        await make_bars_stream(js, scope)
        await make_log_stream(js, scope)
        records = await _run_with_broker(runner, js, scope, live)
        await nc.close()
        return records

    records = asyncio.run(scenario())
    backtest = compiled.run(pd.concat([history, live], ignore_index=True)).outputs
    assert_equal_to_backtest(frames_from_rows(chunks), backtest)
    assert runner.metrics.bars._value.get() == len(live)
    dropped = {x.labels["reason"]: x.value for x in runner.metrics.dropped.collect()[0].samples
               if x.name.endswith("_total")}
    assert {r: n for r, n in dropped.items() if n} == {"duplicate": 1, "late": 1, "off_grid": 1}
    return runner, live, records, backtest


def test_1m_5m_and_15m_sources_fed_1m_bars_equal_a_backtest(scope, tmp_path):
    runner, live, records, backtest = _live_and_backtest(scope, tmp_path, MULTI, 181)
    buckets = backtest["buckets"]
    assert (buckets.index % FIVE == 0).all() and len(buckets) > 20
    orders = [r for r in records if isinstance(r, OrderRecord)]
    want = expected_orders(backtest["orders"], live.ts.tolist())
    assert {o.bar_ts: o.qty for o in orders} == want and len(want) > 3
    _check_fills(records, live, 60)


def test_a_5m_strategy_fed_1m_bars_equals_a_backtest(scope, tmp_path):
    runner, live, records, backtest = _live_and_backtest(scope, tmp_path, SLOW, 91)
    orders = [r for r in records if isinstance(r, OrderRecord)]
    want = expected_orders(backtest["orders"], _live_ticks(live, FIVE))
    assert {o.bar_ts: o.qty for o in orders} == want and len(want) > 2
    assert all(o.clock == FIVE and o.interval == 60 for o in orders)
    _check_fills(records, live, FIVE)


def test_a_run_restarted_mid_bucket_equals_an_uninterrupted_one(scope, tmp_path):
    """Stopped with a 5m bucket open (its first bars processed, its state stored), started again:
    the new process restores the open bucket from the stored state, and the outputs of both, and
    the orders on the log, are the backtest's."""
    compiled, _ = compile_strategy(tmp_path, MULTI)
    history, live = _minutes(HISTORY_BARS, 181, GAPS)
    cut = 8  # live bars 6-7 open a bucket (minutes 0-1): the restart lands inside it
    assert (int(live.ts.iloc[cut]) // FIVE) == (int(live.ts.iloc[cut - 1]) // FIVE)
    chunks: list[dict] = []
    runners = [LiveRunner(compiled, history, scope.feed("BTC"), scope.world, StaticGate(OPEN),
                          on_rows=lambda key, rows: chunks.append(rows), max_bar_age=ANY_AGE) for _ in range(2)]

    resumed: list[dict] = []

    async def scenario() -> list:
        nc, js = await _connect()
        await make_bars_stream(js, scope)
        await make_log_stream(js, scope)
        for runner, part in zip(runners, (live.iloc[:cut], live.iloc[cut:])):
            async with running(runner):
                resumed.append({v: cols["ts"].tolist() for v, cols in runner.kernels.pending[None].items()})
                await publish(js, scope.subject("BTC"), part)
                await drained(js, scope.stream, runner.durable)
        records = await OrderLog(js, scope.world).records("paper", "orders")
        await nc.close()
        return records

    orders = asyncio.run(scenario())
    # the first started with the history's open 5m and 15m buckets, the second restored the live ones
    # the first left open
    assert [sorted(p.values(), key=len) for p in resumed] == [
        [history.ts.iloc[-4:].tolist(), history.ts.iloc[-14:].tolist()],
        [live.ts.iloc[6:8].tolist(), live.ts.iloc[1:8].tolist()]]
    backtest = compiled.run(pd.concat([history, live], ignore_index=True)).outputs
    assert_equal_to_backtest(frames_from_rows(chunks), backtest)
    want = expected_orders(backtest["orders"], live.ts.tolist())
    assert {o.bar_ts: o.qty for o in orders} == want and len({o.key for o in orders}) == len(orders)


def test_each_instrument_buckets_its_own_feed_bars(tmp_path):
    """Sources fanned out over two instruments at 1m, 5m and 15m: each run key's kernels, fed its own
    bars one at a time, equal the backtest's rows of that instrument (15-bar volume sums included)."""
    compiled = _strategy(tmp_path, "        a = StreamInput(interval='60s', period=2)\n"
                                   "        b = StreamInput(interval='5m', period=2)\n"
                                   "        c = StreamInput(interval='15m', period=2)\n"
                                   "        self.add_nodes([a, b, c, Node(expr={'x': a.close - b.close + c.volume, "
                                   "'v': c.volume, 'o': c.open, 'w': b.volume}, name='n')])\n")
    history, live = _minutes(HISTORY_BARS, 181, GAPS + [range(100, 113)])
    both = lambda frame: pd.concat([frame, frame.assign(  # noqa: E731  (all prices scaled: still bars)
        symbol="ETH", open=frame.open * 1.5, high=frame.high * 1.5, low=frame.low * 1.5, close=frame.close * 1.5,
        volume=frame.volume * 1.37)]).sort_values(["ts", "symbol"])
    kernels = LiveKernels(compiled, both(history))
    chunks = {key: [kernels.warm_up(key)] for key in kernels.feeds}
    for row in both(live).itertuples():
        key = kernels.key_for(row.symbol)
        chunks[key].append(kernels.step(key, Bar(symbol=row.symbol, ts=row.ts, open=row.open, high=row.high,
                                                 low=row.low, close=row.close, volume=row.volume)))
    backtest = compiled.run(pd.concat([both(history), both(live)], ignore_index=True)).outputs["n"]
    assert sorted(chunks) == ["BTC", "ETH"]
    for key, rows in chunks.items():
        mine = backtest[backtest.symbol == key].drop(columns="symbol")
        assert_equal_to_backtest(frames_from_rows(rows), {"n": mine})


def _strategy(tmp_path, body: str):
    return compile_strategy(tmp_path, "from qmtl.runtime.sdk import Strategy, StreamInput, TagQueryNode, Node\n"
                                      "class S(Strategy):\n"
                                      "    def setup(self):\n" + body)[0]


def _e601(compiled, history) -> tuple[str, int]:
    with pytest.raises(LiveError) as info:
        LiveKernels(compiled, history)
    (d,) = info.value.diagnostics
    assert d.code == "E601"
    return d.message, d.loc.line


def test_what_one_feed_cannot_serve_is_E601_at_the_sources_line(tmp_path):
    two = pd.concat([bars(10).assign(symbol=s) for s in ("BTC", "ETH")]).sort_values(["ts", "symbol"])
    pair = _strategy(tmp_path, "        a = StreamInput(tags=['BTC'], interval='60s', period=1)\n"
                               "        b = StreamInput(tags=['ETH'], interval='60s', period=1)\n"
                               "        self.add_nodes([a, b, Node(expr={'r': a.close / b.close}, name='ratio')])\n")
    message, line = _e601(pair, two)
    assert line == 5 and "ETH" in message and "one instrument per run key" in message
    odd = _strategy(tmp_path, "        a = StreamInput(tags=['BTC'], interval='60s', period=1)\n"
                              "        b = StreamInput(tags=['BTC'], interval='90s', period=1)\n"
                              "        self.add_nodes([a, b, Node(expr={'r': a.close / b.close}, name='ratio')])\n")
    message, line = _e601(odd, bars(10))
    assert line == 5 and "90s, not a whole multiple of the feed's 60s" in message
    fine = _strategy(tmp_path, "        a = StreamInput(tags=['BTC'], interval='60s', period=1)\n"
                               "        self.add_nodes([a, Node(expr={'r': a.close * 2}, name='double')])\n")
    coarse = bars(10).iloc[::2]  # 2-minute history: a 1m source is finer than its feed
    message, line = _e601(fine, coarse)
    assert line == 4 and "60s, not a whole multiple of the feed's 120s" in message
    message, line = _e601(fine, bars(10).assign(ts=lambda f: f.ts + 30))  # 1m bars at :30
    assert line == 4 and "not all on the feed's 60s grid" in message
    query = _strategy(tmp_path, "        q = TagQueryNode(query_tags=['BTC'], interval='60s', period=1)\n"
                                "        self.add_nodes([q])\n")
    message, line = _e601(query, bars(10))
    assert line == 4 and "TagQueryNode" in message
