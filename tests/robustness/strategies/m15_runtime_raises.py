"""Mistake that only shows at run time: the opaque compute function indexes past the window."""
from qmtl.runtime.sdk import Node, Strategy, StreamInput


class RuntimeRaises(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=5, name="price")

        def bad(view):
            c = view[price][60]["close"]
            return c.iloc[-10] + c.iloc[-1]  # MISTAKE-LINE

        self.add_nodes([price, Node(input=price, compute_fn=bad, name="bad")])
