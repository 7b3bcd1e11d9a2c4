"""Where the time of ``compiled.run(path)`` goes: the momentum strategy end to end from a Parquet file.

    .venv/bin/python benchmarks/profile_from_file.py [--bars 2000000] [--profile]

Prints the least CPU time (this process, all threads, page faults included) of each stage on its own
— decoding ``ts`` and ``close`` from the file, loading and validating them, the run on data already
loaded — next to the whole run and the hand-written loop's baseline, so a change to the data path can
be judged on a shared machine where wall times mostly measure waiting for a core.  ``--profile``
adds cProfile's top functions of five whole runs.  Nothing is written; bench_runtime.py is the
benchmark of record.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import handwritten  # noqa: E402
from bench_runtime import EXAMPLE, bars, cpu_timed  # noqa: E402

import qmtl  # noqa: E402
from qmtl.runtime.data import load  # noqa: E402



def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=2_000_000)
    ap.add_argument("--profile", action="store_true", help="cProfile five whole runs too")
    args = ap.parse_args()
    path = Path(tempfile.mkdtemp(prefix="qmtl-prof-")) / "bars.parquet"
    bars(args.bars).to_parquet(path)  # pandas' writer, as a user's file usually is
    compiled = qmtl.compile(str(EXAMPLE))
    compiled.run(path)  # kernels compiled / loaded outside the measurements
    handwritten.run(bars(100)["close"].to_numpy())
    loaded = load(path, {"close"})
    stages = {
        "decode ts (ParquetFile.read)": lambda: pq.ParquetFile(path).read(columns=["ts"]),
        "decode close (ParquetFile.read)": lambda: pq.ParquetFile(path).read(columns=["close"]),
        "load: read + validate ts, close": lambda: load(path, {"close"}),
        "run on the loaded data": lambda: compiled.run(loaded),
        "run(path), the whole": lambda: compiled.run(path),
        "hand loop reading close": lambda: handwritten.run(
            pq.read_table(path, columns=["close"]).column("close").to_numpy()),
    }
    print(f"{args.bars:,} bars, least CPU of 7 runs:")
    for name, fn in stages.items():
        print(f"  {name:34s} {cpu_timed(fn, 7) * 1e3:8.1f} ms")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(5):
            compiled.run(path)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(12)
    path.unlink()


if __name__ == "__main__":
    main()
