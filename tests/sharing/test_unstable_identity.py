"""An opaque function whose hash misses what it reads (instance state, a closure over an array, a
callable object: E111) gets a NodeID of its own at every compile, so two such functions are never
merged, never read one another's stored values and never run one another's code — while a
module-level setting read as ``module.NAME`` is hashed (changing it changes the NodeID)."""

from __future__ import annotations

import functools
import types

import numpy as np
import pandas as pd

import qmtl
from qmtl.runtime.artifacts import ArtifactStore
from qmtl.runtime.sdk import Node, Strategy, StreamInput

P = StreamInput(interval=60, period=10, name="p")


def _above(view, k):
    c = view[P][60]["close"]
    return 1.0 if c.iloc[-1] - c.iloc[0] > k else 0.0


class Calc:
    def __init__(self, k):
        self.k = k

    def meth(self, view):
        return _above(view, self.k)

    def __call__(self, view):
        return _above(view, self.k)


def _strategy(make):
    class S(Strategy):
        def setup(self):
            self.add_nodes([P, Node(input=P, compute_fn=make(), period=10, name="sig")])
    return S


def _bars(n=300):
    rng = np.random.default_rng(4)
    c = 100 + rng.standard_normal(n).cumsum()
    return pd.DataFrame({"ts": np.arange(n) * 60, "open": c, "high": c, "low": c, "close": c, "volume": 1.0})


def test_bound_methods_of_different_instances_are_different_nodes(tmp_path):
    bars = _bars()
    one, two = qmtl.compile(_strategy(lambda: Calc(0.5).meth)), qmtl.compile(_strategy(lambda: Calc(2.0).meth))
    assert one.node_ids["sig"] != two.node_ids["sig"]
    assert any(d.code == "E111" for d in one.warnings)
    alone = [c.run(bars)["sig"] for c in (one, two)]
    assert not alone[0].equals(alone[1])
    store = ArtifactStore(tmp_path)
    first = one.run(bars, store=store)
    assert "sig" in first.sharing.not_stored and not list(store.ls())  # never stored: never readable
    together = qmtl.replay([one, two], bars)
    pd.testing.assert_frame_equal(together["S"]["sig"], alone[0])
    pd.testing.assert_frame_equal(together["S#2"]["sig"], alone[1])


def test_callable_objects_and_partials_compile_and_run():
    bars = _bars()
    obj = qmtl.compile(_strategy(lambda: Calc(0.5)))
    part = qmtl.compile(_strategy(lambda: functools.partial(_above, k=0.5)))
    assert any(d.code == "E111" for d in obj.warnings)
    assert not any(d.code == "E111" for d in part.warnings)  # a partial of plain values is hashable
    pd.testing.assert_frame_equal(obj.run(bars)["sig"], part.run(bars)["sig"])
    assert part.node_ids["sig"] == qmtl.compile(_strategy(lambda: functools.partial(_above, k=0.5))).node_ids["sig"]
    assert part.node_ids["sig"] != qmtl.compile(_strategy(lambda: functools.partial(_above, k=0.7))).node_ids["sig"]


def test_a_module_setting_read_by_attribute_is_part_of_the_hash():
    cfg = types.ModuleType("qmtl_test_cfg")
    cfg.THRESH = 0.0

    def rule(view):
        return _above(view, cfg.THRESH)

    before = qmtl.compile(_strategy(lambda: rule)).node_ids["sig"]
    cfg.THRESH = 0.8
    assert qmtl.compile(_strategy(lambda: rule)).node_ids["sig"] != before


HELPERS = """
def helper(v):
    return v * 1.0


class Config:
    THRESH = 0.0
"""

USES_HELPERS = """
import helpers_mod
from qmtl.runtime.sdk import Strategy, Node, StreamInput
price = StreamInput(interval=60, period=5, name="price")


class Local:
    K = 1.0


def rule(view):
    v = float(view[price][60]["close"].iloc[-1])
    return helpers_mod.helper(v) * Local.K if v > helpers_mod.Config.THRESH else 0.0


class S(Strategy):
    def setup(self):
        self.add_nodes([price, Node(input=price, compute_fn=rule, period=5, name="rule")])
"""


def test_editing_a_helper_module_or_class_changes_the_nodeid(tmp_path):
    """Code the function reaches in the user's own files — a helper module's function or class, a
    class of the strategy file — is hashed by its code, so an edit is never served a stale value."""
    import subprocess
    import sys

    (tmp_path / "helpers_mod.py").write_text(HELPERS)
    (tmp_path / "strat.py").write_text(USES_HELPERS)
    probe = ("import sys, qmtl; sys.path.insert(0, sys.argv[1]); "
             "print(qmtl.compile(sys.argv[1] + '/strat.py').node_ids['rule'])")

    def node_id() -> str:
        return subprocess.run([sys.executable, "-c", probe, str(tmp_path)], check=True, capture_output=True,
                              text=True).stdout.strip()

    seen = {node_id()}
    for path, old, new in [("helpers_mod.py", "v * 1.0", "v * 3.0"), ("helpers_mod.py", "THRESH = 0.0", "THRESH = 1.0"),
                           ("strat.py", "K = 1.0", "K = 5.0")]:
        target = tmp_path / path
        target.write_text(target.read_text().replace(old, new))
        seen.add(node_id())
    assert len(seen) == 4
