"""Each traced op and pandas idiom means what pandas means on the full history (docs/design.md
"Values").

Every case is a user compute function written in plain pandas over ``view.as_frame(...).frame``.  It is
compiled with ``qmtl.compile`` (so the frontend traces it), must come out ``traced`` (not opaque),
and ``compiled.run(data, batch_size=bs)`` — the Numba kernels — must equal the *same* function applied
by pandas to the whole ts-indexed DataFrame, at the emitted timestamps, for bs in (1, 7, 10_000).

The data has NaNs (an optional column ``x`` with holes, plus the NaN that ``pct_change``/``diff`` put
first) and ties (a run of bars whose price is exactly 100.1, and a stretch where ``x`` is flat).

All cases of one kind live in one strategy (one node per case) so the kernels are compiled once.

``compiled.run`` is called with the reference interpreter patched to raise, and the plan must have
no per-tick Python steps, so the numbers come from the kernels.

Tolerances (relative, NaN where NaN): 1e-12 for sums/means/ewm/cumulative/expanding and numpy
ufuncs, 1e-9 for variance/std, exact for min/max/shift/ffill/comparisons.  (Measured when written:
every rolling statistic bit-identical to pandas; ewm(halflife, adjust=False) and ufuncs within
7e-16.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import qmtl
from qmtl.codegen import plan
from qmtl.runtime import reference
from qmtl.runtime.reference import full_history_python
from qmtl.runtime.results import RunResult, assert_results_equal
from qmtl.runtime.sdk import Node, Strategy, StreamInput
from qmtl.runtime.synthetic import synthetic_bars

BATCH_SIZES = (1, 7, 10_000)
N = 640
FLAT = 100.1


def _data(n: int = N, seed: int = 17) -> pd.DataFrame:
    df = synthetic_bars(n, seed=seed).drop(columns="symbol")
    flat = slice(200, 290)  # ties: 90 bars at exactly 100.1 (longer than the 50 and 40 windows)
    for c in ("open", "high", "low", "close"):
        df.loc[df.index[flat], c] = FLAT
    rng = np.random.default_rng(seed)
    x = df["close"].to_numpy() * 0.01 + rng.normal(0, 0.05, n)
    x[400:460] = 1.25  # a flat stretch of the optional column
    x[rng.random(n) < 0.08] = np.nan  # holes
    x[:3] = np.nan  # the history starts with NaNs (ewm/cumsum/expanding start at the first number)
    x[5:9] = np.nan  # a run of NaNs early in the history
    df["x"] = x
    return df


def _strategy(cases: dict[str, tuple[object, int]], name: str) -> type:
    """One node per case: ``fn(frame) -> Series`` applied to the price frame, with its period (at
    least the look-back its ops need, else E109; a longer one is warm-up only)."""

    def setup(self):
        price = StreamInput(interval="60s", period=1, name="price")
        nodes = [price]
        for node_name, (fn, period) in cases.items():
            def compute(view, fn=fn):
                frame = view.as_frame(price, 60, columns=["close", "x"]).frame
                return fn(frame)
            nodes.append(Node(input=price, compute_fn=compute, name=node_name, period=period))
        self.add_nodes(nodes)

    return type(name, (Strategy,), {"setup": setup})


def _expected(fn, df: pd.DataFrame) -> pd.Series:
    frame = df.set_index("ts")[["close", "x"]]
    out = fn(frame)
    if isinstance(out, pd.DataFrame):
        out = out.iloc[:, 0]
    return out.astype(float)


def _refuse(*_a, **_k):
    raise AssertionError("compiled.run fell back to the reference interpreter")


def kernels_only(compiled, data, batch_size):
    """``compiled.run`` with the interpreter refused: the kernels computed every value."""
    assert plan(compiled.module).py_steps == (), "a traced strategy has per-tick Python steps"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(reference, "evaluate", _refuse)
        mp.setattr(reference, "evaluate_nodes", _refuse)
        return compiled.run(data, batch_size=batch_size)


class _Suite:
    """A compiled strategy and its results at every batch size (computed once per module)."""

    def __init__(self, cases: dict[str, tuple], name: str):
        self.cases = cases
        self.df = _data()
        self.compiled = qmtl.compile(_strategy({k: (c[0], c[1]) for k, c in cases.items()}, name))
        self.runs = {bs: kernels_only(self.compiled, self.df, bs) for bs in BATCH_SIZES}

    def check(self, node: str) -> float:
        fn, period, rtol = self.cases[node][:3]
        fn = self.cases[node][3] if len(self.cases[node]) > 3 else fn  # pandas spelling of [-1]
        out = self.compiled.module.output(node)
        assert out.kind == "traced", f"{node} is {out.kind}: {out.reason}"
        want = _expected(fn, self.df)
        ts = self.df["ts"].to_numpy()
        worst = 0.0
        for bs, res in self.runs.items():
            got = res.outputs[node]
            # single input, no gaps: the node emits every bar from the period-th on (warm-up only)
            np.testing.assert_array_equal(got.index.to_numpy(), ts[period - 1:], err_msg=f"{node} bs={bs}")
            g = got.iloc[:, 0].to_numpy(dtype=float)
            w = want.reindex(got.index).to_numpy(dtype=float)
            np.testing.assert_array_equal(np.isnan(g), np.isnan(w), err_msg=f"{node} bs={bs}: NaN pattern")
            np.testing.assert_allclose(g, w, rtol=rtol, atol=0, equal_nan=True, err_msg=f"{node} bs={bs}")
            ok = ~np.isnan(w) & (w != 0)
            if ok.any():
                worst = max(worst, float(np.max(np.abs(g[ok] - w[ok]) / np.abs(w[ok]))))
        return worst


EXACT, TIGHT, VAR = 0.0, 1e-12, 1e-9


# --- rolling -------------------------------------------------------------------------------------------

def _rolling_cases() -> dict[str, tuple[object, int, float]]:
    cases: dict[str, tuple[object, int, float]] = {}
    tol = {"mean": TIGHT, "sum": TIGHT, "std": VAR, "var": VAR, "min": EXACT, "max": EXACT}
    for col, windows in (("close", (1, 3, 50, 500)), ("x", (3, 50))):
        for w in windows:
            for stat in tol:
                if w == 1 and stat in ("std", "var"):
                    continue  # all-NaN; covered by min_periods variants below
                cases[f"roll_{stat}_{col}_{w}"] = (
                    lambda f, col=col, w=w, stat=stat: getattr(f[col].rolling(w), stat)(), w, tol[stat])
    for stat in ("mean", "sum", "std", "var", "min", "max"):
        cases[f"roll_{stat}_x_50_mp5"] = (
            lambda f, stat=stat: getattr(f["x"].rolling(50, min_periods=5), stat)(), 50, tol[stat])
        cases[f"roll_{stat}_close_500_mp1"] = (
            lambda f, stat=stat: getattr(f["close"].rolling(500, min_periods=1), stat)(), 500, tol[stat])
    cases["roll_std_ddof0_x_3"] = (lambda f: f["x"].rolling(3).std(ddof=0), 3, VAR)
    cases["roll_var_ddof0_close_50"] = (lambda f: f["close"].rolling(50).var(ddof=0), 50, VAR)
    # returns (values near 0) go through the same windows
    cases["roll_std_ret_50"] = (lambda f: f["close"].pct_change().rolling(50).std(), 51, VAR)
    cases["roll_mean_ret_500"] = (lambda f: f["close"].pct_change().rolling(500).mean(), 501, 1e-9)
    # ±inf (1 / 0 on the flat stretch): pandas' window functions and ewm read it as NaN
    def inverse(f):
        return 1.0 / (f["close"] - FLAT)
    for stat in ("mean", "sum", "std", "min", "max"):
        cases[f"roll_{stat}_inf_5"] = (lambda f, stat=stat: getattr(inverse(f).rolling(5), stat)(), 5, tol[stat])
    cases["expanding_mean_inf"] = (lambda f: inverse(f).expanding().mean(), 1, TIGHT)
    cases["ewm_span5_inf"] = (lambda f: inverse(f).ewm(span=5).mean(), 1, TIGHT)
    # booleans enter arithmetic as 1.0/0.0 (the share of up bars, a count of up bars)
    cases["roll_mean_bool_5"] = (lambda f: (f["close"] > f["close"].shift(1)).rolling(5).mean(), 6, TIGHT)
    cases["cumsum_bool"] = (lambda f: (f["close"] > f["close"].shift(1)).cumsum(), 2, TIGHT)
    cases["bool_times_ret"] = (lambda f: (f["close"] > f["close"].shift(1)) * f["close"].pct_change(), 2, TIGHT)
    # the period is warm-up only: same values as period 1, emitted from the 60th bar
    cases["roll_mean_close_50_p60"] = (lambda f: f["close"].rolling(50).mean(), 60, TIGHT)
    return cases


ROLLING = _rolling_cases()


@pytest.fixture(scope="module")
def rolling_suite():
    return _Suite(ROLLING, "RollingCases")


@pytest.mark.parametrize("suite", ["rolling_suite", "recursive_suite", "other_suite"])
def test_kernels_equal_each_compute_fn_called_once_on_the_full_history(suite, request):
    """The second oracle (``reference.full_history_python``): each node's own function, called once by
    pandas on the whole history, kept at the node's emission ticks."""
    s = request.getfixturevalue(suite)
    # ``.iloc[-1]``/``.values[-1]`` mean the value at the current bar; a function called once on the
    # whole history returns only the last one, so those cases are checked against pandas above only
    keep = [k for k, c in s.cases.items() if len(c) == 3]
    got, want = s.runs[10_000], full_history_python(s.compiled, s.df)
    assert_results_equal(RunResult({k: got.outputs[k] for k in keep}),
                         RunResult({k: want.outputs[k] for k in keep}), rtol=1e-9)


