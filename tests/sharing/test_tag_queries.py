"""Tag queries over other strategies' node values: ``Node(tags=[...])`` labels a node, a run with the
artifact store stores its values with the labels and the sources they came from, and a
``TagQueryNode`` in another strategy, run on the same bars, gets one member per tagged value —
the blueprint's CorrelationStrategy runs as written and keeps its matrix.  Other bars, other tags
or ``match_mode=all`` select exactly what they should; a node tagged later joins the next run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import qmtl
from qmtl.runtime.artifacts import ArtifactStore
from qmtl.runtime.data import DataError
from qmtl.runtime.synthetic import synthetic_bars

ROOT = Path(__file__).resolve().parents[2]

INDICATORS = '''
from qmtl.runtime.sdk import Strategy, Node, StreamInput
PRICE = StreamInput(interval="1h", period=20, name="price")

class Indicators(Strategy):
    def setup(self):
        close = lambda v: v[PRICE][3600]["close"]
        mom = Node(input=PRICE, compute_fn=lambda v: close(v).pct_change(5), period=6, name="mom5",
                   tags=["ta-indicator"])
        vol = Node(input=PRICE, compute_fn=lambda v: close(v).pct_change().rolling(10).std(), period=11,
                   name="vol10", tags=["ta-indicator"])
        ma = Node(input=PRICE, compute_fn=lambda v: close(v).rolling(20).mean(), period=20, name="ma20",
                  tags=["ta-indicator", "trend"])
        raw = Node(input=PRICE, compute_fn=lambda v: close(v).diff(), period=2, name="untagged")
        self.add_nodes([PRICE, mom, vol, ma, raw])
'''

LATER = '''
from qmtl.runtime.sdk import Strategy, Node, StreamInput
PRICE = StreamInput(interval="1h", period=20, name="price")

class Later(Strategy):
    def setup(self):
        ema = Node(input=PRICE, compute_fn=lambda v: v[PRICE][3600]["close"].ewm(span=8).mean(), period=1,
                   name="ema8", tags=["ta-indicator"])
        self.add_nodes([PRICE, ema])
'''

TREND_ONLY = '''
from qmtl.runtime.sdk import Strategy, Node, TagQueryNode, MatchMode

def last(view):
    return {str(k): float(view[k][3600].iloc[-1, -1]) for k in view}

class TrendOnly(Strategy):
    def setup(self):
        q = TagQueryNode(query_tags=["ta-indicator", "trend"], interval="1h", period=1,
                         match_mode=MatchMode.ALL, compute_fn=last)
        self.add_nodes([q])
'''


@pytest.fixture
def setup(tmp_path):
    (tmp_path / "ind.py").write_text(INDICATORS)
    (tmp_path / "later.py").write_text(LATER)
    (tmp_path / "trend.py").write_text(TREND_ONLY)
    bars = synthetic_bars(300, interval=3600, seed=9).drop(columns="symbol")
    store = ArtifactStore(tmp_path / "artifacts")
    indicators = qmtl.compile(tmp_path / "ind.py")
    values = indicators.run(bars, store=store)
    return tmp_path, bars, store, values


def test_the_blueprint_correlation_strategy_reads_the_tagged_indicators(setup):
    tmp_path, bars, store, values = setup
    corr = qmtl.compile(ROOT / "examples" / "correlation.py")
    res = corr.run(bars, store=store)
    matrix = res.outputs["indicators"]
    assert matrix.index.names == ["ts", "row"]
    assert sorted(matrix.columns) == ["ma20", "mom5", "vol10"]  # tagged, untagged left out
    tick = matrix.index.get_level_values("ts")[-1]
    at = matrix.xs(tick, level="ts")
    assert list(at.index) == list(at.columns)
    # the indicators' own series, aligned, last 24 common bars, correlated by pandas
    series = pd.concat({n: values.outputs[n][n] for n in ("mom5", "vol10", "ma20")}, axis=1).dropna()
    expected = series[series.index <= tick].tail(24).corr()
    pd.testing.assert_frame_equal(at.loc[expected.index, expected.columns], expected, rtol=1e-9,
                                  check_names=False)


def test_match_all_other_data_and_later_nodes(setup):
    tmp_path, bars, store, _ = setup
    trend = qmtl.compile(tmp_path / "trend.py")
    out = trend.run(bars, store=store).outputs
    assert list(out.values())[0].columns.tolist() == ["ma20"]  # only the node with both tags
    corr = qmtl.compile(ROOT / "examples" / "correlation.py")
    before = corr.node_ids["indicators"]
    qmtl.compile(tmp_path / "later.py").run(bars, store=store)
    grown = corr.run(bars, store=store).outputs["indicators"]
    assert "ema8" in grown.columns and qmtl.compile(ROOT / "examples" / "correlation.py").node_ids["indicators"] == before
    # other bars (every price scaled: still bars): nothing stored was computed on them
    other = bars.assign(**{c: bars[c] * 1.01 for c in ("open", "high", "low", "close")})
    with pytest.raises(DataError, match="no stored node value"):
        corr.run(other, store=store)


def test_the_graph_records_node_tags(setup):
    tmp_path, *_ = setup
    dag = qmtl.compile(tmp_path / "ind.py").dag
    tagged = {o["name"]: o.get("tags") for o in dag["outputs"]}
    assert tagged["mom5"] == ["ta-indicator"] and tagged["ma20"] == ["ta-indicator", "trend"]
    assert tagged["untagged"] is None
    from qmtl.services.gateway.models import DagDocument
    from qmtl.services.gateway.verify import verify_dag
    nodes = {n.node_id: n.tags for n in verify_dag(DagDocument.model_validate(dag)).graph_nodes()}
    ids = {o["name"]: o["node_id"] for o in dag["outputs"]}
    assert nodes[ids["ma20"]] == ("ta-indicator", "trend") and nodes[ids["untagged"]] == ()


def test_labels_do_not_depend_on_how_the_values_were_stored(tmp_path):
    """Stored by a replay of several strategies or by a run of one, a node's artifact carries its own
    name and strategy, so the group a tag query sees is labelled the same."""
    (tmp_path / "ind.py").write_text(INDICATORS)
    (tmp_path / "later.py").write_text(LATER)
    bars = synthetic_bars(300, interval=3600, seed=9).drop(columns="symbol")
    store = ArtifactStore(tmp_path / "artifacts")
    qmtl.replay([tmp_path / "ind.py", tmp_path / "later.py"], bars, store=store)
    assert {(a.strategy, a.name) for a in store.ls()} >= {("Indicators", "mom5"), ("Later", "ema8")}
    corr = qmtl.compile(ROOT / "examples" / "correlation.py").run(bars, store=store)
    assert sorted(corr.outputs["indicators"].columns) == ["ema8", "ma20", "mom5", "vol10"]


def test_a_strategy_with_a_tag_query_still_stores_and_reads_its_other_nodes(tmp_path):
    """Only the nodes reading the group run outside the flow; the rest use the store as always."""
    both = INDICATORS.replace("self.add_nodes([PRICE, mom, vol, ma, raw])", """q = TagQueryNode(query_tags=["SYM"], interval="1h", period=1, compute_fn=lambda v: 1.0)
        self.add_nodes([PRICE, mom, vol, ma, raw, q])""").replace(
        "import Strategy, Node, StreamInput", "import Strategy, Node, StreamInput, TagQueryNode")
    (tmp_path / "both.py").write_text(both)
    data = synthetic_bars(300, interval=3600, seed=9)  # symbol SYM: the query's group
    store = ArtifactStore(tmp_path / "artifacts")
    program = qmtl.compile(tmp_path / "both.py")
    first = program.run(data, store=store)
    assert set(first.sharing.written) == {"mom5", "vol10", "ma20", "untagged"}
    again = program.run(data, store=store)
    assert set(again.sharing.reused) == {"mom5", "vol10", "ma20", "untagged"}
    for name in first.outputs:
        pd.testing.assert_frame_equal(again[name], first[name], check_exact=True)


def test_one_replay_feeds_its_own_tagged_values_to_its_tag_queries(tmp_path):
    """``qmtl replay ind.py later.py correlation.py``: the correlation sees every indicator computed
    in the same replay, with or without a store given."""
    (tmp_path / "ind.py").write_text(INDICATORS)
    (tmp_path / "later.py").write_text(LATER)
    bars = synthetic_bars(300, interval=3600, seed=9).drop(columns="symbol")
    files = [ROOT / "examples" / "correlation.py", tmp_path / "ind.py", tmp_path / "later.py"]
    for store in (None, ArtifactStore(tmp_path / "artifacts")):
        res = qmtl.replay(files, bars, store=store)
        assert list(res.strategies) == ["CorrelationStrategy", "Indicators", "Later"]
        assert sorted(res["CorrelationStrategy"].outputs["indicators"].columns) == ["ema8", "ma20", "mom5", "vol10"]
        alone = qmtl.compile(tmp_path / "ind.py").run(bars)
        for name in alone.outputs:
            pd.testing.assert_frame_equal(res["Indicators"][name], alone[name], check_exact=True)


OPAQUE_INDICATOR = '''
from qmtl.runtime.sdk import Strategy, Node, StreamInput
PRICE = StreamInput(interval="1h", period=20, name="price")


def up_share(view):
    c = view[PRICE][3600]["close"].to_numpy()
    return float((c[1:] > c[:-1]).mean()) if len(c) > 1 else 0.0


class Breadth(Strategy):
    def setup(self):
        share = Node(input=PRICE, compute_fn=up_share, period=12, name="up_share", tags=["ta-indicator"])
        self.add_nodes([PRICE, share])
'''


def test_an_opaque_tagged_node_joins_the_group_with_its_numbers(setup):
    tmp_path, bars, store, _ = setup
    (tmp_path / "breadth.py").write_text(OPAQUE_INDICATOR)
    program = qmtl.compile(tmp_path / "breadth.py")
    assert next(o for o in program.module.outputs if o.name == "up_share").kind == "opaque"
    program.run(bars, store=store)
    corr = qmtl.compile(ROOT / "examples" / "correlation.py").run(bars, store=store).outputs["indicators"]
    assert sorted(corr.columns) == ["ma20", "mom5", "up_share", "vol10"]
    assert corr["up_share"].notna().any()
