"""Mistake: a typo in a column name."""
from qmtl.runtime.sdk import Node, Strategy, StreamInput


class WrongColumn(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=20, name="price")

        def ret(view):
            return view[price][60]["clsoe"].pct_change()  # MISTAKE-LINE

        self.add_nodes([price, Node(input=price, compute_fn=ret, name="ret")])
