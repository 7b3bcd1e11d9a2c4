"""Speed of a strategy with one tag query node plus per-symbol traced nodes, 16 symbols.

Run: ``.venv/bin/python benchmarks/bench_engine_crosskey.py [bars] [reference_bars]``.
Before per-node fallback the engine ran any module holding a tag query wholly on the reference
interpreter, so the reference timing *is* the "before"; it is measured on fewer bars (it costs
~0.2–1 ms per tick per node) and reported per bar.  After: the traced nodes run in the kernels and
only the tag query's node runs per tick (its compute function, once per tick, is the floor).
Also times the broadcast case (per-symbol nodes plus a single benchmark stream), all in kernels.
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
from tests.runtime.test_engine_crosskey import FUNCTIONS, _benchmark_module, _tag_query_module

SYMBOLS = tuple(f"S{i:02d}" for i in range(16))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _tag_data(bars: int) -> dict:
    return {"px": synthetic_bars(bars, symbols=SYMBOLS, seed=1),
            "ta-indicator": synthetic_bars(bars, symbols=("RSI", "MFI"), seed=2)}


def _tag_module():
    module = _tag_query_module(traced=6)
    # one tag query node; the broadcast py_call nodes downstream of it are left out here
    return module.with_(outputs=tuple(o for o in module.outputs if o.name not in ("scaled", "corr_level")))


def _one(label: str, module, data_for, functions, bars: int, reference_bars: int) -> None:
    compiled = CompiledStrategy(module.name, module, functions=functions)
    small = data_for(reference_bars)
    engine.run(compiled, small)  # compile/load the kernels outside the timing
    before = _timed(lambda: evaluate(module, functions, bind(module, small))) / reference_bars * bars
    data = data_for(bars)
    after = _timed(lambda: engine.run(compiled, data))
    print(f"{label}: {len(SYMBOLS)} symbols x {bars} bars: before (whole module per tick, from "
          f"{reference_bars} bars) ~{before:.1f} s; after {after:.2f} s ({before / after:.0f}x)")


def main(bars: int = 20_000, reference_bars: int = 500) -> None:
    _one("tag query + 6 traced nodes", _tag_module(), _tag_data, FUNCTIONS, bars, reference_bars)
    syms = SYMBOLS[:-1] + ("SPY",)
    _one("broadcast benchmark (7 nodes)", _benchmark_module(),
         lambda n: synthetic_bars(n, symbols=syms, seed=3), {}, bars, reference_bars)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
