"""Missing-value handling: fillna(0), ffill(), fillna(method=...), replace."""
import numpy as np
import pandas as pd

from qmtl.runtime.sdk import Node, Strategy, StreamInput


class FillReplace(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=12, name="price")

        def zero_fill(view):
            return view[price][60]["close"].pct_change().fillna(0.0)

        def forward(view):
            c = view[price][60]["close"]
            gappy = c.where(c > c.rolling(3).mean())
            return gappy.ffill()

        def replaced(view):
            d = np.sign(view[price][60]["close"].diff())
            return d.replace(0.0, np.nan)

        self.add_nodes([price,
                        Node(input=price, compute_fn=zero_fill, name="zero_fill"),
                        Node(input=price, compute_fn=forward, name="forward"),
                        Node(input=price, compute_fn=replaced, name="replaced")])
