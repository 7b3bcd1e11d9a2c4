"""Codegen bug: ``astype(float)`` of a boolean series fails to compile in Numba.

Run: ``.venv/bin/python tests/robustness/codegen_repros/repro_astype_bool_to_float.py``

Strategy: one 60 s input (period 10); ``(close > open).astype(float)``.  The reference interpreter
gives 0.0/1.0 per bar; ``run`` (any batch size: 1, 7, 10_000) raises numba ``TypingError``
"No implementation of function float(bool)" from inside the generated kernel (the user sees a raw
Numba traceback).  ``astype(int)`` of the same boolean works, so the lowering of ``astype`` with
``dtype = "f64"`` on a ``series<bool>`` operand is the culprit (it emits ``float(x)``; Numba needs
``1.0 if x else 0.0`` or ``np.float64(x)``).  Seen in tests/robustness/strategies/s13_concat_rename.py
and s18_closures_params.py.
"""

import qmtl
from qmtl.runtime.results import assert_results_equal
from qmtl.runtime.sdk import Node, Strategy, StreamInput
from qmtl.runtime.synthetic import synthetic_bars


class BoolToFloat(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=10, name="price")
        up = Node(input=price, name="up",
                  compute_fn=lambda view: (view[price][60]["close"] > view[price][60]["open"]).astype(float))
        self.add_nodes([price, up])


if __name__ == "__main__":
    compiled = qmtl.compile(BoolToFloat)
    data = synthetic_bars(50, seed=1)
    expected = compiled.run_reference(data)
    print(expected["up"].head())
    for batch_size in (1, 7, 10_000):
        assert_results_equal(compiled.run(data, batch_size=batch_size), expected)
    print("fixed: run == run_reference")
