"""ewm with span, alpha, com, adjust=False: the ewm of the node's window."""
import pandas as pd

from qmtl.runtime.sdk import Node, Strategy, StreamInput


class EwmVariants(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=50, name="price")

        def smooth(view):
            c = view[price][60]["close"]
            return pd.DataFrame({
                "span": c.ewm(span=10).mean(),
                "alpha": c.ewm(alpha=0.2).mean(),
                "com": c.ewm(com=4).mean(),
                "noadj": c.ewm(span=10, adjust=False).mean(),
            })

        self.add_nodes([price, Node(input=price, compute_fn=smooth, name="smooth")])
