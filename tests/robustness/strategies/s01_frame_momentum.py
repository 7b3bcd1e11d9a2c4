"""Frame access through view[node][interval] and .as_frame, attribute access df.close."""
import numpy as np
import pandas as pd

from qmtl.runtime.sdk import Node, Strategy, StreamInput


class FrameMomentum(Strategy):
    def setup(self):
        price = StreamInput(interval="1m", period=40, name="price")

        def features(view):
            df = view[price][60]
            ret = df.close.pct_change()
            rng = (df.high - df.low) / df.close
            body = (df["close"] - df["open"]) / df["open"]
            return pd.DataFrame({"ret": ret, "range": rng, "body": body})

        def signal(view):
            f = view.as_frame(feats, 60, columns=["ret", "range"]).frame
            mom = f["ret"].rolling(10).mean()
            return (mom > 0).astype(int) - (mom < 0).astype(int)

        feats = Node(input=price, compute_fn=features, name="features")
        sig = Node(input=feats, compute_fn=signal, name="signal")
        self.add_nodes([price, feats, sig])
