"""Compute functions that reduce the window to a scalar: mean(), std(), iloc[-1], values[-1]."""
import pandas as pd

from qmtl.runtime.sdk import Node, Strategy, StreamInput


class ScalarReturns(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=20, name="price")

        def avg(view):
            return view[price][60]["close"].mean()

        def last_close(view):
            return view[price][60]["close"].iloc[-1]

        def last_value(view):
            return view[price][60]["volume"].values[-1]

        def vol(view):
            return view[price][60]["close"].pct_change().std()

        self.add_nodes([
            price,
            Node(input=price, compute_fn=avg, name="avg"),
            Node(input=price, compute_fn=last_close, name="last_close"),
            Node(input=price, compute_fn=last_value, name="last_volume"),
            Node(input=price, compute_fn=vol, name="vol"),
        ])
