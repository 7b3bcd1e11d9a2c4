"""The blueprint's appendix strategies compile unchanged."""

from __future__ import annotations

from pathlib import Path

from qmtl.compiler.frontend import trace
from qmtl.compiler.loader import load_strategy

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_momentum_example_is_fully_traced() -> None:
    cls = load_strategy(EXAMPLES / "momentum.py", None)
    result = trace(cls)
    assert not result.diagnostics
    names = [op.name for op in result.module.ops]
    assert names == ["stream_input", "column", "pct_change", "rolling_mean", "const", "gt", "astype",
                     "make_frame"]
    ops = result.module.op_map()
    assert ops["price_stream"].attr_dict == {"interval": 60, "tags": ()}
    signal = ops["momentum_signal"]
    assert signal.attr("columns") == ("signal",) and str(signal.type) == "frame<signal: i64>"
    assert [(o.name, o.kind, o.period, o.interval) for o in result.module.outputs] == [
        ("price_stream", "source", 30, 60), ("momentum_signal", "traced", 30, 60)]
    # every op points at the line of momentum.py that produced it
    rolling = next(op for op in result.module.ops if op.name == "rolling_mean")
    line = (EXAMPLES / "momentum.py").read_text().splitlines()[rolling.loc.line - 1]
    assert rolling.loc.file.endswith("momentum.py") and ".rolling(5).mean()" in line
    assert set(result.sdk_nodes) == {"price_stream", "momentum_signal"}


def test_correlation_example_is_opaque_with_a_reason() -> None:
    result = trace(load_strategy(EXAMPLES / "correlation.py", None))
    ops = result.module.op_map()
    assert [op.name for op in result.module.ops] == ["tag_query", "py_call", "py_call"]
    query = next(op for op in result.module.ops if op.name == "tag_query")
    assert query.attr_dict == {"tags": ("ta-indicator",), "match_mode": "any", "interval": 3600}
    corr = ops["indicator_corr"]
    assert corr.operands == ("indicators",)
    assert "iterating the view" in corr.attr("reason") and "correlation.py:6" in corr.attr("reason")
    assert corr.attr("period") == 24 and corr.attr("fn") == "calc_corr"
    # both py_calls run the same function, so they share its code hash, bound in ``functions``
    assert ops["indicators"].attr("code_hash") == corr.attr("code_hash")
    assert result.functions[corr.attr("code_hash")].__name__ == "calc_corr"
    notes = [d for d in result.diagnostics if d.code == "N202"]
    assert len(notes) == 2 and all(d.severity == "note" for d in notes)
    assert {o.kind for o in result.module.outputs} == {"opaque"}


def test_examples_compile_through_the_whole_pipeline() -> None:
    import qmtl

    compiled = qmtl.compile(EXAMPLES / "momentum.py")
    node = compiled.sdk_nodes["momentum_signal"]
    assert node.node_id == compiled.node_ids["momentum_signal"] and node.node_id.startswith("blake3:")


def test_indicator_example_expression_and_traced_nodes_share_ids() -> None:
    from qmtl.ir.nodeid import node_ids

    result = trace(load_strategy(EXAMPLES / "indicators.py", None))
    assert not result.diagnostics
    ids = node_ids(result.module)
    out = {o.name: ids[o.value] for o in result.module.outputs}
    assert out["trend"] == out["trend_traced"]
    ops = {op.name for op in result.module.ops}
    assert {"ema", "rolling_mean", "rsi", "macd", "rolling_std", "atr"} <= ops


def test_multi_node_example_reads_another_nodes_frame() -> None:
    result = trace(load_strategy(EXAMPLES / "multi_node.py", None))
    assert not result.diagnostics
    assert [(o.name, o.kind) for o in result.module.outputs] == [
        ("btc", "source"), ("eth", "source"), ("returns", "traced"), ("spread_signal", "traced")]
    ops = result.module.op_map()
    reads = [op for op in result.module.ops if op.name == "column" and op.operands == ("returns",)]
    assert sorted(op.attr("name") for op in reads) == ["btc_ret", "eth_ret"]
    assert ops["spread_signal"].attr("columns") == ("z", "position")
