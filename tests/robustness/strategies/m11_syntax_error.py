"""Mistake: a syntax error."""
from qmtl.runtime.sdk import Node, Strategy, StreamInput


class SyntaxErr(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=20, name="price")
        self.add_nodes([price, Node(expr=price.close.diff(), name="chg"])  # MISTAKE-LINE
