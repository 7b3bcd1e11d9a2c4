"""SDK node declarations: intervals, argument checks, locations and the expression API's errors."""

from __future__ import annotations

import pytest

import qmtl
from qmtl.runtime.sdk.source_location import display_path
from qmtl.runtime.sdk import Node, SDKArgumentError, StreamInput, TagQueryNode, UnsupportedOperation
from qmtl.runtime.sdk.intervals import parse_interval


@pytest.mark.parametrize("value, seconds", [(60, 60), ("60s", 60), ("1m", 60), ("1h", 3600),
                                            ("1d", 86400), ("15m", 900), ("30", 30)])
def test_intervals(value, seconds) -> None:
    assert parse_interval(value) == seconds


@pytest.mark.parametrize("value", ["1w", "m", "", -5, 0, 1.5, True, None])
def test_bad_intervals_name_the_value(value) -> None:
    with pytest.raises(SDKArgumentError, match=repr(value).replace("(", r"\(").replace(".", r"\.")):
        parse_interval(value)


def test_nodes_record_the_users_line() -> None:
    node = StreamInput(interval="1m", period=5)  # HERE
    assert node.loc.file == display_path(__file__)
    with open(__file__) as fh:
        assert "# HERE" in fh.read().splitlines()[node.loc.line - 1]


def test_argument_errors() -> None:
    price = StreamInput(interval=60)
    with pytest.raises(SDKArgumentError, match="period=0"):
        StreamInput(interval=60, period=0)
    with pytest.raises(SDKArgumentError, match="exactly one of compute_fn= or expr="):
        Node(input=price)
    with pytest.raises(SDKArgumentError, match="input="):
        Node(input=[price, "close"], compute_fn=lambda v: v)
    with pytest.raises(SDKArgumentError, match="match_mode"):
        TagQueryNode(query_tags=["x"], interval=60, match_mode="some")
    with pytest.raises(SDKArgumentError, match="expr="):
        Node(expr=42)


def test_expression_api_refuses_control_flow_with_a_location() -> None:
    price = StreamInput(interval=60)
    with pytest.raises(UnsupportedOperation, match=r"Python control flow .* at test_nodes.py:\d+"):
        if price.close > 0:
            pass
    with pytest.raises(UnsupportedOperation, match="Series.rank"):
        price.close.rank()
    with pytest.raises(UnsupportedOperation, match="operator //"):
        price.close // 2


def test_expression_nodes_find_their_inputs() -> None:
    a, b = StreamInput(interval=60, name="a"), StreamInput(interval=60, name="b")
    node = Node(expr={"spread": a.close - b["close"]}, name="spread")
    assert node.inputs == (a, b)


def test_public_names_are_exported() -> None:
    for name in ["Strategy", "Node", "StreamInput", "TagQueryNode", "MatchMode", "CacheView",
                 "sma", "ema", "rsi", "macd", "bollinger", "atr", "zscore"]:
        assert getattr(qmtl, name) is getattr(__import__("qmtl.runtime.sdk", fromlist=[name]), name)
