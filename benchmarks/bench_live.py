"""Live latency: from a bar published on NATS JetStream to its order on the world's log, batch size 1.

Run: ``.venv/bin/python benchmarks/bench_live.py [bars]`` with NATS + JetStream on 127.0.0.1:4222.

The live process runs as a user runs it, in its own process (``qmtl.live``: warm-up from a history
file, the durable bar consumer, the kernels, the order log, the per-bar state snapshot), with an open
gate.  The strategy's signal flips every bar, so every bar makes an order.  This process publishes one
bar, waits until that bar's order appears on ``{world}.paper.orders``, pauses, and publishes the next.

Baseline, measured in the same run on the same server: an "echo" process that does only the
transport — the same durable pull consumer on the bars, one ``publish`` with ``Nats-Msg-Id`` onto a
log stream, awaiting the server's ack, then acking the bar — so the ratio is what qmtl's per-bar work
(parse, bar rule, kernels, order sizing against the log, gate) adds to JetStream's own round trips.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks._machine import machine  # noqa: E402

NATS = "nats://127.0.0.1:4222"
START = 1_700_000_040
STRATEGY = '''
from qmtl.runtime.sdk import Strategy, StreamInput, Node, RiskControl, TimingGate, Execution

class Flip(Strategy):
    def setup(self):
        price = StreamInput(tags=["BTC"], interval="60s", period=20)
        signal = Node(expr={"signal": (price.close.diff() > 0).astype(float) * 2 - 1}, name="signal")
        trend = Node(expr={"trend": price.close.rolling(20).mean()}, name="trend")
        risk = RiskControl(signal, max_position=5, max_notional=1_000)
        timing = TimingGate(risk, sessions=["00:00-24:00 UTC"])
        orders = Execution(timing, fee_bps=2, slippage_bps=1)
        self.add_nodes([price, signal, trend, risk, timing, orders])
'''


def _bar(i: int) -> dict:
    """Bar ``i``: the close goes up on even bars and down on odd ones, so the signal flips every bar."""
    close = 100.0 + (0.5 if i % 2 == 0 else -0.5) + i * 1e-3
    return {"ts": START + 60 * i, "open": close - 0.1, "high": close + 1, "low": close - 1, "close": close,
            "volume": 1.0}


# --- the processes measured --------------------------------------------------------------------------


def _child_live(strategy: str, history: str, feed: str, world: str) -> None:
    import qmtl
    from qmtl.live.gate_state import GateState, StaticGate
    from qmtl.live.runner import LiveRunner
    # bars of 2023: orders at any bar age (the default maximum age would send none)
    runner = LiveRunner(qmtl.compile(strategy), history, feed, world, StaticGate(GateState(True, "paper", "open")),
                        max_bar_age=math.inf)
    asyncio.run(runner.run())


def _child_echo(subject: str, stream: str, log_subject: str) -> None:
    async def echo() -> None:
        from nats.errors import TimeoutError as NatsTimeout
        from nats.js.api import AckPolicy, ConsumerConfig
        from qmtl.live.connection import connect
        nc = await connect(NATS, "bench-echo")
        js = nc.jetstream()
        sub = await js.pull_subscribe(subject, durable="echo", stream=stream,
                                      config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=1))
        while True:
            try:
                (msg,) = await sub.fetch(1, timeout=0.25)
            except NatsTimeout:
                continue
            bar = json.loads(msg.data)
            await js.publish(log_subject, json.dumps({"bar_ts": bar["ts"]}).encode(),
                             headers={"Nats-Msg-Id": f"echo-{bar['ts']}"})
            await msg.ack()
    asyncio.run(echo())


# --- measuring ---------------------------------------------------------------------------------------


async def _latencies(js, nc, subject: str, log_subject: str, first: int, n: int) -> list[float]:
    """Publish bars ``first`` … ``first + n`` one at a time; seconds from each publish to its order."""
    arrived: dict[int, float] = {}
    got = asyncio.Event()

    async def on_order(msg) -> None:
        arrived[json.loads(msg.data)["bar_ts"]] = time.perf_counter()
        got.set()

    sub = await nc.subscribe(log_subject, cb=on_order)
    out = []
    for i in range(first, first + n):
        bar = _bar(i)
        got.clear()
        sent = time.perf_counter()
        await js.publish(subject, json.dumps(bar).encode())
        while bar["ts"] not in arrived:
            await asyncio.wait_for(got.wait(), 30)
            got.clear()
        out.append(arrived[bar["ts"]] - sent)
        await asyncio.sleep(0.02)  # bars are spaced: the runner stores its state and acks in between
    await sub.unsubscribe()
    return out


async def _wait_for_consumer(js, stream: str, durable: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            await js.consumer_info(stream, durable)
            return
        except Exception:  # not made yet: the process is still starting
            await asyncio.sleep(0.1)
    raise TimeoutError(f"consumer {durable} did not appear")


async def _measure(bars: int) -> dict:
    import nats
    import qmtl
    from qmtl.live.runner import LiveRunner
    from qmtl.live.gate_state import GateState, StaticGate
    tag = uuid.uuid4().hex[:8]
    world, stream, prefix = f"bench{tag}", f"BENCHBARS_{tag}", f"bench{tag}"
    folder = Path(tempfile.mkdtemp(prefix="bench_live_"))
    strategy = folder / "flip.py"
    strategy.write_text(STRATEGY)
    history = folder / "history.parquet"
    pd.DataFrame([{**_bar(i), "symbol": "BTC"} for i in range(200)]).to_parquet(history)
    feed = f"{NATS}/{prefix}.bars.BTC"
    probe = LiveRunner(qmtl.compile(str(strategy)), str(history), feed, world, StaticGate(GateState(False, None, "-")))
    durable = probe.durable
    nc = await nats.connect(NATS)
    js = nc.jetstream()
    await js.add_stream(name=stream, subjects=[f"{prefix}.bars.>"])
    await js.add_stream(name=f"ECHO_{tag}", subjects=[f"{prefix}.echo"])
    procs = []
    try:
        procs.append(subprocess.Popen([sys.executable, __file__, "--child", "echo", f"{prefix}.bars.ETH", stream,
                                       f"{prefix}.echo"], cwd=ROOT))
        procs.append(subprocess.Popen([sys.executable, __file__, "--child", "live", str(strategy), str(history),
                                       feed, world], cwd=ROOT))
        await _wait_for_consumer(js, stream, "echo")
        await _wait_for_consumer(js, stream, durable)
        warm = 20  # the first bars after start-up are not counted (first calls, page faults)
        await _latencies(js, nc, f"{prefix}.bars.ETH", f"{prefix}.echo", 200, warm)
        await _latencies(js, nc, f"{prefix}.bars.BTC", f"{world}.paper.orders", 200, warm)
        echo, live = [], []
        for round_ in range(4):  # alternate, so load on the machine hits both alike
            at = 200 + warm + round_ * (bars // 4)
            echo += await _latencies(js, nc, f"{prefix}.bars.ETH", f"{prefix}.echo", at, bars // 4)
            live += await _latencies(js, nc, f"{prefix}.bars.BTC", f"{world}.paper.orders", at, bars // 4)
    finally:
        for p in procs:
            p.kill()
            p.wait()
        for name in (stream, f"ECHO_{tag}", f"QMTL_{world}_paper"):
            try:
                await js.delete_stream(name)
            except Exception:
                pass
        from qmtl.live.state_store import StateStore, state_key
        await (await StateStore.open(js)).delete(state_key(world, probe.strategy, None))
        await nc.close()
    return {"echo": np.array(echo), "live": np.array(live)}


def main(bars: int = 400) -> None:
    import os
    got = asyncio.run(_measure(bars))
    rows = {k: (np.percentile(v, 50) * 1e3, np.percentile(v, 99) * 1e3, len(v)) for k, v in got.items()}
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [f"# live latency: bar published → its order on the log, batch size 1 ({machine()})", "",
             f"load average at the end of the run: {load}", "",
             "| path | p50 ms | p99 ms | bars |", "|---|---|---|---|",
             f"| JetStream transport only (echo: consume bar, publish with Nats-Msg-Id, ack) | {rows['echo'][0]:.2f} "
             f"| {rows['echo'][1]:.2f} | {rows['echo'][2]} |",
             f"| qmtl live runner (parse, rule, kernels, sizing, order on the log) | {rows['live'][0]:.2f} "
             f"| {rows['live'][1]:.2f} | {rows['live'][2]} |", "",
             f"live / transport: p50 **{rows['live'][0] / rows['echo'][0]:.2f}x**, "
             f"p99 **{rows['live'][1] / rows['echo'][1]:.2f}x**"]
    text = "\n".join(lines) + "\n"
    print(text)
    (ROOT / "benchmarks" / "results" / "live.md").write_text(text)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        {"live": _child_live, "echo": _child_echo}[sys.argv[2]](*sys.argv[3:])
    else:
        main(*(int(a) for a in sys.argv[1:2]))
