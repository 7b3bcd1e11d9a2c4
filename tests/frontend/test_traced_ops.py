"""Each supported pandas/numpy operation traces to its op with the right attributes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from .helpers import one_node, shape


def close(view):
    return view.as_frame(view_node(view), 60).frame["close"]


def view_node(view):
    return "price"


CASES = [
    (lambda v: close(v).pct_change(), [("pct_change", {"periods": 1})]),
    (lambda v: close(v).pct_change(periods=3), [("pct_change", {"periods": 3})]),
    (lambda v: close(v).diff(2), [("diff", {"periods": 2})]),
    (lambda v: close(v).shift(), [("shift", {"periods": 1})]),
    (lambda v: close(v).rolling(5).mean(), [("rolling_mean", {"window": 5})]),
    (lambda v: close(v).rolling(5, min_periods=2).sum(), [("rolling_sum", {"window": 5, "min_periods": 2})]),
    (lambda v: close(v).rolling(4).min(), [("rolling_min", {"window": 4})]),
    (lambda v: close(v).rolling(4).max(), [("rolling_max", {"window": 4})]),
    (lambda v: close(v).rolling(7).std(), [("rolling_std", {"window": 7, "ddof": 1})]),
    (lambda v: close(v).rolling(7).var(ddof=0), [("rolling_var", {"window": 7, "ddof": 0})]),
    (lambda v: close(v).ewm(span=9).mean(), [("ewm_mean", {"alpha": 0.2, "adjust": True})]),
    (lambda v: close(v).ewm(alpha=0.5, adjust=False).mean(),
     [("ewm_mean", {"alpha": 0.5, "adjust": False})]),
    (lambda v: close(v).ewm(com=1).mean(), [("ewm_mean", {"alpha": 0.5, "adjust": True})]),
    (lambda v: abs(close(v)), [("abs", {})]),
    (lambda v: close(v).abs(), [("abs", {})]),
    (lambda v: -close(v), [("neg", {})]),
    (lambda v: close(v).clip(lower=0), [("clip", {"lower": 0})]),
    (lambda v: close(v).clip(-1.5, 2.5), [("clip", {"lower": -1.5, "upper": 2.5})]),
    (lambda v: close(v).fillna(0.0), [("fillna", {"value": 0.0})]),
    (lambda v: close(v).astype(float), [("astype", {"dtype": "f64"})]),
    (lambda v: (close(v) > 1).astype(bool), [("const", {"value": 1, "dtype": "i64"}), ("gt", {}),
                                              ("astype", {"dtype": "bool"})]),
    (lambda v: np.log(close(v)), [("log", {})]),
    (lambda v: np.exp(close(v)), [("exp", {})]),
    (lambda v: np.sqrt(close(v)), [("sqrt", {})]),
    (lambda v: np.abs(close(v)), [("abs", {})]),
    (lambda v: np.sign(close(v)), [("sign", {})]),
]


@pytest.mark.parametrize("fn, expected", CASES, ids=[e[1][-1][0] + str(i) for i, e in enumerate(CASES)])
def test_unary_ops(fn, expected) -> None:
    result = one_node(fn)
    assert shape(result, "sig") == [("column", {"name": "close"}), *expected]


@pytest.mark.parametrize("symbol, op", [("+", "add"), ("-", "sub"), ("*", "mul"), ("/", "div"),
                                        ("**", "pow"), (">", "gt"), (">=", "ge"), ("<", "lt"),
                                        ("<=", "le"), ("==", "eq"), ("!=", "ne")])
def test_binary_operators_with_scalars_and_reflected(symbol: str, op: str) -> None:
    forward = one_node(eval(f"lambda v: close(v) {symbol} 2.5", {"close": close}))
    assert shape(forward, "sig") == [("column", {"name": "close"}), ("const", {"value": 2.5, "dtype": "f64"}),
                                     (op, {})]
    ops = forward.module.op_map()
    top = ops[forward.module.output("sig").value]
    assert ops[top.operands[0]].name == "column"  # operand order is kept: x OP 2.5
    reflected = one_node(eval(f"lambda v: 3 {symbol} close(v)", {"close": close}))
    ops = reflected.module.op_map()
    top = ops[reflected.module.output("sig").value]
    expected_first = {"gt": "column", "ge": "column", "lt": "column", "le": "column", "eq": "column",
                      "ne": "column"}.get(op, "const")  # Python reflects comparisons: 3 > x is x < 3
    assert ops[top.operands[0]].name == expected_first


def test_logical_ops_and_where() -> None:
    def fn(view):
        c = view.as_frame("price", 60).frame["close"]
        up = (c > 1) & ~(c > 5) | (c < 0)
        return c.where(up, 0.0)

    names = [name for name, _ in shape(one_node(fn), "sig")]
    assert names.count("gt") == 2 and {"and", "or", "not", "where", "lt"} <= set(names)


def test_numpy_where_maximum_minimum() -> None:
    def fn(view):
        c = view["price"][60]["close"]
        o = view["price"]["1m"].open
        return np.where(c > o, np.maximum(c, o), np.minimum(c, o))

    names = [name for name, _ in shape(one_node(fn), "sig")]
    assert names == ["column", "column", "gt", "maximum", "minimum", "where"]


def test_frames_built_with_dataframe_and_concat() -> None:
    def fn(view):
        bars = view.as_frame("price", 60).frame
        ret = bars["close"].pct_change().rename("ret")
        vol = bars.volume.rolling(3).mean().rename("vol")
        return pd.concat([ret, vol], axis=1)

    result = one_node(fn)
    top = result.module.op_map()[result.module.output("sig").value]
    assert top.name == "make_frame" and top.attr("columns") == ("ret", "vol")
    assert str(top.type) == "frame<ret: f64, vol: f64>"


def test_dataframe_with_setitem_and_scalar_broadcast() -> None:
    def fn(view):
        out = pd.DataFrame({"close": view["price"][60]["close"], "one": 1})
        out["double"] = out["close"] * 2
        return out

    result = one_node(fn)
    top = result.module.op_map()[result.module.output("sig").value]
    assert top.attr("columns") == ("close", "one", "double")


def test_downstream_node_reads_upstream_frame_column() -> None:
    from qmtl.compiler.frontend import trace
    from qmtl.runtime.sdk import Node, StreamInput, Strategy

    class Two(Strategy):
        def setup(self):
            price = StreamInput(tags=["btc"], interval="1m", period=10)
            feat = Node(input=price, compute_fn=lambda v: pd.DataFrame({"ret": v[price][60].close.pct_change()}),
                        name="feat")
            sig = Node(input=feat, compute_fn=lambda v: (v[feat][60]["ret"] > 0).astype(int), name="sig")
            self.add_nodes([sig])

    result = trace(Two)
    ops = result.module.op_map()
    sig = ops[result.module.output("sig").value]
    assert sig.name == "astype"
    gt = ops[sig.operands[0]]
    column = ops[gt.operands[0]]
    assert column.name == "column" and column.operands == ("feat",) and column.attr("name") == "ret"
    assert [o.name for o in result.module.outputs] == ["price", "feat", "sig"]
