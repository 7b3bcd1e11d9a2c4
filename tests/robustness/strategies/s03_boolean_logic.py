"""Comparisons chained with &, |, ~ and np.where on the result."""
import numpy as np
import pandas as pd

from qmtl.runtime.sdk import Node, Strategy, StreamInput


class BooleanLogic(Strategy):
    def setup(self):
        px = StreamInput(interval=60, period=30, name="px")

        def rules(view):
            bars = view[px][60]
            fast = bars["close"].rolling(5).mean()
            slow = bars["close"].rolling(20).mean()
            up = (fast > slow) & (bars["volume"] > bars["volume"].rolling(10).mean())
            down = (fast < slow) | (bars["close"] < bars["open"] * 0.999)
            flat = ~(up | down)
            pos = np.where(up, 1.0, np.where(down, -1.0, 0.0))
            return pd.DataFrame({"up": up, "down": down, "flat": flat, "pos": pos})

        self.add_nodes([px, Node(input=px, compute_fn=rules, name="rules")])
