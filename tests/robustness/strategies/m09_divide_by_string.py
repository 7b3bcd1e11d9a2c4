"""Mistake: dividing a series by a string."""
from qmtl.runtime.sdk import Node, Strategy, StreamInput


class DivideByString(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=20, name="price")

        def ret(view):
            return view[price][60]["close"] / "100"  # MISTAKE-LINE

        self.add_nodes([price, Node(input=price, compute_fn=ret, name="ret")])
