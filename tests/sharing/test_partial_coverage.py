"""Partial coverage: an opaque node stored for the first part of the bars is read there and called only
after it, when the same bars continue; every output equals a run from scratch, bit for bit — with one
symbol, several symbols, and an opaque node reading two clocks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qmtl.runtime.artifacts import ArtifactStore
from qmtl.runtime.sdk import Node, Strategy, StreamInput
from tests.sharing.test_shared_nodes import CALLS, FeatureB, compile_counted

FAST = StreamInput(interval=60, period=5, name="fast")
SLOW = StreamInput(interval=300, period=2, name="slow")


def spread(view):
    """Opaque: the fast close over the slow close, from positional reads."""
    return float(view[FAST][60]["close"].iloc[-1] / view[SLOW][300]["close"].iloc[0])


class TwoClocks(Strategy):
    def setup(self):
        node = Node(input=[FAST, SLOW], compute_fn=spread, period=2, name="spread")
        after = Node(input=node, compute_fn=lambda v: v[node][60].diff(), period=2, name="spread_diff")
        self.add_nodes([FAST, SLOW, node, after])


def _bars(n: int, symbols=("SYM",), seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for sym in symbols:
        close = 100 + rng.standard_normal(n).cumsum()
        frames.append(pd.DataFrame({"ts": np.arange(n, dtype=np.int64) * 60, "symbol": sym, "open": close,
                                    "high": close + 1, "low": close - 1, "close": close, "volume": 1.0}))
    return pd.concat(frames, ignore_index=True)


def _head(bars: pd.DataFrame, n: int) -> pd.DataFrame:
    return bars[bars["ts"] < n * 60].reset_index(drop=True)


def _same(a, b) -> None:
    assert list(a.outputs) == list(b.outputs)
    for name in a.outputs:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True, obj=name)


@pytest.mark.parametrize("cls, symbols", [(FeatureB, ("SYM",)), (FeatureB, ("AAA", "BBB")),
                                          (TwoClocks, ("SYM",))])
def test_stored_prefix_is_read_and_only_the_rest_computed(cls, symbols, tmp_path):
    program = compile_counted(cls)
    full = _bars(900, symbols)
    CALLS["n"] = 0
    scratch = program.run(full)
    calls_full = CALLS["n"]
    for batch_size in (None, 7):
        store = ArtifactStore(tmp_path / f"batch-{batch_size}")
        program.run(_head(full, 600), store=store)
        CALLS["n"] = 0
        continued = program.run(full, store=store, batch_size=batch_size)
        _same(scratch, continued)
        assert 0 < CALLS["n"] < calls_full * 0.45  # about a third of the bars are new
    # the continued run stored the whole series: the next run over these bars calls nothing
    CALLS["n"] = 0
    again = program.run(full, store=store)
    assert CALLS["n"] == 0 and again.sharing.reused
    _same(scratch, again)


def test_different_early_bars_are_not_a_prefix(tmp_path):
    program = compile_counted(FeatureB)
    full = _bars(700)
    store = ArtifactStore(tmp_path)
    other = _head(full, 400)
    other.loc[10, "close"] += 1.0  # the stored run saw another bar 10
    program.run(other, store=store)
    CALLS["n"] = 0
    res = program.run(full, store=store)
    CALLS["n"], calls = 0, CALLS["n"]
    program.run(full)
    scratch_calls = CALLS["n"]
    assert calls == scratch_calls  # nothing read: every call made
    _same(program.run(full), res)
