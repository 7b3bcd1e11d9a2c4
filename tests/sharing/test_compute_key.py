"""ComputeKey isolation: per-world replay results are runtime state scoped by
``compute_key(NodeID, world, domain, as_of, partition)``; artifacts are the only thing shared.

The same strategy prechecked twice for one world on the same bars reuses its results; for another
world it replays — reading the shared artifacts — and on bars ending at another time it computes.
``qmtl_cross_context_cache_hits_total`` stays 0 throughout; with a key that ignores the context (a
planted bug) the cache refuses the other context's entry and the counter counts it."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from qmtl.ir.nodeid import compute_key
from qmtl.runner import runner as runner_module
from qmtl.runner.runner import Runner
from qmtl.runtime.compute_cache import ComputeCache, CrossContextHit, RunContext
from qmtl.runtime.synthetic import synthetic_bars
from tests.submit_support import closed_port_url

STRATEGY = '''
from qmtl.runtime.sdk import Strategy, Node, StreamInput

def drift(view):
    c = view[PRICE][60]["close"]  # opaque on purpose (a Python if)
    return {"signal": 1.0 if c.iloc[-1] > c.iloc[0] else -1.0}


PRICE = StreamInput(interval=60, period=10, name="price")


class Drift(Strategy):
    def setup(self):
        self.add_nodes([PRICE, Node(input=PRICE, compute_fn=drift, period=10, name="drift")])
'''


def _hits() -> float:
    return REGISTRY.get_sample_value("qmtl_cross_context_cache_hits_total") or 0.0


def test_the_key_separates_every_part_of_the_context():
    base = ("blake3:" + "a" * 64, "w1", "backtest", "2026-01-01T00:00:00Z", "blake3:" + "b" * 64)
    keys = {compute_key(*base)}
    for i, other in enumerate(("blake3:" + "c" * 64, "w2", "live", "2026-01-02T00:00:00Z", "blake3:" + "d" * 64)):
        keys.add(compute_key(*base[:i], other, *base[i + 1:]))
    assert len(keys) == 6


def test_worlds_reuse_artifacts_but_never_each_others_results(tmp_path, monkeypatch):
    monkeypatch.setenv("QMTL_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(runner_module, "PRECHECKS", ComputeCache())
    path = tmp_path / "drift.py"
    path.write_text(STRATEGY)
    bars = tmp_path / "bars.parquet"
    synthetic_bars(400, seed=3).drop(columns="symbol").to_parquet(bars)
    shorter = tmp_path / "shorter.parquet"
    synthetic_bars(300, seed=3).drop(columns="symbol").to_parquet(shorter)
    before = _hits()

    def precheck(world, data):
        compiled, replay = runner_module._precheck(path, data, None, 10_000, world)
        assert replay.ok
        return replay

    first = precheck("w1", bars)
    signal = {n: s for n, s in first.sources.items()}
    assert signal and all(s.startswith("computed, stored ") for s in signal.values())
    assert precheck("w1", bars) is first          # same world, same bars: its own results, as kept
    other = precheck("w2", bars)                   # another world: never w1's results ...
    assert other is not first and other.precheck == first.precheck
    assert all(s.startswith("artifact ") for s in other.sources.values())  # ... but the artifacts
    later = precheck("w1", shorter)                # other bars (another as_of) in the same world
    assert later is not first and later.precheck.as_of != first.precheck.as_of
    assert all(s.startswith("computed") for s in later.sources.values())
    assert _hits() == before
    # through Runner.submit too (the gateway is down here: the precheck is what is compared)
    result = Runner.submit(path, world="w1", data=bars, gateway_url=closed_port_url())
    assert result.precheck == first.precheck and _hits() == before


def test_a_lookup_reaching_another_context_is_refused_and_counted():
    careless = ComputeCache(key=lambda node_id, *context: node_id)  # a planted bug: context ignored
    a = RunContext("w1", "backtest", "t1", "blake3:" + "b" * 64)
    b = RunContext("w2", "live", "t1", "blake3:" + "b" * 64)
    careless.put("blake3:" + "a" * 64, a, "w1's result")
    before = _hits()
    with pytest.raises(CrossContextHit):
        careless.get("blake3:" + "a" * 64, b)
    assert _hits() == before + 1
    assert careless.get("blake3:" + "a" * 64, a) == "w1's result"
    proper = ComputeCache()
    proper.put("blake3:" + "a" * 64, a, "w1's result")
    assert proper.get("blake3:" + "a" * 64, b) is None and _hits() == before + 1
