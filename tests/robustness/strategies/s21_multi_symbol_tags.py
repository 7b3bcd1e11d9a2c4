"""Several StreamInputs with different tags (symbols) and a pair spread across them."""
import numpy as np
import pandas as pd

from qmtl.runtime.sdk import Node, Strategy, StreamInput


class PairSpread(Strategy):
    def setup(self):
        a = StreamInput(tags=["AAA"], interval=60, period=30, name="a")
        b = StreamInput(tags=["BBB"], interval=60, period=30, name="b")

        def spread(view):
            la = np.log(view[a][60]["close"])
            lb = np.log(view[b][60]["close"])
            s = la - lb
            z = (s - s.rolling(20).mean()) / s.rolling(20).std()
            return pd.DataFrame({"spread": s, "z": z})

        self.add_nodes([a, b, Node(input=[a, b], compute_fn=spread, name="spread")])
