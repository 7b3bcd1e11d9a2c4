"""cumsum over the window: depends on where the window starts."""
from qmtl.runtime.sdk import Node, Strategy, StreamInput


class CumSum(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=15, name="price")

        def drift(view):
            r = view[price][60]["close"].pct_change()
            return r.cumsum()

        self.add_nodes([price, Node(input=price, compute_fn=drift, name="drift")])
