"""ewm(halflife=...) — not in the traced subset, so the node runs opaque (and still correctly)."""
from qmtl.runtime.sdk import Node, Strategy, StreamInput


class EwmHalflife(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=40, name="price")

        def hl(view):
            c = view[price][60]["close"]
            return c.ewm(halflife=5).mean() - c

        self.add_nodes([price, Node(input=price, compute_fn=hl, name="hl")])
