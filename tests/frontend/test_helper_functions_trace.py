"""Where pandas code is written does not change what it means: a compute function that calls helper
functions of its own module (module-level, nested in ``setup``, helpers calling helpers) traces as if
the code were inline — same kind (traced), same numbers as pandas on the full history."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

import qmtl
from qmtl.runtime.synthetic import synthetic_bars

STRATEGY = textwrap.dedent('''
    import numpy as np
    import pandas as pd
    from qmtl.runtime.sdk import Node, Strategy, StreamInput

    def peaks(close):
        return pd.DataFrame({"cs": close.diff().cumsum(), "peak": close.expanding().max()})

    def zscore(close, n):
        return (close - close.rolling(n).mean()) / close.rolling(n).std()

    def signal(close):
        return pd.DataFrame({"z": zscore(close, 20), "t": np.tanh(zscore(close, 5))})

    class Helpers(Strategy):
        def setup(self):
            price = StreamInput(interval="1m", period=5, name="price")

            def drawdown(close):
                return pd.DataFrame({"dd": close / close.cummax() - 1.0})

            def a(view):
                return peaks(view[price][60]["close"])

            def b(view):
                return signal(view[price][60]["close"])

            def c(view):
                return drawdown(view[price][60]["close"])

            self.add_nodes([price, Node(input=price, compute_fn=a, name="a"),
                            Node(input=price, compute_fn=b, name="b", period=20),
                            Node(input=price, compute_fn=c, name="c")])
''')


def _expected(close: pd.Series) -> dict[str, pd.DataFrame]:
    z = lambda n: (close - close.rolling(n).mean()) / close.rolling(n).std()  # noqa: E731
    return {"a": pd.DataFrame({"cs": close.diff().cumsum(), "peak": close.expanding().max()}),
            "b": pd.DataFrame({"z": z(20), "t": np.tanh(z(5))}),
            "c": pd.DataFrame({"dd": close / close.cummax() - 1.0})}


def test_helpers_trace_like_inline_code(tmp_path):
    path = tmp_path / "helpers.py"
    path.write_text(STRATEGY)
    compiled = qmtl.compile(path)
    for name in ("a", "b", "c"):
        out = compiled.module.output(name)
        assert out.kind == "traced", f"{name}: {out.reason}"
    bars = synthetic_bars(400, seed=5).drop(columns="symbol")
    got = compiled.run(bars).outputs
    want = _expected(bars.set_index("ts")["close"])
    for name, frame in want.items():
        pd.testing.assert_frame_equal(got[name], frame.loc[got[name].index], check_exact=False, rtol=1e-9,
                                      check_names=False)
