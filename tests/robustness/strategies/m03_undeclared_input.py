"""Mistake: reading a node that is not in input=."""
from qmtl.runtime.sdk import Node, Strategy, StreamInput


class UndeclaredInput(Strategy):
    def setup(self):
        price = StreamInput(tags=["AAA"], interval=60, period=20, name="price")
        other = StreamInput(tags=["BBB"], interval=60, period=20, name="other")

        def ratio(view):
            return view[price][60]["close"] / view[other][60]["close"]  # MISTAKE-LINE

        self.add_nodes([price, other, Node(input=price, compute_fn=ratio, name="ratio")])
