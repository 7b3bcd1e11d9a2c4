"""Execution nodes (docs/design.md "Execution nodes"): kernels against the reference interpreter at
awkward batch sizes, both against an independent whole-array pandas computation of the same rules
written here, NodeIDs that follow the parameters, the plan putting the ops in kernels, and the
errors a bad parameter gets.

The pandas computation is vectorised (``clip``, ``where``, ``ffill``, ``shift``, ``cumsum``), where
the reference interpreter and the kernels step bar by bar; it reads session windows through
``datetime``/``zoneinfo`` one instant at a time, where the kernels look offsets up in a table.
"""

from __future__ import annotations

import textwrap
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qmtl
from qmtl.codegen.plan import Kernel, PyStep, plan
from qmtl.compiler.compiled import CompiledStrategy
from qmtl.ir.diagnostics import CompileError
from qmtl.ir.parser import parse_module as parse
from qmtl.ir.printer import print_module
from qmtl.ir.sessions import parse_session, utc_offsets
from qmtl.ir.verifier import verify
from qmtl.runtime.binding import bind
from qmtl.runtime.engine import run
from qmtl.runtime.reference import evaluate
from qmtl.runtime.returns import derive_returns
from tests.runtime.execution_support import exec_module, pandas_risk, signal_bars

EXEC_OPS = ("risk_control", "timing_gate", "execution")
SESSIONS = (("00:00-24:00 UTC",), ("Mon,Tue,Wed,Thu,Fri 09:30-16:00 America/New_York",),
            ("00:00-01:00 UTC", "22:00-02:00 Europe/London"))
PROPERTY = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- the same rules, written independently with pandas --------------------------------------------

def pandas_in_session(close_instants: np.ndarray, sessions) -> np.ndarray:
    inside = np.zeros(len(close_instants), dtype=bool)
    for text in sessions:
        days_part, _, rest = text.rpartition(" ")[0].rpartition(" ")
        hours, tz = text.split(" ")[-2], text.split(" ")[-1]
        days = {"Mon": 0, "Tue": 1, "Wed": 2, "Thu": 3, "Fri": 4, "Sat": 5, "Sun": 6}
        allowed = {days[d] for d in days_part.split(",")} if days_part else set(range(7))
        start, end = ((int(h) * 60 + int(m)) for h, m in (p.split(":") for p in hours.split("-")))
        for i, c in enumerate(close_instants):
            local = datetime.fromtimestamp(int(c), ZoneInfo(tz))
            minute = local.hour * 60 + local.minute
            within = start <= minute < end if start < end else (minute >= start or minute < end)
            inside[i] |= within and local.weekday() in allowed
    return inside


def pandas_gate(position: pd.Series, inside: np.ndarray) -> pd.Series:
    return position.where(inside & position.notna()).ffill().fillna(0.0)


def pandas_execution(target: pd.Series, open_: pd.Series, close: pd.Series, initial_cash: float,
                     fee_bps: float, slippage_bps: float) -> pd.DataFrame:
    """Every bar has an open, so the order decided at bar t's close (target - held) fills at bar
    t+1's open: the position held through bar t is the last target known before t."""
    position = target.shift(1).ffill().fillna(0.0)
    fill_qty = position.diff().fillna(position.iloc[0] if len(position) else 0.0)
    traded = fill_qty != 0
    fill_price = (open_ * (1 + np.sign(fill_qty) * slippage_bps / 1e4)).where(traded)
    fee = (fill_qty.abs() * fill_price * fee_bps / 1e4).where(traded, 0.0)
    cash = initial_cash - (fill_qty * fill_price.fillna(0.0) + fee).cumsum()
    equity = cash + position * close
    pnl = equity.diff().fillna(equity.iloc[0] - initial_cash if len(equity) else 0.0)
    order_qty = (target - position).where(target.notna(), 0.0)
    return pd.DataFrame({"position": position, "order_qty": order_qty, "fill_qty": fill_qty.where(traded, 0.0),
                         "fill_price": fill_price, "fee": fee, "cash": cash, "equity": equity, "pnl": pnl})


# --- data and modules -----------------------------------------------------------------------------

def bars(gaps: list[int], seed: int, nan_share: float = 0.1) -> pd.DataFrame:
    """Bars at 60 s multiples with the given gaps (minutes: long ones cross DST changes and weekends),
    and a ``signal`` column in [-1.5, 1.5] with NaNs."""
    ts = 1_577_836_800 + 60 * np.cumsum(np.asarray(gaps, dtype=np.int64))
    return signal_bars(ts, np.random.default_rng(seed), nan_share=nan_share)


