"""The expression API on node handles (no compute_fn)."""
from qmtl.runtime.sdk import Node, Strategy, StreamInput, ema, rsi, sma


class ExpressionAPI(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=40, name="price")
        trend = Node(expr=sma(price.close, 5) - sma(price.close, 20), name="trend")
        osc = Node(expr={"rsi": rsi(price.close, 14), "ema": ema(price["close"], 8)}, name="osc")
        sig = Node(expr=(trend.ref() > 0) & (osc["rsi"] < 70), name="sig")
        self.add_nodes([price, trend, osc, sig])
