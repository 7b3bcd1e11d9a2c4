"""What the live tests share: a strategy with execution nodes, bars, publishing, waiting for a
consumer to drain, and the orders a live run must send, derived from a backtest."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

import qmtl
from qmtl.ir.ops import order_for

INTERVAL = 60
START = 1_700_000_040 // INTERVAL * INTERVAL
#: ``max_bar_age`` for runs over these bars: they are of November 2023, far older than the default
#: maximum age of a bar whose orders are sent (``qmtl.live.bar_age``), which has tests of its own
ANY_AGE = math.inf

STRATEGY = '''
from qmtl.runtime.sdk import Strategy, StreamInput, Node, RiskControl, TimingGate, Execution

class Flip(Strategy):
    def setup(self):
        price = StreamInput(tags=["BTC"], interval="60s", period=3)
        signal = Node(expr={"signal": (price.close.diff() > 0).astype(float) * 2 - 1}, name="signal")
        risk = RiskControl(signal, max_position=5, max_notional=1_000)
        timing = TimingGate(risk, sessions=["00:00-24:00 UTC"])
        orders = Execution(timing, order_type="market", fee_bps=2, slippage_bps=1)
        self.add_nodes([price, signal, risk, timing, orders])
'''

#: BTC read at 1m, 5m and 15m from one feed of 1m bars; execution nodes on the 1m clock
MULTI = '''
from qmtl.runtime.sdk import Strategy, StreamInput, Node, RiskControl, TimingGate, Execution

class Multi(Strategy):
    def setup(self):
        fast = StreamInput(tags=["BTC"], interval="60s", period=3)
        slow = StreamInput(tags=["BTC"], interval="5m", period=2)
        slower = StreamInput(tags=["BTC"], interval="15m", period=2)
        buckets = Node(expr={"open": slow.open, "range": slow.high - slow.low, "volume": slow.volume,
                             "close": slow.close, "volume_15m": slower.volume, "high_15m": slower.high},
                       name="buckets")
        signal = Node(expr={"signal": ((fast.close - slow.close) > 0).astype(float) * 2 - 1}, name="signal")
        risk = RiskControl(signal, max_position=5, max_notional=1_000, price=fast)
        timing = TimingGate(risk, sessions=["00:00-24:00 UTC"], price=fast)
        orders = Execution(timing, order_type="market", fee_bps=2, slippage_bps=1, price=fast)
        self.add_nodes([fast, slow, slower, buckets, signal, risk, timing, orders])
'''


def compile_strategy(folder: Path, source: str = STRATEGY):
    path = folder / "flip.py"
    path.write_text(source)
    return qmtl.compile(str(path)), path


def bars(n: int, first: int = 0, seed: int = 7) -> pd.DataFrame:
    """``n`` one-minute BTC bars starting at bar index ``first`` (a random walk; one seed, one walk)."""
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 1, first + n + 1))[first + 1:]
    open_ = close + rng.normal(0, 0.3, first + n + 1)[first + 1:]
    ts = START + INTERVAL * np.arange(first, first + n, dtype=np.int64)
    return pd.DataFrame({"ts": ts, "symbol": "BTC", "open": open_, "high": np.maximum(open_, close) + 0.5,
                         "low": np.minimum(open_, close) - 0.5, "close": close, "volume": 10.0})


def bar_json(row: pd.Series) -> bytes:
    return json.dumps({"ts": int(row.ts), "open": float(row.open), "high": float(row.high),
                       "low": float(row.low), "close": float(row.close), "volume": float(row.volume)}).encode()


async def make_bars_stream(js, scope) -> None:
    await js.add_stream(name=scope.stream, subjects=[f"{scope.prefix}.bars.>"])


async def make_log_stream(js, scope, domain: str = "paper", duplicate_window: float = 0.1) -> None:
    """The domain's log stream made first with the shortest duplicate window the server allows (100 ms), so what the
    tests see is the runner's own restart safety, not the server's dedupe."""
    await js.add_stream(name=f"QMTL_{scope.world}_{domain}",
                        subjects=[f"{scope.world}.{domain}.orders", f"{scope.world}.{domain}.fills"],
                        duplicate_window=duplicate_window)


async def publish(js, subject: str, frame: pd.DataFrame) -> None:
    for _, row in frame.iterrows():
        await js.publish(subject, bar_json(row))


async def drained(js, stream: str, durable: str, timeout: float = 60.0) -> None:
    """Wait until the consumer has acknowledged everything on its subject."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            info = await js.consumer_info(stream, durable)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return
        except Exception:  # not created yet
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"consumer {durable} did not drain within {timeout}s")


@contextlib.asynccontextmanager
async def running(runner):
    """``runner`` running on this loop from its warm-up until the block ends."""
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    await asyncio.wait_for(runner.ready.wait(), 60)
    try:
        yield
    finally:
        stop.set()
        await task


def expected_orders(execution: pd.DataFrame, live_ts: list[int], gate_open=lambda ts: True) -> dict[int, float]:
    """bar ts → order qty a live run sends, from a backtest's Execution frame: the live book follows
    the simulated position after each bar's order, starting flat at the first live bar, and sends
    nothing while the gate is closed."""
    target = execution["position"] + execution["order_qty"]
    held, out = 0.0, {}
    for ts in live_ts:
        if not gate_open(ts) or ts not in target.index:
            continue
        qty = order_for(float(target[ts]), held)
        if qty != 0.0:
            out[ts] = qty
            held += qty
    return out


def frames_from_rows(chunks: list[dict]) -> dict[str, pd.DataFrame]:
    """The rows a live run's ``on_rows`` saw, batch after batch, as one frame per output."""
    out: dict[str, pd.DataFrame] = {}
    names = {n for c in chunks for n in c}
    for name in names:
        parts = [c[name] for c in chunks if name in c]
        ts = np.concatenate([p[0] for p in parts])
        cols = {k: np.concatenate([p[1][k] for p in parts]) for k in parts[0][1]}
        out[name] = pd.DataFrame(cols, index=pd.Index(ts, name="ts"))
    return out


def assert_equal_to_backtest(seen: dict[str, pd.DataFrame], backtest: dict[str, pd.DataFrame]) -> None:
    """Every output a live run emitted equals the backtest's bit for bit: same ts, same values (NaN
    where NaN)."""
    assert set(seen) == set(backtest)
    for name, frame in backtest.items():
        got = seen[name][frame.columns]
        assert got.index.tolist() == frame.index.tolist(), name
        for col in frame.columns:
            np.testing.assert_array_equal(got[col].to_numpy(), frame[col].to_numpy(), err_msg=f"{name}.{col}")