def module(risk: dict, sessions: tuple[str, ...], execution: dict):
    return exec_module("Exec", risk, execution, sessions)


def expected(df: pd.DataFrame, risk: dict, sessions, execution: dict) -> dict[str, pd.DataFrame | pd.Series]:
    idx = pd.Index(df["ts"].to_numpy(np.int64), name="ts")
    s, o, c = (pd.Series(df[f].to_numpy(float), index=idx) for f in ("signal", "open", "close"))
    r = pandas_risk(s, c, risk["max_position"], risk.get("max_notional"))
    g = pandas_gate(r, pandas_in_session(idx.to_numpy() + 60, sessions))
    x = pandas_execution(g, o, c, execution["initial_cash"], execution.get("fee_bps", 0.0),
                         execution.get("slippage_bps", 0.0))
    return {"risk": r, "timing": g, "orders": x}


RISKS = ({"max_position": 5.0, "max_notional": 300.0}, {"max_position": 2.0})
EXECUTIONS = ({"initial_cash": 10_000.0, "fee_bps": 2.0, "slippage_bps": 1.0}, {"initial_cash": 500.0})


@PROPERTY
@given(gaps=st.lists(st.one_of(st.integers(1, 3), st.integers(100, 60_000)), min_size=1, max_size=120),
       seed=st.integers(0, 2**16), risk=st.sampled_from(RISKS), sessions=st.sampled_from(SESSIONS),
       execution=st.sampled_from(EXECUTIONS))
def test_kernels_equal_reference_and_pandas_at_every_batch_size(gaps, seed, risk, sessions, execution):
    df = bars(gaps, seed)
    m = module(risk, sessions, execution)
    ref = evaluate(m, {}, bind(m, df))
    want = expected(df, risk, sessions, execution)
    for name in ("risk", "timing"):
        np.testing.assert_allclose(ref.outputs[name].iloc[:, 0].to_numpy(), want[name].to_numpy(),
                                   rtol=1e-12, atol=1e-9, err_msg=name)
    got = ref.outputs["orders"]
    for col in want["orders"].columns:
        np.testing.assert_allclose(got[col].to_numpy(), want["orders"][col].to_numpy(), rtol=1e-9,
                                   atol=1e-7, err_msg=col)
    compiled = CompiledStrategy(m.name, m)
    for bs in (1, 7, 10_000):
        kernel = run(compiled, df, batch_size=bs)
        for name in ("risk", "timing", "orders"):
            pd.testing.assert_frame_equal(kernel.outputs[name], ref.outputs[name], check_exact=True,
                                          obj=f"{name} at batch size {bs}")


def test_costs_and_next_bar_fills_by_hand():
    """Three bars, one order: the numbers worked out by hand."""
    df = pd.DataFrame({"ts": [0, 60, 120], "open": [10.0, 20.0, 30.0], "high": 40.0, "low": 1.0,
                       "close": [11.0, 21.0, 31.0], "volume": 1.0, "signal": [1.0, 1.0, 0.0]})
    m = module({"max_position": 2.0}, ("00:00-24:00 UTC",),
               {"initial_cash": 1000.0, "fee_bps": 100.0, "slippage_bps": 50.0})
    out = run(CompiledStrategy(m.name, m), df, batch_size=1).outputs["orders"]
    # bar 0 decides +2; bar 1 fills 2 at 20 * 1.005 = 20.1, fee 1 % of 40.2; bar 2 marks at 31
    assert out["order_qty"].tolist() == [2.0, 0.0, -2.0]
    assert out["fill_qty"].tolist() == [0.0, 2.0, 0.0]
    assert out["fill_price"].iloc[1] == pytest.approx(20.1)
    assert out["fee"].iloc[1] == pytest.approx(0.402)
    assert out["cash"].iloc[1] == pytest.approx(1000 - 40.2 - 0.402)
    assert out["equity"].iloc[2] == pytest.approx(1000 - 40.2 - 0.402 + 2 * 31)
    assert out["pnl"].sum() == pytest.approx(out["equity"].iloc[-1] - 1000)


