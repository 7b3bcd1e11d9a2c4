"""pd.concat([...], axis=1), .rename(), .to_frame(), .astype(float), df[[...]] selection."""
import pandas as pd

from qmtl.runtime.sdk import Node, Strategy, StreamInput


class ConcatRename(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=15, name="price")

        def build(view):
            bars = view[price][60]
            sub = bars[["close", "volume"]]
            a = sub["close"].pct_change().rename("ret")
            b = (sub["volume"] > sub["volume"].rolling(5).mean()).astype(float).rename("hot")
            return pd.concat([a, b], axis=1)

        def one_col(view):
            return view[price][60]["close"].diff().to_frame("chg")

        self.add_nodes([price, Node(input=price, compute_fn=build, name="combo"),
                        Node(input=price, compute_fn=one_col, name="chg")])
