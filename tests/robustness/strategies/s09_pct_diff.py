"""pct_change(k) and diff(k) with k > 1, shift(k)."""
import pandas as pd

from qmtl.runtime.sdk import Node, Strategy, StreamInput


class PctDiff(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=12, name="price")

        def deltas(view):
            c = view[price][60]["close"]
            return pd.DataFrame({
                "pct3": c.pct_change(3),
                "diff5": c.diff(5),
                "lag2": c.shift(2),
                "mom": c / c.shift(10) - 1,
            })

        self.add_nodes([price, Node(input=price, compute_fn=deltas, name="deltas")])