def test_zone_offset_table_matches_zoneinfo_across_dst():
    instants, offsets = utc_offsets("America/New_York")
    probe = np.arange(1_500_000_000, 1_800_000_000, 7_777, dtype=np.int64)
    at = np.searchsorted(np.asarray(instants), probe, side="right") - 1
    want = [int(datetime.fromtimestamp(int(t), ZoneInfo("America/New_York")).utcoffset().total_seconds())
            for t in probe]
    assert np.asarray(offsets)[at].tolist() == want
    assert len(set(offsets)) == 2 and utc_offsets("UTC") == ((instants[0],), (0,))


# --- through the SDK ------------------------------------------------------------------------------

STRATEGY = '''
import pandas as pd
from qmtl.runtime.sdk import Strategy, StreamInput, Node, RiskControl, TimingGate, Execution

class Momo(Strategy):
    def setup(self):
        price = StreamInput(interval="60s", period=5)
        signal = Node(expr={{"signal": (price.close.pct_change().rolling(3).mean() > 0).astype(float) * 2 - 1}},
                      name="signal")
        risk = RiskControl(signal, max_position={max_position}, max_notional=100_000)
        timing = TimingGate(risk, sessions={sessions!r})
        orders = Execution(timing, order_type="market", fee_bps={fee_bps}, slippage_bps=1)
        self.add_nodes([price, signal, risk, timing, orders])
'''


def compile_text(tmp_path, **params):
    values = {"max_position": 5, "sessions": ["00:00-24:00 UTC"], "fee_bps": 2, **params}
    path = tmp_path / f"s{abs(hash(repr(sorted(values.items()))))}.py"
    path.write_text(STRATEGY.format(**values))
    return qmtl.compile(str(path)), path


def test_node_ids_hash_every_parameter_and_nothing_upstream(tmp_path):
    base, _ = compile_text(tmp_path)
    changes = {"max_position": ({"max_position": 3}, "risk"),
               "sessions": ({"sessions": ["Mon-Fri 09:30-16:00 America/New_York"]}, "timing"),
               "fee_bps": ({"fee_bps": 5}, "orders")}
    order = ["signal", "risk", "timing", "orders"]
    for field, (params, first) in changes.items():
        other, _ = compile_text(tmp_path, **params)
        for name in order:
            changed = order.index(name) >= order.index(first)
            assert (other.node_ids[name] != base.node_ids[name]) == changed, (field, name)
    same, _ = compile_text(tmp_path, sessions=["00:00-24:00 utc", "00:00-24:00 UTC"])
    assert same.node_ids == base.node_ids  # one window, spelled twice: the canonical form hashes


def test_plan_runs_every_execution_op_in_a_kernel(tmp_path):
    compiled, _ = compile_text(tmp_path, sessions=["Mon-Fri 09:30-16:00 America/New_York"])
    p = plan(compiled.module)
    in_kernels = {op.name for step in p.steps if isinstance(step, Kernel) for op in step.ops}
    in_python = {step.op.name for step in p.steps if isinstance(step, PyStep)}
    assert set(EXEC_OPS) <= in_kernels and not in_python & set(EXEC_OPS)


def test_ir_text_round_trips_and_verifier_checks_parameters(tmp_path):
    compiled, _ = compile_text(tmp_path, sessions=["Sat,Sun 10:00-14:00 Europe/London", "22:00-02:00 UTC"])
    text = print_module(compiled.module)
    again = parse(text)
    assert print_module(again) == text and verify(again) == []
    for good, bad, why in (("fee_bps = 2.0", "fee_bps = -2.0", "fee_bps"),
                           ('"22:00-02:00 UTC"', '"22:00-25:00 UTC"', "sessions"),
                           ("max_position = 5.0", "max_position = 0.0", "max_position")):
        assert good in text
        found = verify(parse(text.replace(good, bad)), check_ids=False)
        assert any(d.code == "E107" and why in d.message for d in found), (bad, found)


