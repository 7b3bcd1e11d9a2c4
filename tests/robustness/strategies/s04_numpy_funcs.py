"""numpy ufuncs: log, sqrt, abs, sign, maximum, minimum, exp."""
import numpy as np
import pandas as pd

from qmtl.runtime.sdk import Node, Strategy, StreamInput


class NumpyFuncs(Strategy):
    def setup(self):
        s = StreamInput(interval=60, period=25, name="s")

        def fn(view):
            b = view[s][60]
            logret = np.log(b["close"]).diff()
            vol = np.sqrt((logret ** 2).rolling(20).mean())
            tr = np.maximum(b["high"] - b["low"], np.abs(b["high"] - b["close"].shift(1)))
            return pd.DataFrame({
                "logret": logret,
                "vol": vol,
                "dir": np.sign(logret),
                "tr": tr,
                "floor": np.minimum(logret, 0.0),
                "growth": np.exp(logret),
            })

        self.add_nodes([s, Node(input=s, compute_fn=fn, name="feat")])
