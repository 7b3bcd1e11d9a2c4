"""The passes' findings as a user sees them: compile a strategy file, read the diagnostics."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import qmtl
from qmtl.ir.diagnostics import CompileError

STRATEGY = '''
from qmtl.runtime.sdk import Strategy, Node, StreamInput
import pandas as pd


class Momentum(Strategy):
    def setup(self):
        price_stream = StreamInput(interval="60s", period={period})

        def generate_signal(view) -> pd.DataFrame:
            price = view.as_frame(price_stream, 60, columns=["close"])
            momentum = price.frame["close"].pct_change().rolling(5).mean()
            unused = price.frame["close"].rolling(3).max()
            signal = (momentum > 0).astype(int)
            return pd.DataFrame({{"signal": signal}})

        signal_node = Node(input=price_stream, compute_fn=generate_signal, name="momentum_signal")
        self.add_nodes([price_stream, signal_node])
'''


def _write(tmp_path: Path, period: int) -> Path:
    path = tmp_path / "momentum.py"
    path.write_text(textwrap.dedent(STRATEGY.format(period=period)))
    return path


def test_short_period_fails_the_compile_with_the_op_chain(tmp_path):
    with pytest.raises(CompileError) as err:
        qmtl.compile(_write(tmp_path, 5))
    [diag] = [d for d in err.value.diagnostics if d.code == "E109"]
    assert diag.message == ("node 'momentum_signal' declares period=5 but pct_change(1) → "
                            "rolling_mean(5) needs 6 bars")
    # at the output value's op (the frontend places it on the line that computes the signal)
    assert diag.loc.file.endswith("momentum.py") and diag.loc.line == 14


def test_enough_period_compiles_and_records_required_periods(tmp_path):
    compiled = qmtl.compile(_write(tmp_path, 30))
    assert not [d for d in compiled.diagnostics if d.code == "E109"]
    assert compiled.required_period[compiled.module.output("momentum_signal").value] == 6
    assert compiled.required_period[compiled.module.output("price_stream").value] == 1
    # the unused rolling max is traced, then removed by DCE with a warning at the line that built it
    [unused] = [d for d in compiled.diagnostics if d.code == "W201"]
    assert unused.severity == "warning" and "rolling_max" in unused.message
    assert unused.loc.file.endswith("momentum.py") and unused.loc.line == 13
    assert all(op.name != "rolling_max" for op in compiled.module.ops)
