"""Several named nodes: two inputs, a feature frame, and a node that reads another node's frame."""

import numpy as np
import pandas as pd

from qmtl.runtime.sdk import Node, Strategy, StreamInput


class SpreadStrategy(Strategy):
    def setup(self):
        btc = StreamInput(tags=["btc"], interval="1m", period=40, name="btc")
        eth = StreamInput(tags=["eth"], interval="1m", period=40, name="eth")

        def log_returns(view):
            b = view[btc][60]["close"]
            e = view[eth][60]["close"]
            return pd.DataFrame({"btc_ret": np.log(b).diff(), "eth_ret": np.log(e).diff()})

        returns = Node(input=[btc, eth], compute_fn=log_returns, name="returns")

        def spread_signal(view):
            frame = view.as_frame(returns, 60, columns=["btc_ret", "eth_ret"]).frame
            spread = frame["btc_ret"] - frame["eth_ret"]
            z = (spread - spread.rolling(20).mean()) / spread.rolling(20).std()
            position = np.where(z > 2, -1, np.where(z < -2, 1, 0))
            return pd.DataFrame({"z": z, "position": position})

        signal = Node(input=returns, compute_fn=spread_signal, name="spread_signal")
        self.add_nodes([btc, eth, returns, signal])
