"""Mistake: asking a 60 s stream for its 1 h window."""
from qmtl.runtime.sdk import Node, Strategy, StreamInput


class WrongInterval(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=20, name="price")

        def ret(view):
            return view[price][3600]["close"].pct_change()  # MISTAKE-LINE

        self.add_nodes([price, Node(input=price, compute_fn=ret, name="ret")])
