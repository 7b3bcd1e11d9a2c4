"""Python control flow on a value (if/else on the last close): opaque, evaluated per tick."""
from qmtl.runtime.sdk import Node, Strategy, StreamInput


class PythonIf(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=20, name="price")

        def regime(view):
            c = view[price][60]["close"]
            if c.iloc[-1] > c.mean():
                return c.pct_change() * 2
            return c.pct_change() * 0

        self.add_nodes([price, Node(input=price, compute_fn=regime, name="regime")])
