"""``qmtl run --live`` end to end, as an operator runs it: the real gateway + world service, the real
NATS server, the command in its own process.  Orders reach the world's log while the world has the
strategy active in paper, stop when the activation is flipped off (counted as gated, not sent), resume
when it is flipped back on (catching the live book up to the simulated target), and SIGTERM ends the
process cleanly."""

from __future__ import annotations

import asyncio
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from qmtl.live.order_log import OrderLog
from qmtl.live.runner import live_strategy_id

from .conftest import NATS_URL, WorldStack
from .support import bars, compile_strategy, drained, expected_orders, make_bars_stream, make_log_stream, publish
from .worlds import activate, trading_world

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 60.0


class Lines:
    """A process's stderr, line by line, read on a thread so the test can wait for a line."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.seen: list[str] = []
        self._queue: "queue.Queue[str]" = queue.Queue()
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stderr:
            self._queue.put(line)

    def wait_for(self, pattern: str, within: float = WAIT_S) -> str:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r} within {within} s; saw:\n{''.join(self.seen[-30:])}")


async def _log_records(world: str) -> list:
    import nats
    nc = await nats.connect(NATS_URL)
    try:
        return await OrderLog(nc.jetstream(), world).records("paper", "orders")
    finally:
        await nc.close()


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
def test_live_command_follows_the_worlds_activation(scope, world_stack: WorldStack, tmp_path: Path) -> None:
    compiled, strategy_file = compile_strategy(tmp_path)
    sid = live_strategy_id(compiled)
    history, live = bars(60, seed=5), bars(45, first=60, seed=5)
    history_file = tmp_path / "history.parquet"
    history.to_parquet(history_file)
    trading_world(world_stack.client, scope.world, sid)  # paper, active

    async def streams() -> None:
        import nats
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        await make_bars_stream(js, scope)
        await make_log_stream(js, scope)
        await nc.close()

    asyncio.run(streams())
    proc = subprocess.Popen(
        [sys.executable, "-m", "qmtl.cli.main", "run", str(strategy_file), "--live", "--world", scope.world,
         "--feed", scope.feed("BTC"), "--data", str(history_file), "--gateway-url", world_stack.url,
         "--max-bar-age", "inf"],  # bars of 2023: any age
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = Lines(proc)
    durable = f"qmtl_{scope.world}_{sid.removeprefix('blake3:')[:16]}"

    async def feed(frame: pd.DataFrame) -> None:
        import nats
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        await publish(js, scope.subject("BTC"), frame)
        await drained(js, scope.stream, durable)
        await nc.close()

    try:
        lines.wait_for(r"order gate open \(open\)")
        lines.wait_for(r"live: .* in world ")
        asyncio.run(feed(live.iloc[:15]))
        activate(world_stack.client, scope.world, sid, False)
        lines.wait_for(r"order gate closed \(inactive\)")
        asyncio.run(feed(live.iloc[15:30]))
        activate(world_stack.client, scope.world, sid, True)
        lines.wait_for(r"order gate open \(open\)")
        asyncio.run(feed(live.iloc[30:]))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    orders = asyncio.run(_log_records(scope.world))
    closed = set(live.ts.iloc[15:30].tolist())
    execution = compiled.run(pd.concat([history, live], ignore_index=True)).outputs["orders"]
    want = expected_orders(execution, live.ts.tolist(), gate_open=lambda ts: ts not in closed)
    assert want and {o.bar_ts: o.qty for o in orders} == want
    assert all(o.strategy == sid and o.domain == "paper" for o in orders)
    # what the simulated book traded while the strategy was inactive was not sent, and said so
    traded_while_closed = int((execution.loc[sorted(closed), "order_qty"] != 0).sum())
    not_sent = [line for line in lines.seen if "not sent: gate closed (inactive" in line]
    assert traded_while_closed > 0 and len(not_sent) == traded_while_closed