@pytest.mark.parametrize("node", sorted(ROLLING))
def test_rolling_matches_pandas_full_history(rolling_suite, node):
    rolling_suite.check(node)


# --- ewm, cumulative, expanding, ffill -----------------------------------------------------------------

def _recursive_cases() -> dict[str, tuple[object, int, float]]:
    cases: dict[str, tuple[object, int, float]] = {}
    ewms = {
        "span5": dict(span=5), "span5_noadj": dict(span=5, adjust=False), "com3": dict(com=3),
        "com3_noadj": dict(com=3, adjust=False), "hl7": dict(halflife=7),
        "hl7_noadj": dict(halflife=7, adjust=False), "alpha01": dict(alpha=0.1),
        "alpha01_noadj": dict(alpha=0.1, adjust=False), "span26_noadj": dict(span=26, adjust=False),
    }
    for col in ("close", "x"):
        for label, kw in ewms.items():
            cases[f"ewm_{label}_{col}"] = (lambda f, col=col, kw=kw: f[col].ewm(**kw).mean(), 1, TIGHT)
    # a period longer than the data's first bars never turns the ewm into an ewm of the window
    cases["ewm_span26_noadj_close_p60"] = (lambda f: f["close"].ewm(span=26, adjust=False).mean(), 60, TIGHT)
    for col in ("close", "x"):
        cases[f"cumsum_{col}"] = (lambda f, col=col: f[col].cumsum(), 1, TIGHT)
        cases[f"cummax_{col}"] = (lambda f, col=col: f[col].cummax(), 1, EXACT)
        cases[f"cummin_{col}"] = (lambda f, col=col: f[col].cummin(), 1, EXACT)
    cases["cumprod_growth"] = (lambda f: (1 + f["close"].pct_change()).cumprod(), 2, 1e-11)
    cases["cumprod_x"] = (lambda f: (f["x"] * 0.01 + 1).cumprod(), 1, 1e-11)
    cases["cumsum_volume_like_p50"] = (lambda f: f["close"].cumsum(), 50, TIGHT)
    tol = {"mean": TIGHT, "sum": TIGHT, "std": VAR, "var": VAR, "min": EXACT, "max": EXACT}
    for stat in tol:
        cases[f"expanding_{stat}_close"] = (lambda f, stat=stat: getattr(f["close"].expanding(), stat)(), 1, tol[stat])
        cases[f"expanding_{stat}_x_mp20"] = (
            lambda f, stat=stat: getattr(f["x"].expanding(min_periods=20), stat)(), 1, tol[stat])
    # span=3 / com=1 / alpha=0.5 with adjust=False over NaNs: pandas gives the new weight 1 - old weight
    cases["ewm_span3_noadj_x"] = (lambda f: f["x"].ewm(span=3, adjust=False).mean(), 1, TIGHT)
    cases["ewm_span3_adj_x"] = (lambda f: f["x"].ewm(span=3).mean(), 1, TIGHT)
    cases["ffill_x"] = (lambda f: f["x"].ffill(), 1, EXACT)
    cases["ffill_then_roll"] = (lambda f: f["x"].ffill().rolling(5).mean(), 5, TIGHT)
    return cases


