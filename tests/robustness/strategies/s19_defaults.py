"""default_interval / default_period on the class; nodes omit interval and period."""
from qmtl.runtime.sdk import Node, Strategy, StreamInput


class Defaults(Strategy):
    default_interval = "1m"
    default_period = 25

    def setup(self):
        price = StreamInput(name="price")

        def trend(view):
            c = view[price][60]["close"]
            return c.rolling(20).mean() / c.rolling(5).mean() - 1

        self.add_nodes([price, Node(input=price, compute_fn=trend, name="trend")])
