"""Mistake: Node(input=None) with a compute function."""
from qmtl.runtime.sdk import Node, Strategy, StreamInput


class InputNone(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=20, name="price")

        def ret(view):
            return view[price][60]["close"].pct_change()

        node = Node(input=None, compute_fn=ret, name="ret")  # MISTAKE-LINE
        self.add_nodes([price, node])
