"""Mistake: a 50-bar rolling mean in a node that keeps only 10 bars."""
from qmtl.runtime.sdk import Node, Strategy, StreamInput


class PeriodTooShort(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=10, name="price")

        def slow(view):
            return view[price][60]["close"].rolling(50).mean()  # MISTAKE-LINE

        self.add_nodes([price, Node(input=price, compute_fn=slow, name="slow", period=10)])
