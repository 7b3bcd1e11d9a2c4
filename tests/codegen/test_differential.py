"""Generated kernels against the reference interpreter, op by op and on random small DAGs.

Each case runs the same module and data through ``qmtl.runtime.engine.run`` at several batch sizes
(1, 7, window-1, window, window+1, all) and through ``qmtl.runtime.reference.evaluate``; results
must agree (rtol 1e-9, NaN where NaN).  NaNs enter through a sparse optional column and through ops
(log of negatives, division by zero).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qmtl.compiler.compiled import CompiledStrategy
from qmtl.runtime.binding import bind
from qmtl.runtime.engine import run
from qmtl.runtime.reference import evaluate
from qmtl.runtime.results import assert_results_equal
from qmtl.runtime.synthetic import synthetic_bars

from .modules import Builder, momentum


def _data(n: int, symbols=("A", "B"), seed: int = 0) -> pd.DataFrame:
    df = synthetic_bars(n, symbols=symbols, seed=seed)
    rng = np.random.default_rng(seed)
    sparse = rng.normal(size=len(df))
    sparse[rng.random(len(df)) < 0.15] = np.nan  # an optional column may hold NaN
    df["signal"] = sparse
    return df


def _check(module, data, window: int) -> None:
    ref = evaluate(module, {}, bind(module, data))
    compiled = CompiledStrategy(module.name, module)
    for bs in sorted({1, 7, max(1, window - 1), window, window + 1, 10_000}):
        assert_results_equal(run(compiled, data, batch_size=bs), ref)


def _unary_module(opname: str, field: str = "close", node_period: int = 12, **attrs):
    b = Builder(f"u_{opname}")
    x = b.op("column", b.source(), name=field)
    b.out("node", b.op(opname, x, **attrs), node_period)
    return b.module()


WINDOWED = [
    ("pct_change", {}), ("pct_change", {"periods": 3}), ("diff", {"periods": 2}), ("shift", {"periods": 4}),
    ("rolling_mean", {"window": 5}), ("rolling_sum", {"window": 4, "min_periods": 2}),
    ("rolling_min", {"window": 6}), ("rolling_max", {"window": 3, "min_periods": 1}),
    ("rolling_std", {"window": 5}), ("rolling_var", {"window": 7, "ddof": 0}),
    ("ewm_mean", {"alpha": 0.3, "period": 12}), ("ewm_mean", {"alpha": 0.2, "adjust": False, "period": 12}),
    ("ema", {"period": 5}), ("rsi", {"period": 6}),
]


@pytest.mark.parametrize("opname,attrs", WINDOWED, ids=lambda x: str(x))
@pytest.mark.parametrize("field", ["close", "signal"])
def test_windowed_and_recursive_ops_match_reference(opname, attrs, field):
    _check(_unary_module(opname, field, **attrs), _data(80), window=int(attrs.get("window", 5)))


ELEMENTWISE_UNARY = ["neg", "abs", "log", "exp", "sqrt", "sign"]


@pytest.mark.parametrize("opname", ELEMENTWISE_UNARY)
def test_unary_elementwise_ops_on_nan_producing_inputs(opname):
    b = Builder(opname)
    src = b.source()
    x = b.op("sub", b.op("column", src, name="signal"), b.op("const", value=0.1))  # negatives, NaN
    b.out("node", b.op(opname, x), 3)
    _check(b.module(), _data(40), window=3)


BINARY = ["add", "sub", "mul", "div", "pow", "gt", "ge", "lt", "le", "eq", "ne", "and", "or",
          "maximum", "minimum"]


@pytest.mark.parametrize("opname", BINARY)
def test_binary_elementwise_ops(opname):
    b = Builder(opname)
    src = b.source()
    x = b.op("column", src, name="signal")
    y = b.op("diff", b.op("column", src, name="close"))  # zero-crossing, so div hits ±inf and NaN
    b.out("node", b.op(opname, x, y), 4)
    _check(b.module(), _data(50), window=4)


def test_structural_and_attribute_ops():
    b = Builder("structural")
    src = b.source()
    s = b.op("column", src, name="signal")
    c = b.op("column", src, name="close")
    filled = b.op("fillna", s, value=0.5)
    clipped = b.op("clip", s, lower=-0.5, upper=0.7)
    chosen = b.op("where", b.op("gt", s, b.op("const", value=0.0)), c, filled)
    flag = b.op("astype", b.op("gt", c, b.op("const", value=100.0)), dtype="i64")
    b.out("node", b.op("make_frame", filled, clipped, chosen, flag, b.op("not", flag),
                       columns=("filled", "clipped", "chosen", "flag", "notflag")), 5)
    _check(b.module(), _data(60), window=5)


def test_atr_and_macd_frame_columns():
    b = Builder("ind")
    src = b.source()
    h, l, c = (b.op("column", src, name=f) for f in ("high", "low", "close"))
    macd = b.op("macd", c, fast=3, slow=6, signal=4)
    b.out("atr", b.op("atr", h, l, c, period=5), 8)
    b.out("macd", macd, 10)
    b.out("hist", b.op("mul", b.op("column", macd, name="macdhist"), b.op("const", value=2.0)), 10)
    _check(b.module(), _data(90), window=10)


def test_node_downstream_of_node_sees_only_emitted_values():
    b = Builder("chain")
    src = b.source()
    first = b.out("first", b.op("rolling_mean", b.op("column", src, name="close"), window=3), 5)
    b.out("second", b.op("ema", b.op("pct_change", first), period=3), 6)
    _check(b.module(), _data(70), window=6)


def test_momentum_single_symbol_and_many_symbols():
    _check(momentum(), _data(200, symbols=("SYM",)), window=30)
    _check(momentum(), _data(120, symbols=tuple("ABCDE"), seed=3), window=30)


# --- random small DAGs ----------------------------------------------------------------------------

_UNARY_CHOICES = [("pct_change", {}), ("diff", {"periods": 2}), ("rolling_mean", {"window": 3}),
                  ("rolling_std", {"window": 4}), ("rolling_max", {"window": 2}), ("ema", {"period": 3}),
                  ("abs", {}), ("log", {}), ("shift", {"periods": 1})]
_BINARY_CHOICES = ["add", "sub", "mul", "div", "maximum"]


@st.composite
def random_dags(draw):
    b = Builder("rand")
    src = b.source()
    values = [b.op("column", src, name=draw(st.sampled_from(["close", "open", "signal", "volume"])))]
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.booleans()) and len(values) > 1:
            a, c = draw(st.sampled_from(values)), draw(st.sampled_from(values))
            values.append(b.op(draw(st.sampled_from(_BINARY_CHOICES)), a, c))
        else:
            name, attrs = draw(st.sampled_from(_UNARY_CHOICES))
            values.append(b.op(name, draw(st.sampled_from(values)), **attrs))
    b.out("node", values[-1], 16)
    return b.module()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(module=random_dags(), seed=st.integers(0, 1000), batch=st.integers(1, 40))
def test_random_dags_match_reference(module, seed, batch):
    data = _data(60, seed=seed)
    ref = evaluate(module, {}, bind(module, data))
    # Random chains of ratios (pct_change of pct_change, div) reach condition numbers near 1e6, where
    # the kernel's two-pass rolling variance and pandas' online update round differently (seen: 2.5e-8
    # relative on a std of 1.3e4): compare at 1e-7 here; the per-op tests keep 1e-9.
    assert_results_equal(run(CompiledStrategy(module.name, module), data, batch_size=batch), ref, rtol=1e-7)
