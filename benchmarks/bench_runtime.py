"""Runtime benchmark: the momentum strategy (examples/momentum.py) four ways, one command.

    .venv/bin/python benchmarks/bench_runtime.py [--quick]

(a) the generated Numba + Bytewax flow via ``compiled.run``; (b) a hand-written whole-array Numba loop
(benchmarks/handwritten.py); (c) pandas, vectorised; (d) per-tick Python (``per_tick_python``: the
compute function called once per bar on a CacheView), run on a subset and extrapolated.  Also: peak
memory, throughput with 1/2/4 Bytewax workers on 16 symbols, cold vs warm compile in fresh processes.
Writes benchmarks/results/runtime.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import handwritten  # noqa: E402

import qmtl  # noqa: E402
from qmtl.runtime.reference import per_tick_python  # noqa: E402

EXAMPLE = ROOT / "examples" / "momentum.py"


def bars(n: int, symbols: int = 1, seed: int = 0) -> pd.DataFrame:
    """A random walk of ``n`` bars per symbol on the one-minute grid (so binding needs no bucketing)."""
    rng = np.random.default_rng(seed)
    frames = []
    for s in range(symbols):
        close = 100.0 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
        frames.append(pd.DataFrame({
            "ts": 1_700_000_040 + 60 * np.arange(n, dtype=np.int64), "symbol": f"S{s:02d}",
            "open": close, "high": close * 1.001, "low": close * 0.999, "close": close,
            "volume": np.full(n, 1000.0)}))
    df = pd.concat(frames, ignore_index=True) if symbols > 1 else frames[0].drop(columns="symbol")
    return df


def timed(fn, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def pandas_momentum(df: pd.DataFrame, period: int = 30) -> pd.Series:
    mom = df["close"].pct_change().rolling(5).mean()
    return (mom > 0).astype(int).iloc[period - 1:]


def cold_warm() -> tuple[float, float]:
    """Compile + first run of a small dataset in two fresh processes sharing one empty build dir."""
    home = tempfile.mkdtemp(prefix="qmtl-bench-")
    code = ("import time; t=time.perf_counter(); import qmtl; from benchmarks.bench_runtime import bars; "
            f"c=qmtl.compile({str(EXAMPLE)!r}); c.run(bars(1000)); print(time.perf_counter()-t)")
    env = {**os.environ, "QMTL_HOME": home, "PYTHONPATH": str(ROOT)}
    times = [float(subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True,
                                  capture_output=True, text=True).stdout.split()[-1]) for _ in range(2)]
    return times[0], times[1]


def machine() -> str:
    model = next((ln.split(":", 1)[1].strip() for ln in subprocess.run(
        ["lscpu"], capture_output=True, text=True).stdout.splitlines() if ln.startswith("Model name")), "?")
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{model}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="200k and 2M bars instead of 2M and 20M")
    args = ap.parse_args()
    sizes = [200_000, 2_000_000] if args.quick else [2_000_000, 20_000_000]
    compiled = qmtl.compile(str(EXAMPLE))
    compiled.run(bars(1000))  # compile / load kernels once
    handwritten.run(bars(100)["close"].to_numpy())
    lines = ["# Runtime benchmark: momentum strategy", "", f"Machine: {machine()}", "",
             f"Command: `.venv/bin/python benchmarks/bench_runtime.py{' --quick' if args.quick else ''}`", "",
             "| bars | (a) generated flow s | (b) hand Numba s | (c) pandas s | (d) per-tick Python s (extrapolated) "
             "| a/b | d/a | a M bars/s | peak MiB (a) |", "|---|---|---|---|---|---|---|---|---|"]
    for n in sizes:
        df = bars(n)
        close = df["close"].to_numpy()
        ta, res = timed(lambda: compiled.run(df, batch_size=10_000))
        tracemalloc.start()
        compiled.run(df.iloc[: min(n, 2_000_000)], batch_size=10_000)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        tb, hand = timed(lambda: handwritten.run(close), repeat=3)
        tc, pdres = timed(lambda: pandas_momentum(df))
        assert np.array_equal(res["momentum_signal"]["signal"].to_numpy(), hand), "flow != handwritten"
        assert np.array_equal(pdres.to_numpy(), hand), "pandas != handwritten"
        sub = 2_000
        td_sub, _ = timed(lambda: per_tick_python(compiled, df.iloc[:sub]))
        td = td_sub / sub * n
        lines.append(f"| {n:,} | {ta:.3f} | {tb:.3f} | {tc:.3f} | {td:.0f} | {ta / tb:.2f} | {td / ta:.0f} "
                     f"| {n / ta / 1e6:.1f} | {peak:.0f} |")
        print(lines[-1], flush=True)
    lines += ["", "(d) ran on the first 2,000 bars and is scaled linearly to the row's size. "
              "Peak memory is tracemalloc's peak for one run of (a) on min(bars, 2M).", "",
              "## Workers (16 symbols)", "", "| workers | s | M bars/s |", "|---|---|---|"]
    per_symbol = sizes[0] // 16
    multi = bars(per_symbol, symbols=16, seed=1)
    ref = None
    for w in (1, 2, 4):
        tw, res = timed(lambda: compiled.run(multi, batch_size=10_000, workers=w))
        ref = ref if ref is not None else res["momentum_signal"]
        assert res["momentum_signal"].equals(ref)
        lines.append(f"| {w} | {tw:.3f} | {len(multi) / tw / 1e6:.1f} |")
        print(lines[-1], flush=True)
    cold, warm = cold_warm()
    lines += ["", "Workers are Bytewax worker threads in one process (`cluster_main`); multi-process "
              "(`-i/-a`) runs are not wired yet.", "", "## Compile: cold vs warm (fresh process each, "
              "compile + run 1,000 bars)", "", f"- cold (empty build cache): {cold:.2f} s",
              f"- warm (generated module and Numba cache on disk): {warm:.2f} s", ""]
    out = ROOT / "benchmarks" / "results" / "runtime.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines[-4:]))


if __name__ == "__main__":
    main()
