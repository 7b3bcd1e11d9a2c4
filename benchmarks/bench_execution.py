"""A backtest with execution nodes vs the same strategy without them, 2M bars.

Run: ``.venv/bin/python benchmarks/bench_execution.py [bars]``.  Both strategies compute the same
momentum signal (a traced node); the second adds ``RiskControl → TimingGate → Execution`` (a session
rule in a zone with daylight saving, fees and slippage), whose ops run in the same Numba kernels.
Each runs once untimed (kernels compiled), then alternately, best of 7, on a DataFrame already in
memory.  The ratio is what simulating positions, sessions, fills and costs bar by bar adds to a run:
the backtest simulator is these kernels, with no Python per bar.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import qmtl  # noqa: E402
from benchmarks._machine import machine  # noqa: E402
from qmtl.codegen.plan import Kernel, plan  # noqa: E402
from qmtl.runtime.sdk import Execution, Node, RiskControl, Strategy, StreamInput, TimingGate  # noqa: E402
from qmtl.runtime.synthetic import synthetic_bars  # noqa: E402


def _strategy(with_execution: bool) -> type:
    class Momo(Strategy):
        def setup(self):
            price = StreamInput(interval=60, period=30, name="price")
            momentum = price.close.pct_change().rolling(20).mean()
            signal = Node(expr={"signal": (momentum > 0).astype(float) * 2 - 1}, name="signal")
            nodes = [price, signal]
            if with_execution:
                risk = RiskControl(signal, max_position=5, max_notional=100_000, name="risk")
                timing = TimingGate(risk, sessions=["Mon-Fri 09:30-16:00 America/New_York",
                                                    "Sat,Sun 00:00-24:00 UTC"], name="timing")
                orders = Execution(timing, fee_bps=2, slippage_bps=1, name="orders")
                nodes += [risk, timing, orders]
            self.add_nodes(nodes)
    Momo.__name__ = "MomoExecuted" if with_execution else "Momo"
    return Momo


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(bars: int = 2_000_000) -> None:
    data = synthetic_bars(bars, seed=4).drop(columns="symbol")
    plain, executed = qmtl.compile(_strategy(False)), qmtl.compile(_strategy(True))
    in_kernels = {op.name for s in plan(executed.module).steps if isinstance(s, Kernel) for op in s.ops}
    assert {"risk_control", "timing_gate", "execution"} <= in_kernels
    plain.run(data), executed.run(data)
    times = [(_timed(lambda: plain.run(data)), _timed(lambda: executed.run(data))) for _ in range(7)]
    a, b = min(t for t, _ in times), min(t for _, t in times)
    fills = int((executed.run(data).outputs["orders"]["fill_qty"] != 0).sum())
    print(f"# backtest with execution nodes, {bars:,} bars ({machine()})")
    print("| strategy | s | bars/s |")
    print("|---|---|---|")
    print(f"| signal only | {a:.3f} | {bars / a / 1e6:.1f} M |")
    print(f"| + RiskControl, TimingGate, Execution ({fills:,} fills) | {b:.3f} | {bars / b / 1e6:.1f} M |")
    print(f"\nwith / without execution nodes = **{b / a:.2f}x**")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
