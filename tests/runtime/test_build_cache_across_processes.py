"""The build cache (issue 3 part 3): compiling and running the same strategy a second time, in a new
process, loads the generated module's kernels from Numba's on-disk cache instead of recompiling them.

Measured by Numba's own per-dispatcher counters (``stats.cache_hits`` / ``cache_misses``) in two
fresh interpreters sharing one ``QMTL_HOME`` — not by timing, which a shared machine makes noisy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r'''
import json, sys
import numba
import qmtl
from qmtl.codegen import cache
from qmtl.runtime.synthetic import synthetic_bars

c = qmtl.compile(sys.argv[1])
out = c.run(synthetic_bars(300, seed=4))
mod = cache.load(c.module)
hits = misses = 0
for value in vars(mod).values():
    if isinstance(value, numba.core.registry.CPUDispatcher) and value.signatures:
        hits += sum(value.stats.cache_hits.values())
        misses += sum(value.stats.cache_misses.values())
print(json.dumps({"hits": hits, "misses": misses, "rows": len(out.outputs["momentum_signal"]),
                  "file": str(cache.module_path(c.module))}))
'''


def _run(home: Path) -> dict:
    env = {**os.environ, "QMTL_HOME": str(home), "PYTHONHASHSEED": "0"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT / "examples" / "momentum.py")],
                          env=env, capture_output=True, text=True, timeout=300, cwd=home)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_second_process_loads_kernels_from_the_numba_cache(tmp_path):
    first = _run(tmp_path)
    generated = Path(first["file"])
    assert generated.is_file() and generated.parent.parent == tmp_path / "build"
    assert first["misses"] > 0  # cold: kernels compiled and written to the cache
    assert list((generated.parent / "__pycache__").glob(f"{generated.stem}.*.nbi"))
    second = _run(tmp_path)
    assert second["file"] == first["file"] and second["rows"] == first["rows"] > 0
    assert second["misses"] == 0 and second["hits"] > 0, second