RECURSIVE = _recursive_cases()

@pytest.fixture(scope="module")
def recursive_suite():
    return _Suite(RECURSIVE, "RecursiveCases")


@pytest.mark.parametrize("node", sorted(RECURSIVE))
def test_recursive_matches_pandas_full_history(recursive_suite, node):
    recursive_suite.check(node)


# --- element-wise, shifts, .iloc[-1], compositions -------------------------------------------------------

def _rsi(close: pd.Series, n: int = 14) -> pd.Series:
    delta = close.diff()
    up = delta.clip(lower=0)
    down = -delta.clip(upper=0)
    rs = up.ewm(alpha=1 / n, adjust=False).mean() / down.ewm(alpha=1 / n, adjust=False).mean()
    return 100 - 100 / (1 + rs)


def _macd_hist(close: pd.Series) -> pd.Series:
    line = close.ewm(span=12, adjust=False).mean() - close.ewm(span=26, adjust=False).mean()
    return line - line.ewm(span=9, adjust=False).mean()


def _other_cases() -> dict[str, tuple[object, int, float]]:
    cases: dict[str, tuple[object, int, float]] = {
        "tanh_ret": (lambda f: np.tanh(f["close"].pct_change() * 100), 2, TIGHT),
        "log1p_x": (lambda f: np.log1p(f["x"] - 1.0), 1, TIGHT),  # NaN below -1 too
        "expm1_x": (lambda f: np.expm1(f["x"]), 1, TIGHT),
        "arctan_diff": (lambda f: np.arctan(f["close"].diff()), 2, TIGHT),
        "sqrt_abs_x": (lambda f: np.sqrt(np.abs(f["x"])), 1, TIGHT),
        "log_close": (lambda f: np.log(f["close"]), 1, TIGHT),
        "floor_close": (lambda f: np.floor(f["close"]), 1, EXACT),
        "square_x": (lambda f: np.square(f["x"]), 1, TIGHT),
        "shift1_x": (lambda f: f["x"].shift(1), 2, EXACT),
        "shift3_close": (lambda f: f["close"].shift(3), 4, EXACT),
        "diff1_x": (lambda f: f["x"].diff(), 2, TIGHT),
        "diff3_close": (lambda f: f["close"].diff(3), 4, TIGHT),
        "pct1_close": (lambda f: f["close"].pct_change(), 2, TIGHT),
        "pct3_close": (lambda f: f["close"].pct_change(3), 4, TIGHT),
        "pct1_x_nofill": (lambda f: f["x"].pct_change(fill_method=None), 2, TIGHT),
        "iloc_last": (lambda f: f["close"].rolling(5).mean().iloc[-1], 5, TIGHT,
                      lambda f: f["close"].rolling(5).mean()),
        "values_last": (lambda f: f["close"].ewm(span=10).mean().values[-1], 1, TIGHT,
                        lambda f: f["close"].ewm(span=10).mean()),
        "rsi_like": (lambda f: _rsi(f["close"]), 2, 1e-10),
        "rsi_like_p60": (lambda f: _rsi(f["close"]), 60, 1e-10),
        "macd_hist_like": (lambda f: _macd_hist(f["close"]), 1, 1e-9),
        "macd_sign": (lambda f: (_macd_hist(f["close"]) > 0).astype(int), 60, EXACT),
        # ties: on the flat 100.1 stretch the two means are equal, so the comparison is 0 (as in pandas)
        "ma_cross": (lambda f: (f["close"].rolling(10).mean() > f["close"].rolling(40).mean()).astype(int), 40, EXACT),
        "ma_cross_ge": (lambda f: (f["close"].rolling(10).mean() >= f["close"].rolling(40).mean()).astype(int), 40, EXACT),
        "zscore_like": (lambda f: (f["close"] - f["close"].rolling(20).mean()) / f["close"].rolling(20).std(), 20, 1e-9),
    }
    return cases


