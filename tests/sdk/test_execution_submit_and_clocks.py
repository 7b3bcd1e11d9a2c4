"""Runner.submit with execution nodes (costs in the returns behind the metrics) and the clock rules
of docs/design.md "Clocks of a run": E320 for a strategy mixing the wall and the virtual clock, E321
for a backtest of a wall-clock source."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import qmtl
from qmtl.ir.diagnostics import CompileError
from qmtl.lint import lint_dag_text, lint_ir_text
from qmtl.runner.runner import Runner
from qmtl.runtime.synthetic import synthetic_bars
from tests.submit_support import closed_port_url

EXECUTED = '''
from qmtl.runtime.sdk import Strategy, StreamInput, Node, RiskControl, TimingGate, Execution


class Momo(Strategy):
    def setup(self):
        price = StreamInput(interval="60s", period=10)
        signal = Node(expr={{"signal": (price.close.pct_change().rolling(5).mean() > 0).astype(float)}},
                      name="signal")
        risk = RiskControl(signal, max_position=10, max_notional=10_000)
        timing = TimingGate(risk, sessions=["00:00-24:00 UTC"])
        orders = Execution(timing, fee_bps={fee}, slippage_bps={slip})
        self.add_nodes([price, signal, risk, timing, orders])
'''

MIXED = '''
from qmtl.runtime.sdk import Strategy, StreamInput, Node


class Mixed(Strategy):
    def setup(self):
        recorded = StreamInput(tags=["BTC"], interval="60s", period=2)
        live = StreamInput(tags=["ETH"], interval="60s", period=2, clock="wall")
        spread = Node(expr=recorded.close - live.close, name="spread")
        self.add_nodes([recorded, live, spread])
'''

LIVE = '''
from qmtl.runtime.sdk import Strategy, StreamInput, Node


class Live(Strategy):
    def setup(self):
        live = StreamInput(interval="60s", period=2, clock="wall")
        move = Node(expr=live.close.diff(), name="move")
        self.add_nodes([live, move])
'''


def _submit(tmp_path: Path, fee: float, slip: float, data):
    path = tmp_path / f"momo_{fee}_{slip}.py"
    path.write_text(EXECUTED.format(fee=fee, slip=slip))
    return Runner.submit(path, world="w", data=data, gateway_url=closed_port_url(), timeout=2.0)


def test_submit_backtests_through_the_execution_node_with_costs(tmp_path: Path) -> None:
    data = synthetic_bars(3000, symbols=("SYM",), seed=5)
    free = _submit(tmp_path, 0, 0, data).precheck
    costly = _submit(tmp_path, 10, 5, data).precheck
    for pre in (free, costly):
        assert pre.returns_source.startswith("orders.") and "execution" in pre.returns_source
        assert pre.metrics.trades and pre.metrics.trades > 10
    assert free.metrics.trades == costly.metrics.trades  # same orders, only their price differs
    assert costly.metrics.total_return < free.metrics.total_return
    # the metric compounds exactly what the kernels' equity curve shows over the emitted rows (the
    # simulation runs from the first bar; warm-up only hides rows)
    out = qmtl.compile(str(tmp_path / "momo_10_5.py")).run(data).outputs["orders"]
    start = out["equity"].iloc[0] - out["pnl"].iloc[0]
    assert costly.metrics.total_return == pytest.approx(out["equity"].iloc[-1] / start - 1, rel=1e-9)
    assert np.isclose(out["fee"].sum(), (out["fill_qty"].abs() * out["fill_price"].fillna(0) * 10 / 1e4).sum())


def test_a_strategy_mixing_wall_and_virtual_clocks_fails_to_compile(tmp_path: Path) -> None:
    path = tmp_path / "mixed.py"
    path.write_text(MIXED)
    with pytest.raises(CompileError) as err:
        qmtl.compile(str(path))
    (d,) = [d for d in err.value.diagnostics if d.severity == "error"]
    assert d.code == "E320" and "wall clock" in d.message and d.loc.line == 8  # the live source


PAIR = '''
from qmtl.runtime.sdk import Strategy, StreamInput, Node


class Pair(Strategy):
    def setup(self):
        a = StreamInput(tags=["BTC"], interval="60s", period=2)
        b = StreamInput(tags=["ETH"], interval="60s", period=2)
        spread = Node(expr=a.close - b.close, name="spread")
        self.add_nodes([a, b, spread])
'''


def test_lint_and_gateway_reject_mixed_clocks_in_ir_and_dag_documents(tmp_path: Path) -> None:
    """The clock is not part of a NodeID (it changes no value on a dataset), so a document that turns
    one source's clock to wall keeps its ids and is refused for the mix alone."""
    pair = qmtl.compile(_write(tmp_path, "pair.py", PAIR))
    assert lint_ir_text(pair.ir_text) == []
    text = pair.ir_text.replace("stream_input() {interval", 'stream_input() {clock = "wall", interval', 1)
    assert [d.code for d in lint_ir_text(text) if d.severity == "error"] == ["E320"]
    doc = json.loads(json.dumps(pair.dag))
    assert lint_dag_text(json.dumps(doc)).diagnostics == []
    first = next(n for n in doc["nodes"] if n["op"] == "stream_input")
    first["meta"] = {**(first.get("meta") or {}), "clock": "wall"}
    report = lint_dag_text(json.dumps(doc))
    assert [d.code for d in report.diagnostics if d.severity == "error"] == ["E320"]


def test_submitting_a_wall_clock_strategy_for_backtest_is_rejected(tmp_path: Path) -> None:
    path = Path(_write(tmp_path, "live.py", LIVE))
    result = Runner.submit(path, world="w", gateway_url=closed_port_url(), timeout=2.0)
    assert result.status == "rejected"
    codes = [d.code for d in result.precheck.diagnostics]
    assert codes == ["E321"] and "E321" in result.downgrade_reason


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)
