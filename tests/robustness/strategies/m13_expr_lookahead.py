"""Mistake: look-ahead through the expression API."""
from qmtl.runtime.sdk import Node, Strategy, StreamInput


class ExprLookAhead(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=20, name="price")
        fwd = Node(expr=price.close.pct_change(-3), name="fwd")  # MISTAKE-LINE
        self.add_nodes([price, fwd])