@pytest.mark.parametrize("line,message", [
    ('TimingGate(risk, sessions=["9:30-16:00 Mars/Olympus"])', "unknown time zone"),
    ('TimingGate(risk, sessions=["09:30-16:61 UTC"])', "not a time of day"),
    ('TimingGate(risk, sessions=["Mon-Fryday 09:30-16:00 UTC"])', "days"),
    ('Execution(timing, fee_bps=-1)', "fee_bps=-1 must not be negative"),
    ('Execution(timing, slippage_bps=float("nan"))', "slippage_bps=nan must be a finite number"),
    ('Execution(timing, order_type="limit")', "only 'market'"),
    ('RiskControl(signal, max_position=0)', "max_position=0 must be greater than 0"),
    ('Execution(timing, initial_cash=None)', "needs initial_cash"),
])
def test_bad_parameters_are_E304_at_the_strategy_line(tmp_path, line, message):
    source = textwrap.dedent('''
        from qmtl.runtime.sdk import Strategy, StreamInput, Node, RiskControl, TimingGate, Execution
        class S(Strategy):
            def setup(self):
                price = StreamInput(interval="60s", period=5)
                signal = Node(expr=price.close.diff(), name="signal")
                risk = RiskControl(signal, max_position=1)
                timing = TimingGate(risk)
                bad = {line}
                self.add_nodes([price, signal, risk, timing, bad])
    ''').format(line=line)
    path = tmp_path / "bad.py"
    path.write_text(source)
    with pytest.raises(CompileError) as err:
        qmtl.compile(str(path))
    (d,) = [d for d in err.value.diagnostics if d.severity == "error"]
    assert d.code == "E304" and message in d.message and d.loc.line == 9, d


def test_execution_output_gives_returns_with_costs(tmp_path):
    df = bars([1] * 400, seed=3)
    cheap, _ = compile_text(tmp_path, fee_bps=0)
    dear, _ = compile_text(tmp_path, fee_bps=20)
    results = {}
    for name, c in (("cheap", cheap), ("dear", dear)):
        out = c.run(df).outputs
        derived = derive_returns(out, {None: pd.Series(df["close"].to_numpy(), index=df["ts"])})
        x = out["orders"]
        assert derived.source.startswith("orders.")
        assert derived.trades == int((x["fill_qty"] != 0).sum()) > 0
        results[name] = float(np.prod(1 + derived.returns) - 1)
        # per-bar returns compound to the equity curve over the emitted rows (cash starts at the
        # RiskControl's max_notional; warm-up rows are hidden, not skipped by the simulation)
        start = x["equity"].iloc[0] - x["pnl"].iloc[0]
        assert results[name] == pytest.approx(x["equity"].iloc[-1] / start - 1, rel=1e-9)
    assert results["dear"] < results["cheap"]


def test_session_parsing_and_canonical_form():
    s = parse_session("mon-wed 9:30-16:00 America/New_York")
    assert s.text == "Mon,Tue,Wed 09:30-16:00 America/New_York" and s.day_mask == 0b111
    assert parse_session("Fri-Mon 22:00-02:00 utc").text == "Mon,Fri,Sat,Sun 22:00-02:00 UTC"
    whole_day = parse_session("00:00-24:00 UTC")
    assert (whole_day.start, whole_day.end, whole_day.days) == (0, 1440, tuple(range(7)))


def test_session_boundaries_across_a_dst_change_use_the_close_instant():
    """Minute bars over New York's spring-forward weekend (2024-03-10): a position is taken exactly
    from the bar closing at 09:30 local (14:30 UTC before the change, 13:30 after) until the bar
    closing at 15:59, weekends excluded."""
    start = int(datetime(2024, 3, 8, 12, 0, tzinfo=timezone.utc).timestamp())
    ts = start + 60 * np.arange(4 * 24 * 60)
    df = pd.DataFrame({"ts": ts, "open": 100.0, "high": 100.0, "low": 100.0, "close": 100.0,
                       "volume": 1.0, "signal": np.linspace(-1, 1, len(ts))})
    sessions = ("Mon,Tue,Wed,Thu,Fri 09:30-16:00 America/New_York",)
    m = module({"max_position": 1.0}, sessions, {"initial_cash": 1000.0})
    ref = evaluate(m, {}, bind(m, df)).outputs["timing"].iloc[:, 0]
    kernel = run(CompiledStrategy(m.name, m), df, batch_size=7).outputs["timing"].iloc[:, 0]
    want = pandas_gate(pd.Series(df["signal"].to_numpy(), index=ts), pandas_in_session(ts + 60, sessions))
    np.testing.assert_array_equal(ref.to_numpy(), want.to_numpy())
    np.testing.assert_array_equal(kernel.to_numpy(), want.to_numpy())
    moved = ts[np.flatnonzero(np.diff(want.to_numpy()) != 0) + 1] + 60  # close instants of the changes
    local = [datetime.fromtimestamp(int(c), ZoneInfo("America/New_York")) for c in moved]
    assert {(d.hour, d.minute) for d in local} >= {(9, 30), (15, 59)}
    assert all(d.weekday() < 5 and (9 * 60 + 30) <= d.hour * 60 + d.minute < 16 * 60 for d in local)
    assert {d.utcoffset().total_seconds() / 3600 for d in local} == {-5.0, -4.0}
