"""Mistake: setup() raises (a typo'd name)."""
from qmtl.runtime.sdk import Node, Strategy, StreamInput


class SetupRaises(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=20, name="price")
        self.add_nodes([price, Node(expr=pricee.close.diff(), name="chg")])  # MISTAKE-LINE
