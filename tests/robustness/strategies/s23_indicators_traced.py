"""Indicator helpers inside a compute function (sma, ema, rsi, macd, bollinger, atr, zscore)."""
import pandas as pd

from qmtl.runtime.sdk import Node, Strategy, StreamInput, atr, bollinger, ema, macd, rsi, sma, zscore


class IndicatorsTraced(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=40, name="price")

        def ind(view):
            bars = view[price][60]
            c = bars["close"]
            m, sig, hist = macd(c, 6, 13, 4)
            up, mid, lo = bollinger(c, 20, 2.0)
            return pd.DataFrame({
                "sma": sma(c, 10), "ema": ema(c, 10), "rsi": rsi(c, 14),
                "macd": m, "hist": hist, "up": up, "lo": lo,
                "atr": atr(bars, n=14), "z": zscore(c, 20),
            })

        self.add_nodes([price, Node(input=price, compute_fn=ind, name="ind")])
