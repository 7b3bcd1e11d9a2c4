"""Helper functions at module level, called from compute functions (traceable)."""
import numpy as np
import pandas as pd

from qmtl.runtime.sdk import Node, Strategy, StreamInput

WINDOW = 14


def log_returns(close):
    return np.log(close / close.shift(1))


def normalise(x, n):
    return (x - x.rolling(n).mean()) / x.rolling(n).std()


class ModuleHelpers(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=30, name="price")

        def score(view):
            r = log_returns(view[price][60]["close"])
            return pd.DataFrame({"r": r, "z": normalise(r, WINDOW)})

        self.add_nodes([price, Node(input=price, compute_fn=score, name="score")])
