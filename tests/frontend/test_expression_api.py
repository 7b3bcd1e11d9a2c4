"""The expression API, traced compute functions and indicator helpers produce the same ops."""

from __future__ import annotations

import pandas as pd
import pytest

from qmtl.runtime.sdk.source_location import display_path
from qmtl.compiler.frontend import trace
from qmtl.ir.diagnostics import errors
from qmtl.runtime.sdk import Node, StreamInput, Strategy, atr, bollinger, ema, macd, rsi, sma, zscore

from .helpers import one_node, output_id, shape


def test_momentum_expression_equals_traced_function() -> None:
    def traced(view):
        c = view.as_frame("price", 60, columns=["close"]).validate_columns(["close"]).frame["close"]
        return pd.DataFrame({"signal": (c.pct_change().rolling(5).mean() > 0).astype(int)})

    a = one_node(traced)
    b = one_node(expr=lambda p: {"signal": (p.close.pct_change().rolling(5).mean() > 0).astype(int)})
    assert shape(a, "sig") == shape(b, "sig")
    assert output_id(a, "sig") == output_id(b, "sig")


HELPERS = [
    ("sma", lambda s: sma(s, 5), lambda s: s.rolling(5).mean()),
    ("zscore", lambda s: zscore(s, 10), lambda s: (s - s.rolling(10).mean()) / s.rolling(10).std()),
    ("bollinger_upper", lambda s: bollinger(s, 20, 2.0)[0],
     lambda s: s.rolling(20).mean() + s.rolling(20).std(ddof=0) * 2.0),
]


@pytest.mark.parametrize("label, helper, pandas_form", HELPERS, ids=[h[0] for h in HELPERS])
def test_helpers_equal_their_pandas_spelling(label, helper, pandas_form) -> None:
    via_helper = one_node(lambda v: helper(v["price"][60]["close"]))
    via_pandas = one_node(lambda v: pandas_form(v["price"][60]["close"]))
    via_expr = one_node(expr=lambda p: helper(p.close))
    assert output_id(via_helper, "sig") == output_id(via_pandas, "sig") == output_id(via_expr, "sig")


@pytest.mark.parametrize("helper, op, attrs", [
    (lambda s: ema(s, 10), "ema", {"period": 10}),
    (lambda s: rsi(s), "rsi", {"period": 14}),
    (lambda s: macd(s, 3, 8, 4)[1], "column", {"name": "macdsignal"}),
])
def test_recursive_helpers_trace_and_match_expression_api(helper, op, attrs) -> None:
    traced = one_node(lambda v: helper(v["price"][60].close))
    expressed = one_node(expr=lambda p: helper(p.close))
    assert shape(traced, "sig")[-1] == (op, attrs)
    assert output_id(traced, "sig") == output_id(expressed, "sig")


def test_macd_is_one_op_with_three_columns() -> None:
    result = one_node(expr=lambda p: dict(zip(("m", "s", "h"), macd(p.close))))
    names = [n for n, _ in shape(result, "sig")]
    assert names.count("macd") == 1 and names.count("column") == 4 and names[-1] == "make_frame"


def test_atr_from_bars_and_from_three_series_agree() -> None:
    from_bars = one_node(lambda v: atr(v["price"][60], n=7))
    from_series = one_node(expr=lambda p: atr(p.high, p.low, p.close, n=7))
    from_node = one_node(expr=lambda p: atr(p, n=7))
    assert shape(from_bars, "sig")[-1] == ("atr", {"period": 7})
    assert output_id(from_bars, "sig") == output_id(from_series, "sig") == output_id(from_node, "sig")


def test_ewm_identity_does_not_depend_on_the_enclosing_nodes_period() -> None:
    """docs/design.md "Identity": an ewm runs over the whole history, so the node's period (its
    warm-up) is not part of its NodeID."""
    short = one_node(expr=lambda p: p.close.ewm(span=5).mean(), period=10)
    long = one_node(expr=lambda p: p.close.ewm(span=5).mean(), period=40)
    assert "period" not in shape(short, "sig")[-1][1]
    assert output_id(short, "sig") == output_id(long, "sig")
    # a rolling mean does not depend on the period, so its identity does not either
    assert output_id(one_node(expr=lambda p: sma(p.close, 5), period=10), "sig") == \
        output_id(one_node(expr=lambda p: sma(p.close, 5), period=40), "sig")


def test_series_valued_nodes_combine_through_ref() -> None:
    class Cross(Strategy):
        def setup(self):
            price = StreamInput(tags=["eth"], interval=60, period=50)
            fast = Node(expr=sma(price.close, 5), name="fast")
            slow = Node(expr=sma(price.close, 20), name="slow")
            cross = Node(expr={"up": fast.ref() > slow.ref()}, name="cross")
            self.add_nodes([cross])

    result = trace(Cross)
    assert not errors(result.diagnostics)
    ops = result.module.op_map()
    gt = ops[ops["cross"].operands[0]]
    assert gt.name == "gt" and gt.operands == ("fast", "slow")
    assert [o.name for o in result.module.outputs] == ["price", "fast", "slow", "cross"]


def test_type_error_in_an_expression_is_a_diagnostic() -> None:
    class Bad(Strategy):
        def setup(self):
            price = StreamInput(interval=60, period=5)
            self.add_nodes([Node(expr=~price.close, name="bad")])

    result = trace(Bad)
    (err,) = errors(result.diagnostics)
    assert err.code == "E106" and "bool" in err.message and err.loc.file == display_path(__file__)
