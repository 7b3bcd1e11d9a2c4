"""A compute function returning a matrix (``corr()``) has the whole matrix as its value at each tick;
a node reading it gets windows of whole ticks (``period`` matrices, not ``period`` rows).  The flow
equals the reference interpreter at every batch size, on one and several symbols."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import qmtl
from qmtl.runtime.results import assert_results_equal
from qmtl.runtime.sdk import Node, Strategy, StreamInput

P = StreamInput(interval=60, period=5, name="p")


def corr_matrix(view):
    window = view[P][60]
    return pd.DataFrame({"c": window["close"].to_numpy(), "v": window["volume"].to_numpy()}).corr()


def ticks_seen(view):
    window = view[COR][60]
    return {"ticks": float(len(window.index.get_level_values("ts").unique())),
            "rows": float(len(window)), "total": float(np.nansum(np.asarray(window)))}


COR = Node(input=P, compute_fn=corr_matrix, period=10, name="cor")


class Matrices(Strategy):
    def setup(self):
        self.add_nodes([P, COR, Node(input=COR, compute_fn=ticks_seen, period=2, name="tot")])


@pytest.mark.parametrize("symbols", [("SYM",), ("AAA", "BBB")])
def test_windows_of_a_matrix_hold_whole_ticks(symbols):
    rng = np.random.default_rng(0)
    frames = []
    for sym in symbols:
        close = 100 + rng.standard_normal(60).cumsum()
        frames.append(pd.DataFrame({"ts": np.arange(60) * 60, "symbol": sym, "open": close, "high": close,
                                    "low": close, "close": close, "volume": rng.random(60)}))
    bars = pd.concat(frames, ignore_index=True)
    program = qmtl.compile(Matrices)
    expected = program.run_reference(bars)
    cor = expected["cor"]
    assert "row" in cor.index.names and set(cor.columns) >= {"c", "v"}
    tot = expected["tot"]
    assert (tot["ticks"] == 2).all() and (tot["rows"] == 4).all()  # 2 ticks, each a 2 x 2 matrix
    for batch_size in (None, 1, 7):
        assert_results_equal(program.run(bars, batch_size=batch_size), expected)
