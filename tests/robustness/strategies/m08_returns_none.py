"""Mistake: the compute function forgets to return."""
from qmtl.runtime.sdk import Node, Strategy, StreamInput


class ReturnsNone(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=20, name="price")

        def ret(view):  # MISTAKE-LINE
            r = view[price][60]["close"].pct_change()

        self.add_nodes([price, Node(input=price, compute_fn=ret, name="ret")])
