"""NodeID invariants (DESIGN.md "Identity"), checked end to end from strategy source text.

Each test writes strategy files, compiles them with the real compiler and compares the NodeIDs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import qmtl

MOMENTUM = '''
from qmtl.runtime.sdk import Strategy, Node, StreamInput
import pandas as pd


class Momentum(Strategy):
    def setup(self):
        {price} = StreamInput(tags={tags}, interval="60s", period=30)

        def generate_signal(view) -> pd.DataFrame:
            price = view.as_frame({price}, 60, columns=["close"]).validate_columns(["close"])
            momentum = price.frame["close"].pct_change().rolling({window}).mean(){comment}
            signal = (momentum > {threshold}).astype(int)
            return pd.DataFrame({{"signal": signal}})

        signal_node = Node(input={price}, compute_fn=generate_signal, name="{name}")
        {add}
'''


def momentum_source(price="price_stream", tags='["BTC", "price"]', window=5, threshold=0,
                    name="momentum_signal", comment="", order="forward") -> str:
    add = ("self.add_nodes([price_stream_X, signal_node])" if order == "forward"
           else "self.add_nodes([signal_node, price_stream_X])").replace("price_stream_X", price)
    return MOMENTUM.format(price=price, tags=tags, window=window, threshold=threshold, name=name,
                           comment=comment, add=add)


def compile_text(tmp_path: Path, text: str, filename: str = "strategy.py"):
    path = tmp_path / filename
    path.write_text(textwrap.dedent(text))
    return qmtl.compile(path)


def ids_by_op(compiled) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for node in compiled.dag["nodes"]:
        out.setdefault(node["op"], set()).add(node["node_id"])
    return out


def signal_id(compiled) -> str:
    return next(iter(compiled.node_ids[n] for n in compiled.node_ids if n != "price_stream"
                     and compiled.module.output(n).kind != "source"))


def source_id(compiled) -> str:
    return next(compiled.node_ids[o.name] for o in compiled.module.outputs if o.kind == "source")


def test_same_ids_across_processes_and_hash_seeds(tmp_path):
    path = tmp_path / "strategy.py"
    path.write_text(textwrap.dedent(momentum_source()))
    docs = []
    for seed in ("0", "1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        proc = subprocess.run([sys.executable, "-m", "qmtl.cli.main", "compile", str(path), "--emit", "json"],
                              capture_output=True, text=True, env=env, check=True)
        docs.append(json.loads(proc.stdout))
    assert docs[0]["nodes"] and all(d == docs[0] for d in docs)


def test_names_order_comments_and_whitespace_do_not_matter(tmp_path):
    base = compile_text(tmp_path, momentum_source(), "a.py")
    renamed = compile_text(tmp_path, momentum_source(price="px", name="another_name"), "b.py")
    reordered = compile_text(tmp_path, momentum_source(order="reverse"), "c.py")
    commented = compile_text(tmp_path, momentum_source(comment="   # a comment that changes nothing"), "d.py")
    expected = ids_by_op(base)
    for other in (renamed, reordered, commented):
        assert ids_by_op(other) == expected
        assert signal_id(other) == signal_id(base)


def test_param_change_moves_that_node_and_downstream_but_not_upstream(tmp_path):
    base = compile_text(tmp_path, momentum_source(window=5), "a.py")
    changed = compile_text(tmp_path, momentum_source(window=6), "b.py")
    a, b = ids_by_op(base), ids_by_op(changed)
    # upstream of the rolling mean: unchanged
    for op in ("stream_input", "column", "pct_change"):
        assert a[op] == b[op]
    # the changed op and everything downstream of it: changed
    for op in ("rolling_mean", "gt", "astype", "make_frame"):
        assert a[op].isdisjoint(b[op]), op
    assert signal_id(base) != signal_id(changed)
    threshold = compile_text(tmp_path, momentum_source(threshold=0.001), "c.py")
    assert ids_by_op(threshold)["rolling_mean"] == a["rolling_mean"]
    assert signal_id(threshold) != signal_id(base)


def test_stream_inputs_with_different_tags_never_collide(tmp_path):
    btc = compile_text(tmp_path, momentum_source(tags='["BTC", "price"]'), "a.py")
    eth = compile_text(tmp_path, momentum_source(tags='["ETH", "price"]'), "b.py")
    same = compile_text(tmp_path, momentum_source(tags='["price", "BTC"]'), "c.py")
    assert source_id(btc) != source_id(eth)
    assert signal_id(btc) != signal_id(eth)
    assert source_id(btc) == source_id(same)  # tag order is not identity


SHARED_A = '''
from qmtl.runtime.sdk import Strategy, Node, StreamInput


class First(Strategy):
    def setup(self):
        prices = StreamInput(tags=["ETH"], interval="1m", period=20)
        ma = Node(input=prices, period=20, name="ma",
                  compute_fn=lambda view: view[prices][60]["close"].rolling(10).mean())
        self.add_nodes([prices, ma])
'''

SHARED_B = '''
from qmtl.runtime.sdk import Strategy, Node, StreamInput
import pandas


def smooth(view):
    closes = view.as_frame(src, 60, columns=["close"]).frame["close"]
    return closes.rolling(10).mean()


class Second(Strategy):
    def setup(self):
        global src
        src = StreamInput(tags=["ETH"], interval=60, period=40)
        slow = Node(input=src, period=40, name="slow_average", compute_fn=smooth)
        spread = Node(input=[src, slow], period=40, name="spread",
                      compute_fn=lambda view: view[src][60]["close"] - view[slow][60])
        self.add_nodes([src, slow, spread])
'''


def test_same_subdag_in_two_files_gets_the_same_ids(tmp_path):
    first = compile_text(tmp_path, SHARED_A, "first.py")
    second = compile_text(tmp_path, SHARED_B, "second.py")
    assert first.node_ids["ma"] == second.node_ids["slow_average"]
    shared = set(ids_by_op(first)["rolling_mean"]) & set(ids_by_op(second)["rolling_mean"])
    assert shared


def test_dag_document_carries_no_world_or_names_in_identity(tmp_path):
    c = compile_text(tmp_path, momentum_source())
    for node in c.dag["nodes"]:
        assert "world" not in json.dumps(node["params"])
    from qmtl.ir.nodeid import spec_node_id
    for node in c.dag["nodes"]:
        assert spec_node_id(node["op"], node["inputs"], node["interval"], node["period"], node["params"],
                            node["code_hash"], node["schema_compat_id"]) == node["node_id"]


INDICATOR_SPANS = '''
from qmtl.runtime.sdk import Strategy, Node, StreamInput
from qmtl.runtime.sdk.indicators import {fn}


class Spans(Strategy):
    def setup(self):
        price = StreamInput(tags=["BTC"], interval=60, period=60)
        fast = Node(input=price, period=60, name="fast",
                    compute_fn=lambda view: {fn}(view[price][60]["close"], 5))
        slow = Node(input=price, period=60, name="slow",
                    compute_fn=lambda view: {fn}(view[price][60]["close"], 20))
        self.add_nodes([price, fast, slow])
'''


@pytest.mark.parametrize("fn", ["ema", "rsi"])
def test_a_recursive_indicators_span_is_part_of_its_identity(tmp_path, fn):
    """``ema``'s ``period`` attribute is its span, not the node's window: ema(5) ≠ ema(20), and CSE
    must not merge them."""
    c = compile_text(tmp_path, INDICATOR_SPANS.format(fn=fn))
    assert c.node_ids["fast"] != c.node_ids["slow"]
    spans = sorted(n["params"]["period"] for n in c.dag["nodes"] if n["op"] == fn)
    assert spans == [5, 20]
    for node in c.dag["nodes"]:  # the document still recomputes
        from qmtl.ir.nodeid import spec_node_id
        assert spec_node_id(node["op"], node["inputs"], node["interval"], node["period"], node["params"],
                            node["code_hash"], node["schema_compat_id"]) == node["node_id"]
