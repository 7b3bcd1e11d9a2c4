"""A live run of a strategy with RiskControl's ``max_total_notional`` on the real NATS JetStream
server: three instruments on one feed, the cap binding at every instant, equal to a backtest over
history + live bars bit for bit (outputs and orders), with an instrument's gap, bars of an instant in
any order and a bar arriving after its instant was decided (dropped as late, as the backtest never
sees it); killed with SIGKILL at random moments and restarted, no order is lost or sent twice and
the held book is where the backtest's step ends; the same instant by instant with a 5m source on 1m
feed bars; and the cluster path of ``qmtl run`` applies the cap as the backtest does."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import qmtl
from qmtl.cli.main import app
from qmtl.live.gate_state import GateState, StaticGate
from qmtl.live.kernels import LiveKernels
from qmtl.live.order_log import OrderLog
from qmtl.live.runner import LiveRunner
from qmtl.live.state_store import StateStore, book_state_key
from qmtl.runtime.synthetic import synthetic_bars
from tests.runtime.execution_support import live_instants

from .conftest import NATS_URL
from .support import ANY_AGE, bars, drained, expected_orders, frames_from_rows, make_bars_stream, make_log_stream, \
    publish, running

STRATEGY = '''from qmtl.runtime.sdk import Strategy, StreamInput, Node, RiskControl, TimingGate, Execution


class Book(Strategy):
    def setup(self):
        price = StreamInput(interval="60s", period=3)
        signal = Node(expr={"signal": (price.close.diff() > 0).astype(float) * 2 - 1}, name="signal")
        risk = RiskControl(signal, max_position=5, max_notional=1_000, max_total_notional=1_000)
        orders = Execution(TimingGate(risk), fee_bps=2, slippage_bps=1)
        self.add_nodes([price, signal, risk, orders])
'''
SYMBOLS = ("BTC", "ETH", "SOL")
OPEN = GateState(True, "paper", "active")
ROOT = Path(__file__).resolve().parents[2]


def _compile(tmp_path):
    path = tmp_path / "book.py"
    path.write_text(STRATEGY)
    return qmtl.compile(str(path)), path


def _book(n: int, first: int = 0) -> pd.DataFrame:
    """Bars of three instruments at different price levels (each ~5 units x price ≈ 250-650, so
    three full positions exceed the 1000 cap at every instant)."""
    frames = [bars(n, first, seed=30 + i).assign(symbol=s) for i, s in enumerate(SYMBOLS)]
    for frame, level in zip(frames, (0.5, 1.0, 1.3)):
        frame[["open", "high", "low", "close"]] *= level
    return pd.concat(frames).sort_values(["ts", "symbol"], ignore_index=True)


def _per_symbol(frame: pd.DataFrame, symbol: str) -> pd.DataFrame:
    return frame[frame.symbol == symbol].drop(columns="symbol")


def test_capped_live_run_equals_the_backtest(scope, tmp_path):
    compiled, _ = _compile(tmp_path)
    history, live = _book(40), _book(20, first=40)
    gap = (live.symbol == "ETH") & (live.ts == live.ts.unique()[5])
    late, live = live[gap], live[~gap]  # ETH's bar of instant 5 comes after instant 6 began
    chunks: dict = {s: [] for s in SYMBOLS}
    runner = LiveRunner(compiled, history, f"{NATS_URL}/{scope.prefix}.bars.*", scope.world, StaticGate(OPEN),
                        on_rows=lambda key, rows: chunks[key].append(rows), max_bar_age=ANY_AGE)
    rng = random.Random(4)

    async def scenario() -> list:
        import nats
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        await make_bars_stream(js, scope)
        await make_log_stream(js, scope)
        async with running(runner):
            for i, ts in enumerate(live.ts.unique()):
                rows = live[live.ts == ts]
                order = list(rows.symbol)
                rng.shuffle(order)  # an instant's bars in any order
                for symbol in order:
                    await publish(js, scope.subject(symbol), rows[rows.symbol == symbol])
                    if i == 6 and symbol == order[0]:
                        await publish(js, scope.subject("ETH"), late)
            await drained(js, scope.stream, runner.durable)
        records = await OrderLog(js, scope.world).records("paper", "orders")
        await nc.close()
        return records

    orders = asyncio.run(scenario())
    backtest = compiled.run(pd.concat([history, live], ignore_index=True)).outputs
    assert (backtest["risk"]["risk"].abs() < 5 - 1e-9).sum() > 30, "the cap binds"
    for symbol in SYMBOLS:
        seen = frames_from_rows(chunks[symbol])
        assert set(seen) == set(backtest)
        for name, whole in backtest.items():
            mine = _per_symbol(whole, symbol)
            assert seen[name].index.tolist() == mine.index.tolist(), (symbol, name)
            for col in mine.columns:
                np.testing.assert_array_equal(seen[name][col].to_numpy(), mine[col].to_numpy(),
                                              err_msg=f"{symbol} {name}.{col}")
        want = expected_orders(_per_symbol(backtest["orders"], symbol), live[live.symbol == symbol].ts.tolist())
        assert {o.bar_ts: o.qty for o in orders if o.instrument == symbol} == want and want, symbol
    assert len({o.key for o in orders}) == len(orders)
    m = runner.metrics
    assert m.bars._value.get() == len(live)
    dropped = {s.labels["reason"]: s.value for s in m.dropped.collect()[0].samples if s.name.endswith("_total")}
    assert dropped["late"] == 1


def _start(strategy: Path, history: Path, scope) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.live.live_process", str(strategy), str(history),
                             f"{NATS_URL}/{scope.prefix}.bars.*", scope.world], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_kill_9_at_random_moments_keeps_the_capped_orders_and_the_held_book(scope, tmp_path):
    """Kills land between an instant's bars (waiting bars come back from the stored state) and
    inside a decided instant's orders (found on the log by their keys)."""
    kills = 2
    compiled, strategy = _compile(tmp_path)
    history, live = _book(60), _book(50, first=60)
    history_file = tmp_path / "history.parquet"
    history.to_parquet(history_file)
    probe = LiveRunner(compiled, history, f"{NATS_URL}/{scope.prefix}.bars.*", scope.world,
                       StaticGate(GateState(False, None, "unused")), max_bar_age=ANY_AGE)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    kill_at = sorted(rng.sample(range(10, len(live) - 10), kills))  # bars acknowledged when each kill lands

    async def scenario() -> tuple[list, list[int], object]:
        import nats
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        await make_bars_stream(js, scope)
        await make_log_stream(js, scope)

        async def stream_bars() -> None:
            for _, row in live.iterrows():
                await publish(js, scope.subject(row.symbol), live.loc[[row.name]])
                await asyncio.sleep(0.01)

        publisher = asyncio.create_task(stream_bars())
        killed_after: list[int] = []
        proc = _start(strategy, history_file, scope)
        try:
            for target in kill_at:
                deadline = time.monotonic() + 120
                while True:
                    assert time.monotonic() < deadline, f"no progress to {target} acknowledged bars (seed {seed})"
                    assert proc.poll() is None, f"the live process exited with {proc.returncode} (seed {seed})"
                    try:
                        done = (await js.consumer_info(scope.stream, probe.durable)).ack_floor.stream_seq
                    except Exception:  # the consumer is made when the process has warmed up
                        done = 0
                    if done >= target:
                        break
                    await asyncio.sleep(0.003)
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
                killed_after.append(done)
                proc = _start(strategy, history_file, scope)
            await publisher
            await drained(js, scope.stream, probe.durable, timeout=120)
        finally:
            proc.kill()
            proc.wait(10)
        orders = await OrderLog(js, scope.world).records("paper", "orders")
        saved = await (await StateStore.open(js)).load(book_state_key(scope.world, probe.strategy))
        await nc.close()
        return orders, killed_after, saved

    orders, killed_after, saved = asyncio.run(scenario())
    assert len(killed_after) == kills and all(0 < k < len(live) for k in killed_after), killed_after
    keys = [o.key for o in orders]
    assert len(keys) == len(set(keys)), f"an order was sent twice (seed {seed})"
    backtest = compiled.run(pd.concat([history, live], ignore_index=True)).outputs
    for symbol in SYMBOLS:
        want = expected_orders(_per_symbol(backtest["orders"], symbol), live[live.symbol == symbol].ts.tolist())
        assert {o.bar_ts: o.qty for o in orders if o.instrument == symbol} == want and want, f"{symbol} seed {seed}"
    # the stored state: the last instant decided, nothing waiting, the held book where the backtest's ends
    assert saved is not None and saved.last_ts == int(live.ts.iloc[-1]) and not saved.snapshot["instant"]["bars"]
    probe.kernels.restore_book(saved.snapshot["book"])
    (value,) = probe.kernels.book.books
    for symbol in SYMBOLS:
        held, mark = probe.kernels.book.held(value, symbol)
        risk = _per_symbol(backtest["risk"], symbol)["risk"].dropna()
        assert held == risk.iloc[-1] and mark == live[live.symbol == symbol].close.iloc[-1], (symbol, seed)


