"""Speed of a 2-clock strategy (1m + 5m inputs) on the generated flow vs the per-tick reference.

Run: ``.venv/bin/python benchmarks/bench_engine_clocks.py [bars] [reference_bars]``.
Before multi-clock support the engine ran such a module on the reference interpreter, so the
reference timing *is* the "before"; it is measured on fewer bars (it is ~1 ms per tick per node)
and reported per bar.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: qmtl and the test helpers

from qmtl.compiler.compiled import CompiledStrategy
from qmtl.runtime import engine
from qmtl.runtime.binding import bind
from qmtl.runtime.reference import evaluate
from qmtl.runtime.synthetic import synthetic_bars
from tests.runtime.test_engine_clocks import _two_clock_module


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(bars: int = 200_000, reference_bars: int = 5_000) -> None:
    for mixed in (False, True):
        print(f"-- two clocks, {'with' if mixed else 'without'} a node windowing both clocks "
              f"({'per tick' if mixed else 'all kernels'})")
        _one(_two_clock_module(mixed), bars, reference_bars)


def _one(module, bars: int, reference_bars: int) -> None:
    compiled = CompiledStrategy(module.name, module, functions={})
    data = synthetic_bars(bars, seed=1)
    engine.run(compiled, synthetic_bars(2_000, seed=1))  # compile / load the kernels once
    flow = min(_timed(lambda: engine.run(compiled, data)) for _ in range(3))
    small = synthetic_bars(reference_bars, seed=1)
    ref = _timed(lambda: evaluate(module, {}, bind(module, small)))
    print(f"flow      : {bars} bars in {flow:.3f} s = {flow / bars * 1e6:.2f} µs/bar")
    print(f"reference : {reference_bars} bars in {ref:.3f} s = {ref / reference_bars * 1e6:.2f} µs/bar"
          f" (≈ {ref / reference_bars * bars:.0f} s for {bars} bars)")
    print(f"speed-up  : {ref / reference_bars / (flow / bars):.0f}x")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
