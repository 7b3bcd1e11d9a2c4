"""Mistake: an interval with an unknown unit."""
from qmtl.runtime.sdk import Node, Strategy, StreamInput


class BadIntervalUnit(Strategy):
    def setup(self):
        price = StreamInput(interval="90x", period=20, name="price")  # MISTAKE-LINE
        self.add_nodes([price, Node(expr=price.close.diff(), name="chg")])
