"""A strategy that only declares inputs (the blueprint's FlowExample) must still generate and run."""

import qmtl
from qmtl.codegen import generate
from qmtl.runtime.sdk import Strategy, StreamInput
from qmtl.runtime.synthetic import synthetic_bars


class InputsOnly(Strategy):
    def setup(self):
        price = StreamInput(tags=["BTC", "price"], interval="1m", period=30)
        self.add_nodes([price])


def test_inputs_only_strategy_generates_valid_python_and_runs():
    compiled = qmtl.compile(InputsOnly)
    compile(generate(compiled.module), "<generated>", "exec")  # valid Python, no empty loop body
    assert compiled.run(synthetic_bars(50), batch_size=7).outputs == {}
