"""rolling(...).apply(lambda ...) and Series.apply — opaque by nature."""
import numpy as np

from qmtl.runtime.sdk import Node, Strategy, StreamInput


class ApplyLambda(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=20, name="price")

        def slope(view):
            c = view[price][60]["close"]
            return c.rolling(5).apply(lambda w: w[-1] - w[0], raw=True)

        def squash(view):
            return view[price][60]["close"].pct_change().apply(lambda v: np.tanh(100 * v))

        self.add_nodes([price, Node(input=price, compute_fn=slope, name="slope"),
                        Node(input=price, compute_fn=squash, name="squash")])
