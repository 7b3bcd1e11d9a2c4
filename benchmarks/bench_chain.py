"""A 2,000-node chain of traced nodes on 3,000 bars: compile + first run cold, and warm.

Run: ``.venv/bin/python benchmarks/bench_chain.py [nodes]``.  Each measurement is a fresh process
running ``qmtl.compile(file).run(parquet)`` as a user would (reading the file included).  Cold: an
empty build cache (Numba compiles every kernel); warm: the same command again (kernels load from
Numba's on-disk cache).  Targets: cold ≤ 30 s, warm ≤ 3 s.
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

SCRIPT = """
import sys, qmtl
out = qmtl.compile(sys.argv[1]).run(sys.argv[2]).outputs
assert len(out) == int(sys.argv[3]), len(out)
"""


def _timed_run(env: dict, path: Path, nodes: int) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT / "benchmarks" / "strategies" / "chain.py"),
                    str(path), str(nodes)], check=True, env=env)
    return time.perf_counter() - start


def main(nodes: int = 2000, bars: int = 3000) -> None:
    from qmtl.runtime.synthetic import synthetic_bars
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bars.parquet"
        synthetic_bars(bars, seed=1).drop(columns="symbol").to_parquet(path)
        env = {**os.environ, "QMTL_HOME": str(Path(tmp) / "home"), "QMTL_CHAIN_N": str(nodes),
               "PYTHONPATH": str(ROOT)}
        cold = _timed_run(env, path, nodes)
        warm = min(_timed_run(env, path, nodes) for _ in range(2))
    print(f"# {nodes}-node traced chain, {bars} bars ({machine()})")
    print(f"compile + first run, cold cache: {cold:.1f} s (target ≤ 30 s); warm: {warm:.1f} s (target ≤ 3 s)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
