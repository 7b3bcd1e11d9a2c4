"""Runtime benchmark: the momentum strategy (examples/momentum.py) four ways, one command.

    .venv/bin/python benchmarks/bench_runtime.py [--quick]

(a) the generated Numba + Bytewax flow via ``compiled.run`` (default batch size); (b) a hand-written
whole-array Numba loop (benchmarks/handwritten.py); (c) pandas, vectorised; (d) per-tick Python
(``per_tick_python``: the compute function called once per bar on a CacheView), run on a subset and
extrapolated.  (a) and (b) both start from data already in memory: (b) gets the close column as a
numpy array, (a) gets the bound data (``bind``), whose one-off cost is reported on its own.  Also: peak
memory, throughput with 1/2/4 Bytewax worker threads on 16 symbols (and the start-up on its own), cold
vs warm compile in fresh processes.  Writes benchmarks/results/runtime.md.  Processes and machines:
benchmarks/bench_cluster.py.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import handwritten  # noqa: E402
from _machine import machine  # noqa: E402

from qmtl.runtime.binding import bind  # noqa: E402

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


def cpu_timed(fn, repeat: int) -> float:
    """The least CPU time (every thread of this process, page faults included) of ``repeat`` calls:
    on a shared machine, waiting for a core inflates wall time but not this."""
    best = float("inf")
    for _ in range(repeat):
        c0 = time.process_time()
        fn()
        best = min(best, time.process_time() - c0)
    return best


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="200k and 2M bars instead of 2M and 20M")
    args = ap.parse_args()
    sizes = [200_000, 2_000_000] if args.quick else [2_000_000, 20_000_000]
    started, load_start = datetime.datetime.now(datetime.timezone.utc), os.getloadavg()[0]
    compiled = qmtl.compile(str(EXAMPLE))
    compiled.run(bars(1000))  # compile / load kernels once
    handwritten.run(bars(100)["close"].to_numpy())
    lines = ["# Runtime benchmark: momentum strategy", "", f"Machine: {machine()}", "",
             f"Command: `.venv/bin/python benchmarks/bench_runtime.py{' --quick' if args.quick else ''}`", "",
             "(a) is `compiled.run(bound)` with the default batch size on data already bound; (b) is the "
             "hand-written loop on the close column already in memory, so neither includes loading. The "
             "one-off load + bind of the DataFrame is its own column. (a) and (b) are the best of 3 runs; "
             "the machine is shared (2 cores), so expect ±20 % between runs.", "",
             "| bars | (a) generated flow s | (b) hand Numba s | (c) pandas s | (d) per-tick Python s (extrapolated) "
             "| a/b | d/a | a M bars/s | load+bind s | (a) at batch 10k s | peak MiB (a) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    from_file = ["", "## End to end from the Parquet file (what a user runs)", "",
                 "Each side reads the same Parquet file: qmtl `compiled.run(path)` (the signal frame indexed "
                 "by bar time); the hand-written loop after `pyarrow.parquet.read_table(path, columns=['close'])` "
                 "(bare signal values); the same loop returning what qmtl returns, the signals with their bar "
                 "times, so it also reads `ts` (`columns=['ts', 'close']`); pandas after `pd.read_parquet(path)`. "
                 "Best of 5. CPU columns: the least CPU time of 5 more runs (all threads of the process, page "
                 "faults included), which waiting for a busy core does not inflate. The last column is the "
                 "machine's 1-minute load average after the row was measured (2 cores: above 1 means other jobs "
                 "competed for them).", "",
                 "| bars | qmtl s | hand Numba (close) s | hand Numba (ts + close) s | pandas s | qmtl / hand (close) "
                 "| qmtl / hand (ts + close) | pandas / qmtl | qmtl CPU s | hand (close) CPU s | CPU qmtl / hand (close) "
                 "| load avg |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    tmp = Path(tempfile.mkdtemp(prefix="qmtl-bench-"))
    for n in sizes:
        df = bars(n)
        close = df["close"].to_numpy()
        tl, bound = timed(lambda: bind(compiled.module, df))
        ta, res = timed(lambda: compiled.run(bound), repeat=3)
        t10k, _ = timed(lambda: compiled.run(bound, batch_size=10_000), repeat=3)
        small = bind(compiled.module, df.iloc[: min(n, 2_000_000)])
        del res
        arrow_before = pa.total_allocated_bytes()
        tracemalloc.start()
        kept = compiled.run(small)
        # Python/numpy allocations (tracemalloc) plus what the run holds in Arrow's pool
        peak = (tracemalloc.get_traced_memory()[1] + pa.total_allocated_bytes() - arrow_before) / 2**20
        tracemalloc.stop()
        del kept
        res = compiled.run(bound)
        tb, hand = timed(lambda: handwritten.run(close), repeat=3)
        tc, pdres = timed(lambda: pandas_momentum(df))
        assert np.array_equal(res["momentum_signal"]["signal"].to_numpy(), hand), "flow != handwritten"
        assert np.array_equal(pdres.to_numpy(), hand), "pandas != handwritten"
        sub = 2_000
        td_sub, _ = timed(lambda: per_tick_python(compiled, df.iloc[:sub]))
        td = td_sub / sub * n
        lines.append(f"| {n:,} | {ta:.3f} | {tb:.3f} | {tc:.3f} | {td:.0f} | {ta / tb:.2f} | {td / ta:.0f} "
                     f"| {n / ta / 1e6:.1f} | {tl:.3f} | {t10k:.3f} | {peak:.0f} |")
        print(lines[-1], flush=True)
        path = tmp / f"bars_{n}.parquet"
        df.to_parquet(path)
        tfa, from_path = timed(lambda: compiled.run(path), repeat=5)
        cfa = cpu_timed(lambda: compiled.run(path), repeat=5)
        assert from_path["momentum_signal"].equals(res["momentum_signal"]), "run(path) != run(bound)"
        del from_path
        def hand_close():
            return handwritten.run(pq.read_table(path, columns=["close"]).column("close").to_numpy())
        tfb, _ = timed(hand_close, repeat=5)
        cfb = cpu_timed(hand_close, repeat=5)
        tft, (hts, hsig) = timed(lambda: handwritten.run_with_times(pq.read_table(path, columns=["ts", "close"])),
                                 repeat=5)
        assert np.array_equal(hts, res["momentum_signal"].index.to_numpy()), "hand times != flow times"
        tfc, _ = timed(lambda: pandas_momentum(pd.read_parquet(path)), repeat=5)
        from_file.append(f"| {n:,} | {tfa:.3f} | {tfb:.3f} | {tft:.3f} | {tfc:.3f} | {tfa / tfb:.2f} "
                         f"| {tfa / tft:.2f} | {tfc / tfa:.2f} | {cfa:.3f} | {cfb:.3f} | {cfa / cfb:.2f} "
                         f"| {os.getloadavg()[0]:.1f} |")
        print(from_file[-1], flush=True)
        path.unlink()
        del df, close, bound, small, res
    lines += ["", "(d) ran on the first 2,000 bars and is scaled linearly to the row's size. "
              "Peak memory is tracemalloc's peak for one run of (a) on min(bars, 2M) plus the bytes the run's "
              "result holds in Arrow's memory pool (timeline and output arrays are allocated there; output "
              "arrays are sized for the whole stream up front, so the peak counts them whole)."]
    lines += from_file
    lines += parallel_section(compiled, per_symbol=100_000 if args.quick else 1_000_000)
    cold, warm = cold_warm()
    lines += ["", "## Compile: cold vs warm (fresh process each, compile + run 1,000 bars)", "",
              f"- cold (empty build cache): {cold:.2f} s",
              f"- warm (generated module and Numba cache on disk): {warm:.2f} s", ""]
    lines.insert(5, "")
    lines.insert(6, f"Run {started:%Y-%m-%d %H:%M} UTC; 1-minute load average {load_start:.1f} at the start and "
                 f"{os.getloadavg()[0]:.1f} at the end (the machine is shared: other jobs' load shows in every "
                 "timing).")
    out = ROOT / "benchmarks" / "results" / "runtime.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines[-4:]))


def parallel_section(compiled, per_symbol: int) -> list[str]:
    """Throughput on 16 symbols: worker threads in one process."""
    multi = bars(per_symbol, symbols=16, seed=1)
    bound = bind(compiled.module, multi)
    tiny = bind(compiled.module, bars(200, symbols=16, seed=1))
    lines = ["", f"## Workers and processes (16 symbols × {per_symbol:,} bars = {len(multi):,} bars, "
             "data bound beforehand, best of 3)", "",
             "| workers | s | M bars/s | s on 16 × 200 bars (start-up) |",
             "|---|---|---|---|"]
    ref = None
    for workers in (1, 2, 4):
        tw, res = timed(lambda: compiled.run(bound, workers=workers), repeat=3)
        ts, _ = timed(lambda: compiled.run(tiny, workers=workers), repeat=3)
        ref = ref if ref is not None else res["momentum_signal"]
        assert res["momentum_signal"].equals(ref), "parallel run differs from workers=1"
        lines.append(f"| {workers} | {tw:.3f} | {len(multi) / tw / 1e6:.1f} | {ts:.3f} |")
        print(lines[-1], flush=True)
    lines += ["", "Workers are Bytewax worker threads in one process (`cluster_main`, one GIL). The last column "
              "is the same run on 200 bars per symbol: the fixed cost. Several processes or machines: "
              "`benchmarks/bench_cluster.py`."]
    return lines


if __name__ == "__main__":
    main()
