"""Mistake: a period given as a string of words."""
from qmtl.runtime.sdk import Node, Strategy, StreamInput


class NonNumericPeriod(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period="twenty", name="price")  # MISTAKE-LINE

        def ret(view):
            return view[price][60]["close"].pct_change()

        self.add_nodes([price, Node(input=price, compute_fn=ret, name="ret")])
