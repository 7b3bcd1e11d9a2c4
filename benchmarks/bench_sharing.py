"""Shared execution: 10 strategies sharing 80 % of their nodes (an opaque per-tick feature, rolling
windows of 1,000–2,000 bars), over one Parquet file of 1-minute bars.

Run: ``.venv/bin/python benchmarks/bench_sharing.py [bars]`` (default 100,000).  Three ways, each a
fresh process doing what a user does (compile the files, read the Parquet file, run):

(a) separately from scratch: ``compile(f).run(bars)`` for each strategy;
(b) one after the other with the artifact store (empty at the start): ``run(bars, store=...)``;
(c) one ``qmtl.replay(files, bars)`` (no store): the union module, each NodeID once.

Every mode is rehearsed once untimed first, so all three read generated kernels from the build
cache; the times below are the second runs.  *Ideal* is the first strategy from scratch (no store)
plus each other strategy run with every shared node already stored (what it cannot avoid: reading
them, computing its own two): the cost of computing the shared nodes exactly once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._machine import machine  # noqa: E402

STRATEGY = ROOT / "benchmarks" / "strategies" / "shared_features.py"
N = 10

SCRIPT = """
import os, sys, time, qmtl
from qmtl.runtime.artifacts import ArtifactStore
mode, data, store_dir, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
path = {strategy!r}

def compiled(i):
    os.environ["QMTL_SHARED_VARIANT"] = str(i)
    return qmtl.compile(path)

store = ArtifactStore(store_dir) if mode in ("store", "ideal", "prefill") else None
if mode == "prefill":  # every shared node stored, as strategy 0 leaves them (before "ideal")
    compiled(0).run(data, store=store)
    raise SystemExit(print(0.0))
t0 = time.perf_counter()
if mode == "replay":
    res = qmtl.replay([compiled(i) for i in range(n)], data)
    assert len(res.strategies) == n
else:
    for i in range(n):
        # ideal: strategy 0 computes everything (no store); each other one only what is its own
        out = compiled(i).run(data, store=None if mode == "ideal" and i == 0 else store)
        assert len(out.outputs) == 10, list(out.outputs)  # every node but the source
print(time.perf_counter() - t0)
"""


def _run(mode: str, data: Path, store: Path, n: int, env: dict) -> list[float]:
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(strategy=str(STRATEGY)), mode, str(data),
                           str(store), str(n)], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{mode} run failed:\n{done.stderr[-3000:]}")
    return [float(x) for x in done.stdout.split()]


def main(bars: int = 100_000) -> None:
    from qmtl.runtime.synthetic import synthetic_bars
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "bars.parquet"
        synthetic_bars(bars, seed=1).drop(columns="symbol").to_parquet(data)
        env = {**os.environ, "QMTL_HOME": str(Path(tmp) / "home"), "PYTHONPATH": str(ROOT)}
        times = {}
        for mode in ("scratch", "store", "replay", "ideal"):
            # rehearsal (fills the build cache), then the timed run on an empty (ideal: pre-filled,
            # by another process, so the timed one loads its kernels as the others do) store
            for run_dir in (f"rehearse-{mode}", f"store-{mode}"):
                if mode == "ideal":
                    _run("prefill", data, Path(tmp) / run_dir, N, env)
                times[mode] = _run(mode, data, Path(tmp) / run_dir, N, env)
    a, b, c = times["scratch"][0], times["store"][0], times["replay"][0]
    ideal_total = times["ideal"][0]
    print(f"# shared execution: {N} strategies sharing 80 % of their nodes, {bars:,} bars ({machine()})")
    print(f"(a) separately from scratch:        {a:7.2f} s")
    print(f"(b) one after the other, with store: {b:7.2f} s   = {b / a:.2f} x (a)")
    print(f"(c) one replay (union module):       {c:7.2f} s   = {c / a:.2f} x (a)")
    print(f"ideal (shared nodes computed once):  {ideal_total:7.2f} s")
    print(f"(b) / ideal = {b / ideal_total:.2f}, (c) / ideal = {c / ideal_total:.2f}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
