"""Indicator helpers on a node handle (expression API) and inside a traced compute function.

Both spellings build the same ops, so ``trend`` and ``trend_traced`` share one NodeID.
"""

import pandas as pd

from qmtl.runtime.sdk import Node, Strategy, StreamInput, atr, bollinger, ema, macd, rsi, sma, zscore


class IndicatorStrategy(Strategy):
    def setup(self):
        price = StreamInput(tags=["btc", "spot"], interval="1m", period=60)

        trend = Node(expr={"fast": ema(price.close, 12), "slow": sma(price.close, 26)},
                     name="trend", period=60)

        def trend_fn(view):
            close = view[price]["1m"]["close"]
            return pd.DataFrame({"fast": ema(close, 12), "slow": sma(close, 26)})

        trend_traced = Node(input=price, compute_fn=trend_fn, name="trend_traced", period=60)

        line, signal, hist = macd(price.close)
        upper, middle, lower = bollinger(price.close, 20, 2.0)
        bands = Node(expr={
            "rsi": rsi(price.close, 14),
            "macd_hist": hist,
            "band_pos": (price.close - lower) / (upper - lower),
            "atr": atr(price, n=14),
            "z": zscore(price.close, 20),
        }, name="bands", period=60)

        self.add_nodes([price, trend, trend_traced, bands])
