"""Mistake: a compute function that takes two arguments."""
from qmtl.runtime.sdk import Node, Strategy, StreamInput


class WrongSignature(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=20, name="price")

        def ret(view, window):
            return view[price][60]["close"].pct_change(window)

        self.add_nodes([price, Node(input=price, compute_fn=ret, name="ret")])  # MISTAKE-LINE