TWO_CLOCKS = '''from qmtl.runtime.sdk import Strategy, StreamInput, Node, RiskControl, TimingGate, Execution


class Two(Strategy):
    def setup(self):
        fast = StreamInput(interval="60s", period=3)
        slow = StreamInput(interval="5m", period=2)
        signal = Node(expr={"signal": ((fast.close - slow.close) > 0).astype(float) * 2 - 1}, name="signal")
        risk = RiskControl(signal, max_position=5, max_notional=1_000, price=PRICE, max_total_notional=600)
        orders = Execution(TimingGate(risk, price=fast), fee_bps=2, price=fast)
        self.add_nodes([fast, slow, signal, risk, orders])
'''


@pytest.mark.parametrize("price", ["fast", "slow"])
def test_capped_kernels_with_a_5m_source_on_1m_feed_bars_equal_the_backtest(tmp_path, price):
    """The cap on the 1m clock or on the 5m one, the history ending inside a 5m bucket: instant by
    instant (no server needed) every output equals the backtest's."""
    path = tmp_path / "two.py"
    path.write_text(TWO_CLOCKS.replace("PRICE", price))
    compiled = qmtl.compile(str(path))
    data = synthetic_bars(120, symbols=SYMBOLS, seed=9)
    instants = sorted(data.ts.unique())
    kernels = LiveKernels(compiled, data[data.ts < instants[62]])
    seen = live_instants(kernels, data[data.ts >= instants[62]])
    backtest = compiled.run(data).outputs
    assert (backtest["risk"]["risk"].abs() < 5 - 1e-9).all(), "the cap binds"
    for symbol in SYMBOLS:
        got = frames_from_rows(seen[symbol])
        for name, whole in backtest.items():
            mine = _per_symbol(whole, symbol)
            assert got[name].index.tolist() == mine.index.tolist(), (symbol, name)
            for col in mine.columns:
                np.testing.assert_array_equal(got[name][col].to_numpy(), mine[col].to_numpy(),
                                              err_msg=f"{symbol} {name}.{col}")


def test_the_cluster_cli_runs_the_total_cap_as_the_backtest(tmp_path):
    """``qmtl run --addresses … --process-id 0`` (the cluster path, one process) of the live book:
    the cap's step runs inside the dataflow and the outputs read back equal the backtest's."""
    from qmtl.runtime.row_sink import read_outputs
    compiled, strategy = _compile(tmp_path)
    history = tmp_path / "history.parquet"
    _book(60).to_parquet(history)
    out = tmp_path / "out"
    port = _free_port()
    got = CliRunner().invoke(app, ["run", str(strategy), "--data", str(history), "--out", str(out),
                                   "--addresses", f"127.0.0.1:{port}", "--process-id", "0", "--batch-size", "7"])
    assert got.exit_code == 0, got.output
    expected = compiled.run(str(history)).outputs
    assert (expected["risk"]["risk"].abs() < 5 - 1e-9).any(), "the cap binds"
    written = read_outputs(out)
    assert list(written) == list(expected)
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(written[name], frame, check_exact=True, obj=name)


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