OTHER = _other_cases()


@pytest.fixture(scope="module")
def other_suite():
    return _Suite(OTHER, "OtherCases")


@pytest.mark.parametrize("node", sorted(OTHER))
def test_elementwise_shift_and_compositions_match_pandas(other_suite, node):
    other_suite.check(node)


def _flat_cases():
    return {
        "cross": (lambda f: (f["close"].rolling(10).mean() > f["close"].rolling(40).mean()).astype(int), 40, EXACT),
        "cross_lt": (lambda f: (f["close"].rolling(10).mean() < f["close"].rolling(40).mean()).astype(int), 40, EXACT),
        "std": (lambda f: f["close"].rolling(20).std(), 20, EXACT),
        "mean500": (lambda f: f["close"].rolling(500).mean(), 500, EXACT),
    }


def test_the_issue_tie_case_flat_price_is_zero_everywhere():
    """``rolling(10).mean() > rolling(40).mean()`` on a flat price of 100.1 is 0 everywhere (pandas,
    run_reference and the kernels agree); a flat window's std is exactly 0 and its mean exactly 100.1."""
    cases = _flat_cases()
    df = synthetic_bars(600, seed=2).drop(columns="symbol")
    for c in ("open", "high", "low", "close"):
        df[c] = FLAT
    df["x"] = 1.0
    compiled = qmtl.compile(_strategy({k: (f, p) for k, (f, p, _) in cases.items()}, "FlatCases"))
    frame = df.set_index("ts")
    assert (cases["cross"][0](frame).iloc[39:] == 0).all()  # pandas says so too
    ref = compiled.run_reference(df)
    for bs in BATCH_SIZES:
        res = kernels_only(compiled, df, bs)
        for name in ("cross", "cross_lt"):
            got = res.outputs[name][name]
            assert len(got) == len(df) - 39
            assert (got == 0).all(), f"{name} bs={bs}: {int((got != 0).sum())} ones on a flat price"
            assert (ref.outputs[name][name] == 0).all()
        assert (res.outputs["std"]["std"] == 0.0).all(), f"bs={bs}: flat std not exactly 0"
        assert (res.outputs["mean500"]["mean500"] == FLAT).all(), f"bs={bs}: flat mean not exactly 100.1"
