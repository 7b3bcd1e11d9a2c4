"""A traced node means what its compute function computes: evaluating the traced ops with the op
registry's reference implementations gives the numbers the function gives on a concrete CacheView."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest

from qmtl.ir.ops import REGISTRY
from qmtl.runtime.sdk import CacheView, bollinger, zscore

from .helpers import one_node


def evaluate(result, bars: dict[str, np.ndarray], output: str):
    """Whole-window evaluation of the module with each op's reference implementation."""
    env: dict[str, object] = {}
    for op in result.module.ops:
        ref = REGISTRY[op.name].reference
        accepted = inspect.signature(ref).parameters
        attrs = {k: v for k, v in op.attrs if k in accepted or any(
            p.kind is p.VAR_KEYWORD for p in accepted.values())}
        if op.name == "stream_input":
            env[op.result] = bars
        else:
            env[op.result] = ref(*(env[s] for s in op.operands), **attrs)
    return env[result.module.output(output).value]


FUNCTIONS = [
    lambda v: v["price"][60]["close"].pct_change().rolling(5).mean(),
    lambda v: (v["price"][60]["close"].diff(2) > 0).astype(int),
    lambda v: v["price"][60]["close"].ewm(span=7).mean(),
    lambda v: v["price"][60]["close"].ewm(alpha=0.3, adjust=False).mean(),
    lambda v: (2.0 - v["price"][60]["close"]) / v["price"][60]["volume"],
    lambda v: v["price"][60]["close"].where(v["price"][60]["close"] > 100.0, -1.0),
    lambda v: v["price"][60]["close"].mask(v["price"][60]["close"] > 100.0),
    lambda v: np.where(v["price"][60]["close"] > v["price"][60]["open"], 1.0, -1.0),
    lambda v: np.log(v["price"][60]["close"]).diff().rolling(4).std(ddof=0).fillna(0.0),
    lambda v: v["price"][60]["close"].shift(3).clip(lower=99.0, upper=101.0),
    lambda v: zscore(v["price"][60]["close"], 6),
    lambda v: bollinger(v["price"][60]["close"], 8, 1.5)[2],
]


@pytest.mark.parametrize("index", range(len(FUNCTIONS)))
def test_traced_ops_compute_what_the_function_computes(index: int) -> None:
    fn = FUNCTIONS[index]
    rng = np.random.default_rng(index)
    n = 40
    close = 100 + np.cumsum(rng.normal(0, 0.5, n))
    frame = pd.DataFrame({"ts": np.arange(n) * 60, "open": close + rng.normal(0, 0.2, n), "close": close,
                          "volume": rng.uniform(1, 5, n)})
    result = one_node(fn)
    assert result.module.output("sig").kind == "traced"
    traced = evaluate(result, {c: frame[c].to_numpy() for c in frame.columns}, "sig")
    concrete = fn(CacheView({"id": {60: frame}}, names={"price": "id"}))
    np.testing.assert_allclose(np.asarray(traced, dtype=float), np.asarray(concrete, dtype=float),
                               equal_nan=True, rtol=1e-12)
