"""A live run of a strategy with RiskControl's ``max_total_notional`` is refused at start (E602 at
the RiskControl's line), never run uncapped: live runs decide each instrument's bar alone, and the
cap needs every instrument's target of an instant (docs/design.md "Live runs").  So is a cluster
run (E508), which computes each instrument in its own partition."""

from __future__ import annotations

from typer.testing import CliRunner

from qmtl.cli.main import app
from qmtl.runtime.synthetic import synthetic_bars

STRATEGY = '''from qmtl.runtime.sdk import Strategy, StreamInput, Node, RiskControl, TimingGate, Execution


class Book(Strategy):
    def setup(self):
        price = StreamInput(interval="60s", period=5)
        signal = Node(expr={"signal": (price.close.pct_change() > 0).astype(float) * 2 - 1}, name="signal")
        risk = RiskControl(signal, max_position=5, max_notional=800, max_total_notional=1500)
        orders = Execution(TimingGate(risk), fee_bps=1)
        self.add_nodes([price, signal, risk, orders])
'''


def _files(tmp_path):
    strategy = tmp_path / "book.py"
    strategy.write_text(STRATEGY)
    history = tmp_path / "history.parquet"
    synthetic_bars(30, symbols=("BTC", "ETH"), seed=3).to_parquet(history)
    return strategy, history


def test_run_live_refuses_the_total_cap_at_the_risk_control_line(tmp_path):
    strategy, history = _files(tmp_path)
    got = CliRunner().invoke(app, ["run", str(strategy), "--data", str(history), "--live", "--world", "demo",
                                   "--feed", "nats://127.0.0.1:4222/bars.*"])
    assert got.exit_code == 1, got.output
    assert f"{strategy}:8:" in got.output and "error[E602]" in got.output, got.output
    assert "'risk'" in got.output and "max_total_notional" in got.output


def test_cluster_run_refuses_the_total_cap_before_writing(tmp_path):
    strategy, history = _files(tmp_path)
    out = tmp_path / "out"
    got = CliRunner().invoke(app, ["run", str(strategy), "--data", str(history), "--out", str(out),
                                   "--addresses", "127.0.0.1:2101", "--process-id", "0"])
    assert got.exit_code == 1, got.output
    assert f"{strategy}:8:" in got.output and "error[E508]" in got.output, got.output
    assert not (out / "_run.json").exists()
