"""Rolling mean/std/min/max with windows 5, 50 and 500 on 2M bars: the generated flow vs pandas.

Run: ``.venv/bin/python benchmarks/bench_windows.py [bars]``.  End to end as a user runs it: each
side reads the same Parquet file, then computes the four statistics for one window (pandas:
``df["close"].rolling(w).<stat>()``; qmtl: a traced node with the same code, compiled and run).
Both sides run once untimed first (kernels compiled, file in the page cache, the allocator grown),
then alternately, best of 5 each.  Target: qmtl faster at every window.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

import qmtl  # noqa: E402
from benchmarks._machine import machine  # noqa: E402
from qmtl.runtime.sdk import Node, Strategy, StreamInput  # noqa: E402
from qmtl.runtime.synthetic import synthetic_bars  # noqa: E402

WINDOWS = (5, 50, 500)


def _strategy(w: int) -> type:
    class Windows(Strategy):
        def setup(self):
            price = StreamInput(interval=60, period=w, name="price")

            def stats(view):
                r = view[price][60]["close"].rolling(w)
                return pd.DataFrame({"mean": r.mean(), "std": r.std(), "min": r.min(), "max": r.max()})
            self.add_nodes([price, Node(input=price, compute_fn=stats, name="stats")])
    return Windows


def _pandas(path: Path, w: int) -> int:
    r = pd.read_parquet(path, columns=["ts", "close"])["close"].rolling(w)
    out = pd.DataFrame({"mean": r.mean(), "std": r.std(), "min": r.min(), "max": r.max()})
    return len(out.dropna())


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _best_alternating(a, b, repeat: int = 5) -> tuple[float, float]:
    """Best times of ``a`` and ``b`` run alternately, so neither gains from running after the other."""
    a(), b()
    times = [(_timed(a), _timed(b)) for _ in range(repeat)]
    return min(t for t, _ in times), min(t for _, t in times)


def main(bars: int = 2_000_000) -> None:
    print(f"# rolling mean/std/min/max, {bars:,} bars ({machine()})")
    print("| window | pandas s | qmtl s | pandas / qmtl |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bars.parquet"
        synthetic_bars(bars, seed=2).drop(columns="symbol").to_parquet(path)
        for w in WINDOWS:
            compiled = qmtl.compile(_strategy(w))
            ours, theirs = _best_alternating(lambda: compiled.run(path), lambda: _pandas(path, w))
            print(f"| {w} | {theirs:.3f} | {ours:.3f} | {theirs / ours:.2f} |")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
