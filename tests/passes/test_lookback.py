"""infer_lookback: required periods per value and E109 for outputs that declare too few bars."""

from __future__ import annotations

from pass_helpers import Builder, run_pass

from qmtl.compiler.passes import lookback


def _momentum(period: int) -> Builder:
    b = Builder()
    x = b.close(b.source(), result="close")
    pc = b.op("pct_change", x, result="pc", line=13)
    mom = b.op("rolling_mean", pc, window=5, result="mom", line=13)
    sig = b.op("astype", b.op("gt", mom, b.const(0.0)), dtype="i64", result="sig", line=14)
    b.output("momentum_signal", b.op("make_frame", sig, columns=("signal",), result="frame", line=15),
             period=period)
    return b


def test_required_periods_fill_the_context():
    m, ctx = run_pass(lookback.run, _momentum(30).module())
    assert ctx.diagnostics == []
    need = ctx.required_period
    assert need["bars"] == 1 and need["close"] == 1
    assert need["pc"] == 2 and need["mom"] == 6 and need["sig"] == 6 and need["frame"] == 6
    assert m == _momentum(30).module()  # the pass only reads the module


def test_short_period_is_an_error_naming_node_periods_and_chain():
    m, ctx = run_pass(lookback.run, _momentum(5).module())
    [diag] = ctx.diagnostics
    assert diag.code == "E109" and diag.severity == "error"
    assert diag.message == ("node 'momentum_signal' declares period=5 but pct_change(1) → "
                            "rolling_mean(5) needs 6 bars")
    assert diag.loc.file == "momentum.py" and diag.loc.line == 15


def test_exact_period_is_enough():
    _, ctx = run_pass(lookback.run, _momentum(6).module())
    assert ctx.diagnostics == []


def test_longest_path_wins_and_is_the_one_named():
    b = Builder()
    x = b.close(b.source())
    short = b.op("rolling_mean", x, window=3)
    long = b.op("rolling_std", b.op("diff", x, periods=2), window=10)
    b.output("spread", b.op("sub", short, long, line=9), period=4)
    _, ctx = run_pass(lookback.run, b.module())
    [diag] = ctx.diagnostics
    assert diag.message == "node 'spread' declares period=4 but diff(2) → rolling_std(10) needs 12 bars"


def test_path_stops_at_an_upstream_output():
    b = Builder()
    x = b.close(b.source())
    up = b.op("rolling_mean", x, window=20, result="up")
    b.output("upstream", up, period=20)
    down = b.op("pct_change", up, periods=3, result="down")
    b.output("downstream", down, period=4)
    _, ctx = run_pass(lookback.run, b.module())
    assert ctx.diagnostics == []
    assert ctx.required_period["up"] == 20 and ctx.required_period["down"] == 4


def test_opaque_call_needs_its_full_period_and_recursive_ops_their_lookback():
    b = Builder()
    src = b.source()
    opaque = b.op("py_call", src, code_hash="h", period=30, result="opaque")
    b.output("o", opaque, period=30)
    e = b.op("ema", b.close(src), period=10, result="e")
    macd = b.op("macd", b.close(src), result="m")
    b.output("e", e, period=9)
    b.output("m", macd, period=40)
    _, ctx = run_pass(lookback.run, b.module())
    assert ctx.required_period["opaque"] == 30 and ctx.required_period["e"] == 10
    assert ctx.required_period["m"] == 34
    messages = [d.message for d in ctx.diagnostics]
    assert messages == ["node 'e' declares period=9 but ema(10) needs 10 bars"]
