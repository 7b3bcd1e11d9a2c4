"""Random multi-node DAGs (opaque nodes in the middle, two clocks, gaps) run from scratch, then with
the artifact store filled by that run, then with a random part of the store deleted: every run's
outputs are the same, bit for bit, at batch sizes 1 and 10,000, and a fully stored run calls no
opaque function."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from qmtl.compiler.compiled import CompiledStrategy
from qmtl.runtime.artifacts import ArtifactStore
from qmtl.runtime.engine import run
from tests.codegen.test_dags_random_multi_node import _data, dags, window_mean


def _same(a, b) -> None:
    assert list(a.outputs) == list(b.outputs)
    for name in a.outputs:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True, obj=name)


@settings(max_examples=8, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow],
          phases=[Phase.explicit, Phase.generate])
@given(module=dags(), seed=st.integers(0, 500), keep=st.sampled_from([1.0, 0.6]),
       drop=st.randoms(use_true_random=False))
def test_reused_values_give_the_same_outputs(module, seed, keep, drop):
    calls = {"n": 0}

    def counted(view):
        calls["n"] += 1
        return window_mean(view)

    compiled = CompiledStrategy(module.name, module, functions={"mean": counted})
    data = _data(seed, keep)
    root = tempfile.mkdtemp()
    try:
        store = ArtifactStore(root)
        scratch = run(compiled, data, batch_size=10_000)
        first = run(compiled, data, batch_size=10_000, store=store)
        _same(scratch, first)
        assert not first.sharing.reused
        calls["n"] = 0
        for bs in (1, 10_000):
            again = run(compiled, data, batch_size=bs, store=store)
            _same(scratch, again)
            assert set(again.sharing.reused) == set(first.sharing.written)
        assert calls["n"] == 0  # every opaque node's value was stored: none was called
        stored = sorted(a.path for a in store.ls())
        for path in drop.sample(stored, k=len(stored) // 2):
            Path(path).unlink()
        partial = run(compiled, data, batch_size=7, store=store)
        _same(scratch, partial)
    finally:
        shutil.rmtree(root, ignore_errors=True)
