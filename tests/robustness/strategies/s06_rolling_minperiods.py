"""rolling with min_periods, every statistic, ddof variants."""
import pandas as pd

from qmtl.runtime.sdk import Node, Strategy, StreamInput


class RollingStats(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=30, name="price")

        def stats(view):
            c = view[price][60]["close"]
            r = c.pct_change()
            return pd.DataFrame({
                "mean_mp": r.rolling(10, min_periods=3).mean(),
                "sum": r.rolling(5).sum(),
                "min": c.rolling(15).min(),
                "max": c.rolling(15, min_periods=1).max(),
                "std0": r.rolling(12).std(ddof=0),
                "var": r.rolling(12).var(),
            })

        self.add_nodes([price, Node(input=price, compute_fn=stats, name="stats")])
