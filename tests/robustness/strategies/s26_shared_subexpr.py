"""Two nodes whose compute functions share sub-expressions with each other's outputs."""
import pandas as pd

from qmtl.runtime.sdk import Node, Strategy, StreamInput


class SharedSubexpr(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=30, name="price")

        def smooth(view):
            return view[price][60]["close"].ewm(span=10).mean()

        def smooth_trend(view):
            e = view[price][60]["close"].ewm(span=10).mean()
            return e.rolling(5).mean() - e

        def change(view):
            return view[price][60]["close"].diff()

        def change_frame(view):
            c = view[price][60]["close"]
            return pd.DataFrame({"d": c.diff(), "p": c.pct_change()})

        self.add_nodes([price,
                        Node(input=price, compute_fn=smooth, name="smooth"),
                        Node(input=price, compute_fn=smooth_trend, name="smooth_trend"),
                        Node(input=price, compute_fn=change, name="change"),
                        Node(input=price, compute_fn=change_frame, name="change_frame")])
