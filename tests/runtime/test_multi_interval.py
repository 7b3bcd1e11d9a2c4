"""Inputs on several clocks and gappy inputs on one clock, in one traced node (docs/design.md
"Clocks and joins"), against an independent pandas computation.

* 1m + 5m in ONE node compiles (no E110), runs entirely in kernels (no per-tick steps; the reference
  interpreter is refused while ``compiled.run`` runs) and equals ``pd.merge_asof`` on *close* times:
  a 1m bar opening at ``t`` closes at ``t + 60``; a 5m bar opening at ``T`` closes at ``T + 300`` and
  is visible from the 1m bar that closes at the same instant (backward, exact matches allowed).
* Two 1m inputs with different gaps: ``(a.close / b.close).rolling(3).mean()`` is pandas on the
  ts-indexed series (union index, NaN where one is missing; a window holding a NaN is NaN), emitted
  at the timestamps both inputs have, once each has ``period`` bars.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qmtl
from qmtl.codegen import plan
from qmtl.runtime.results import assert_results_equal
from qmtl.runtime.sdk import Node, Strategy, StreamInput
from qmtl.runtime.synthetic import synthetic_bars

BATCH_SIZES = (1, 7, 10_000)


from tests.kernels_only import gappy as _gappy, kernels_only  # noqa: E402


# --- 1m + 5m in one node ---------------------------------------------------------------------------------

FAST_P, SLOW_P, NODE_P = 2, 3, 3


class OneMinuteFiveMinute(Strategy):
    def setup(self):
        fast = StreamInput(interval="1m", period=FAST_P, name="fast")
        slow = StreamInput(interval="5m", period=SLOW_P, name="slow")

        def gap(view):
            return view[fast]["1m"]["close"] - view[slow]["5m"]["close"].rolling(3).mean()

        def ratio(view):  # a window of the fast clock over a value of both clocks
            f = view.as_frame(fast, 60, columns=["close"]).frame["close"]
            s = view.as_frame(slow, 300, columns=["close"]).frame["close"]
            return (f / s).rolling(4).mean()

        def slow_ewm_vs_fast(view):
            f = view[fast]["1m"]["close"]
            s = view[slow]["5m"]["close"]
            return s.ewm(span=3, adjust=False).mean() - f.ewm(span=10, adjust=False).mean()

        self.add_nodes([fast, slow,
                        Node(input=[fast, slow], compute_fn=gap, name="gap", period=NODE_P),
                        Node(input=[fast, slow], compute_fn=ratio, name="ratio", period=4),
                        Node(input=[fast, slow], compute_fn=slow_ewm_vs_fast, name="ewm_spread", period=NODE_P)])


class SlowValueInFastNode(Strategy):
    """A node declaring a 1m and a 5m input whose value reads only the 5m one: the node is on the 1m
    clock (the fastest declared input) and emits the 5m value as of its last closed bar."""

    def setup(self):
        fast = StreamInput(interval="1m", period=FAST_P, name="fast")
        slow = StreamInput(interval="5m", period=SLOW_P, name="slow")
        self.add_nodes([fast, slow,
                        Node(input=[fast, slow], compute_fn=lambda v: v[slow]["5m"]["close"].rolling(3).mean(),
                             name="slow_value", period=NODE_P)])


def _five_minute(one: pd.DataFrame) -> pd.DataFrame:
    """5m bars out of 1m bars, computed independently of qmtl (close = last 1m close of the bucket)."""
    g = one.assign(b=(one["ts"] // 300) * 300).groupby("b", sort=True)
    return pd.DataFrame({"ts": g["ts"].first().index.to_numpy(), "close": g["close"].last().to_numpy()})


def _asof(fast: pd.DataFrame, slow: pd.DataFrame, slow_value: pd.Series) -> pd.DataFrame:
    """Each 1m bar next to the slow value of the last 5m bar closed by its close (merge_asof)."""
    left = pd.DataFrame({"ts": fast["ts"].to_numpy(), "close_time": fast["ts"].to_numpy() + 60,
                         "f": fast["close"].to_numpy()})
    right = pd.DataFrame({"close_time": slow["ts"].to_numpy() + 300, "s": slow_value.to_numpy(),
                          "slow_closed": np.arange(1, len(slow) + 1)})
    out = pd.merge_asof(left, right, on="close_time", direction="backward", allow_exact_matches=True)
    out["slow_closed"] = out["slow_closed"].fillna(0).astype(int)
    return out.set_index("ts")


def _mixed_expected(one: pd.DataFrame) -> dict[str, pd.Series]:
    five = _five_minute(one)
    s_close = five["close"]
    fi = one.set_index("ts")["close"]
    gap = _asof(one, five, s_close.rolling(3).mean())
    ratio_src = _asof(one, five, s_close)
    ratio = (ratio_src["f"] / ratio_src["s"]).rolling(4).mean()
    ewm_src = _asof(one, five, s_close.ewm(span=3, adjust=False).mean())
    ewm = ewm_src["s"] - fi.ewm(span=10, adjust=False).mean()
    # emission: on the 1m clock, once the node has `period` 1m bars and `period` closed 5m bars
    n_fast = np.arange(1, len(one) + 1)
    closed = gap["slow_closed"].to_numpy()
    out = {}
    for name, value, period in (("gap", gap["f"] - gap["s"], NODE_P), ("ratio", ratio, 4),
                                ("ewm_spread", ewm, NODE_P), ("slow_value", gap["s"], NODE_P)):  # slow_value: SlowValueInFastNode
        ready = (n_fast >= period) & (closed >= period)
        out[name] = value[ready]
    return out


def _one_minute(n: int, seed: int, keep: float) -> pd.DataFrame:
    return _gappy(synthetic_bars(n, seed=seed).drop(columns="symbol"), seed + 1, keep)


@pytest.fixture(scope="module")
def mixed():
    return qmtl.compile(OneMinuteFiveMinute)


def test_one_node_of_1m_and_5m_compiles_traced_with_no_per_tick_steps(mixed):
    assert not [d for d in mixed.diagnostics if d.severity == "error"]
    assert not [d for d in mixed.diagnostics if d.code == "E110"]
    for name in ("gap", "ratio", "ewm_spread"):
        assert mixed.module.output(name).kind == "traced", mixed.module.output(name).reason
    p = plan(mixed.module)
    assert p.py_steps == ()
    assert p.kernels


@pytest.mark.parametrize("keep", [1.0, 0.8])
def test_1m_and_5m_in_one_node_equal_pandas_merge_asof_on_close_times(mixed, keep):
    one = _one_minute(400, seed=5, keep=keep)
    want = _mixed_expected(one)
    want.pop("slow_value")
    runs = {f"kernels bs={bs}": kernels_only(mixed, one, bs) for bs in BATCH_SIZES}
    runs["reference"] = mixed.run_reference(one)
    for how, res in runs.items():
        for name, w in want.items():
            got = res.outputs[name]
            np.testing.assert_array_equal(got.index.to_numpy(), w.index.to_numpy(), err_msg=f"{name} {how}")
            np.testing.assert_allclose(got[name].to_numpy(), w.to_numpy(), rtol=1e-12, atol=1e-10,  # ewm_spread: a difference of two ~100 prices
                                       equal_nan=True, err_msg=f"{name} {how}")


@pytest.mark.parametrize("keep", [1.0, 0.8])
def test_a_slow_value_in_a_fast_node_is_emitted_on_the_fast_clock(keep):
    """docs/design.md "Emission": the node's clock is the fastest of its *declared* inputs; a value on a
    slower clock is emitted as of its last closed entry.  (Found: the kernels do this; the reference
    interpreter puts the node on the 5m clock — it gates on the inputs its ops read, not the declared
    ones — and emits at 5m bar *open* times.)"""
    c = qmtl.compile(SlowValueInFastNode)
    assert plan(c.module).py_steps == ()
    one = _one_minute(400, seed=5, keep=keep)
    want = _mixed_expected(one)["slow_value"]
    runs = {f"kernels bs={bs}": kernels_only(c, one, bs) for bs in BATCH_SIZES}
    runs["reference"] = c.run_reference(one)
    for how, res in runs.items():
        got = res.outputs["slow_value"]
        np.testing.assert_array_equal(got.index.to_numpy(), want.index.to_numpy(), err_msg=how)
        np.testing.assert_allclose(got["slow_value"].to_numpy(), want.to_numpy(), rtol=1e-12, err_msg=how)


def test_1m_and_5m_per_symbol_on_gappy_multi_symbol_data(mixed):
    df = _gappy(synthetic_bars(300, symbols=("AAA", "BBB"), seed=8), 9, 0.85)
    runs = {f"kernels bs={bs}": kernels_only(mixed, df, bs) for bs in (1, 10_000)}
    runs["reference"] = mixed.run_reference(df)
    for bs, res in runs.items():
        for sym in ("AAA", "BBB"):
            want = _mixed_expected(df[df["symbol"] == sym].drop(columns="symbol").reset_index(drop=True))
            want.pop("slow_value")
            for name, w in want.items():
                out = res.outputs[name]
                got = out[out["symbol"] == sym][name]
                np.testing.assert_array_equal(got.index.to_numpy(), w.index.to_numpy(), err_msg=f"{sym} {name} {bs}")
                np.testing.assert_allclose(got.to_numpy(), w.to_numpy(), rtol=1e-12, atol=1e-10, equal_nan=True,
                                           err_msg=f"{sym} {name} {bs}")


def test_a_5m_bar_is_visible_from_the_1m_bar_closing_with_it_and_not_before(mixed):
    """The 5m bar opening at T (close T+300) is read first by the 1m bar opening at T+240."""
    one = _one_minute(60, seed=9, keep=1.0)
    res = kernels_only(mixed, one, 1).outputs["gap"]
    five = _five_minute(one)
    roll = five.set_index("ts")["close"].rolling(3).mean()
    fclose = one.set_index("ts")["close"]
    for T in five["ts"].to_numpy()[3:8]:
        at_close = int(T) + 240  # the 1m bar closing with the 5m bar
        before = at_close - 60
        assert res.loc[at_close, "gap"] == pytest.approx(fclose[at_close] - roll[T], rel=1e-12)
        assert res.loc[before, "gap"] == pytest.approx(fclose[before] - roll[T - 300], rel=1e-12)


# --- gappy inputs on one clock ------------------------------------------------------------------------------

PAIR_P = 3


#: more full-history ops over the union join (a NaN where one input has no bar), as pandas computes them
PAIR_MORE = {
    "spread_cumsum": lambda a, b: (a - b).cumsum(),
    "ratio_expanding": lambda a, b: (a / b).expanding(min_periods=3).mean(),
    "ratio_mean_mp1": lambda a, b: (a / b).rolling(3, min_periods=1).mean(),
    "spread_cummax": lambda a, b: (a - b).cummax(),
    "spread_ffill": lambda a, b: (a - b).ffill(),
    "spread_shift": lambda a, b: (a - b).shift(1),
    "spread_std": lambda a, b: (a - b).rolling(3).std(),
}


class GappyPair(Strategy):
    def setup(self):
        a = StreamInput(tags=["A"], interval="1m", period=PAIR_P, name="a")
        b = StreamInput(tags=["B"], interval="1m", period=PAIR_P, name="b")

        def ratio_mean(view):
            return (view[a]["1m"]["close"] / view[b]["1m"]["close"]).rolling(3).mean()

        def spread_ewm(view):
            return (view[a]["1m"]["close"] - view[b]["1m"]["close"]).ewm(span=4).mean()

        more = [Node(input=[a, b], compute_fn=lambda v, f=f: f(v[a]["1m"]["close"], v[b]["1m"]["close"]),
                     name=name, period=PAIR_P) for name, f in PAIR_MORE.items()]
        self.add_nodes([a, b, Node(input=[a, b], compute_fn=ratio_mean, name="ratio_mean", period=PAIR_P),
                        Node(input=[a, b], compute_fn=spread_ewm, name="spread_ewm", period=PAIR_P), *more])


def _pair_expected(da: pd.DataFrame, db: pd.DataFrame) -> dict[str, pd.Series]:
    a = da.set_index("ts")["close"]
    b = db.set_index("ts")["close"]
    ratio = (a / b).rolling(3).mean()  # pandas aligns on the union of timestamps
    spread = (a - b).ewm(span=4).mean()
    both = a.index.intersection(b.index).sort_values()
    na = np.searchsorted(a.index.to_numpy(), both.to_numpy(), side="right")
    nb = np.searchsorted(b.index.to_numpy(), both.to_numpy(), side="right")
    ticks = both[(na >= PAIR_P) & (nb >= PAIR_P)]
    out = {"ratio_mean": ratio.reindex(ticks), "spread_ewm": spread.reindex(ticks)}
    out.update({name: f(a, b).reindex(ticks) for name, f in PAIR_MORE.items()})
    return out


@pytest.fixture(scope="module")
def pair():
    c = qmtl.compile(GappyPair)
    assert plan(c.module).py_steps == ()
    assert all(c.module.output(n).kind == "traced" for n in ("ratio_mean", "spread_ewm", *PAIR_MORE))
    return c


def _check_pair(pair, da, db, batches=BATCH_SIZES):
    want = _pair_expected(da, db)
    for bs in batches:
        res = kernels_only(pair, {"A": da, "B": db}, bs)
        for name, w in want.items():
            got = res.outputs[name]
            np.testing.assert_array_equal(got.index.to_numpy(), w.index.to_numpy(), err_msg=f"{name} bs={bs}")
            np.testing.assert_allclose(got[name].to_numpy(), w.to_numpy(), rtol=1e-12, atol=1e-10,  # ewm_spread: a difference of two ~100 prices
                                       equal_nan=True, err_msg=f"{name} bs={bs}")
    assert_results_equal(pair.run_reference({"A": da, "B": db}), res)


def test_gappy_pair_is_joined_on_timestamps_like_pandas(pair):
    da = _gappy(synthetic_bars(300, seed=1).drop(columns="symbol"), 11, 0.9)
    db = _gappy(synthetic_bars(300, seed=2).drop(columns="symbol"), 12, 0.75)
    _check_pair(pair, da, db)


def test_one_missing_bar_makes_exactly_the_windows_holding_it_nan(pair):
    da = synthetic_bars(30, seed=3).drop(columns="symbol")
    db = synthetic_bars(30, seed=4).drop(columns="symbol").drop(index=[10]).reset_index(drop=True)
    _check_pair(pair, da, db)
    got = kernels_only(pair, {"A": da, "B": db}, 7).outputs["ratio_mean"]["ratio_mean"]
    ts = da["ts"].to_numpy()
    nan_at = got.index[np.isnan(got.to_numpy())]
    # ts[10] is not emitted (B has no bar); ts[11], ts[12] hold it in their 3-bar window
    assert list(nan_at) == [ts[11], ts[12]]
    assert ts[10] not in got.index


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), keep_a=st.floats(0.5, 1.0), keep_b=st.floats(0.5, 1.0),
       bs=st.sampled_from(BATCH_SIZES))
def test_gappy_pair_property(pair, seed, keep_a, keep_b, bs):
    da = _gappy(synthetic_bars(80, seed=seed).drop(columns="symbol"), seed + 1, keep_a)
    db = _gappy(synthetic_bars(80, seed=seed + 7).drop(columns="symbol"), seed + 2, keep_b)
    if len(da) == 0 or len(db) == 0:
        return
    _check_pair(pair, da, db, batches=(bs,))
