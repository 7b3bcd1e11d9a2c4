"""Restart safety: the live process is killed with SIGKILL at random moments while bars stream in and
started again; the orders on the log are then exactly an uninterrupted run's — none twice, none
missing — which needs the kernels' state restored, not started over.  Bounded: a few kills over a
couple of hundred bars on loopback, every wait with a deadline."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from qmtl.live.gate_state import GateState, StaticGate
from qmtl.live.order_log import OrderLog
from qmtl.live.runner import LiveRunner
from qmtl.live.state_store import StateStore, state_key

from .conftest import NATS_URL
from .support import (ANY_AGE, MULTI, STRATEGY, bars, compile_strategy, drained, expected_orders, make_bars_stream,
                      make_log_stream, publish, running)

KILLS = 2
ROOT = Path(__file__).resolve().parents[2]


def _start(strategy: Path, history: Path, scope) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.live.live_process", str(strategy), str(history),
                             scope.feed("BTC"), scope.world], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("source", [STRATEGY, MULTI], ids=["1m", "1m-5m-15m"])
def test_kill_9_at_random_moments_loses_and_repeats_no_order(scope, tmp_path, source):
    """With several intervals the history ends inside a 5m and a 15m bucket, and kills land inside
    open buckets: their feed bars come back from the stored state."""
    compiled, strategy = compile_strategy(tmp_path, source)
    history, live = bars(100, seed=11), bars(100, first=100, seed=11)
    history_file = tmp_path / "history.parquet"
    history.to_parquet(history_file)
    durable = LiveRunner(compiled, history, scope.feed("BTC"), scope.world,
                         StaticGate(GateState(False, None, "unused")), max_bar_age=ANY_AGE).durable
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    kill_at = sorted(rng.sample(range(5, len(live) - 5), KILLS))  # bars acknowledged when each kill lands

    async def scenario() -> tuple[list, list[int], int]:
        import nats
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        await make_bars_stream(js, scope)
        await make_log_stream(js, scope)

        async def stream_bars() -> None:
            for i in range(len(live)):
                await publish(js, scope.subject("BTC"), live.iloc[i:i + 1])
                await asyncio.sleep(0.02)

        publisher = asyncio.create_task(stream_bars())
        killed_after: list[int] = []
        proc = _start(strategy, history_file, scope)
        try:
            for target in kill_at:
                deadline = time.monotonic() + 90
                while True:
                    assert time.monotonic() < deadline, f"no progress to {target} acknowledged bars (seed {seed})"
                    assert proc.poll() is None, f"the live process exited with {proc.returncode} (seed {seed})"
                    try:
                        done = (await js.consumer_info(scope.stream, durable)).ack_floor.stream_seq
                    except Exception:  # the consumer is made when the process has warmed up
                        done = 0
                    if done >= target:
                        break
                    await asyncio.sleep(0.005)
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
                killed_after.append(done)
                proc = _start(strategy, history_file, scope)
            await publisher
            await drained(js, scope.stream, durable, timeout=90)
        finally:
            proc.kill()
            proc.wait(10)
        orders = await OrderLog(js, scope.world).records("paper", "orders")
        saved = await (await StateStore.open(js)).load(state_key(scope.world, orders[0].strategy if orders else "", None))
        await nc.close()
        return orders, killed_after, saved.last_ts if saved else -1

    orders, killed_after, last_ts = asyncio.run(scenario())
    assert len(killed_after) == KILLS and all(0 < k < len(live) for k in killed_after), killed_after
    keys = [o.key for o in orders]
    assert len(keys) == len(set(keys)), f"an order was sent twice (seed {seed})"
    execution = compiled.run(pd.concat([history, live], ignore_index=True)).outputs["orders"]
    want = expected_orders(execution, live.ts.tolist())
    assert {o.bar_ts: o.qty for o in orders} == want, f"seed {seed}"
    assert last_ts == int(live.ts.iloc[-1])


def test_bars_run_again_from_an_older_state_find_their_orders_on_the_log(scope, tmp_path):
    """The window a kill can land in between logging a bar's orders and storing its state, made
    deterministic: ten bars are run again from the state stored before them (an older snapshot put
    back, the feed's consumer made anew), long after the server's duplicate window.  Every one of
    their orders is found on the log by its key; nothing is sent again."""
    compiled, _ = compile_strategy(tmp_path)
    history, live = bars(50, seed=5), bars(20, first=50, seed=5)
    open_gate = StaticGate(GateState(True, "paper", "active"))

    async def run_until_drained(runner: LiveRunner, js, frame: pd.DataFrame) -> None:
        async with running(runner):
            await publish(js, scope.subject("BTC"), frame)
            await drained(js, scope.stream, runner.durable)

    async def scenario() -> tuple[list, list, LiveRunner]:
        import nats
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        await make_bars_stream(js, scope)
        await make_log_stream(js, scope)
        first = LiveRunner(compiled, history, scope.feed("BTC"), scope.world, open_gate, max_bar_age=ANY_AGE)
        await run_until_drained(first, js, live.iloc[:10])
        store = await StateStore.open(js)
        key = state_key(scope.world, first.strategy, None)
        older = await store.load(key)
        await run_until_drained(first, js, live.iloc[10:])
        before = await OrderLog(js, scope.world).records("paper", "orders")
        await asyncio.sleep(0.2)  # past the log stream's 100 ms duplicate window
        await store.save(key, older)
        await js.delete_consumer(scope.stream, first.durable)
        again = LiveRunner(compiled, history, scope.feed("BTC"), scope.world, open_gate, max_bar_age=ANY_AGE)
        await run_until_drained(again, js, live.iloc[:0])
        after = await OrderLog(js, scope.world).records("paper", "orders")
        await nc.close()
        return before, after, again

    before, after, again = asyncio.run(scenario())
    assert [o.key for o in after] == [o.key for o in before]
    rerun = sum(o.bar_ts >= live.ts.iloc[10] for o in before)
    assert rerun > 0 and again.metrics.already._value.get() == rerun
    assert again.metrics.bars._value.get() == 10
