"""An opaque rule: a Python ``if`` on a value makes it untraceable, so qmtl calls it once per tick."""
from qmtl.runtime.sdk import Node, Strategy, StreamInput

PERIOD = 30


def rule(frame):
    """The user's pandas rule on one window of bars (shared with the hand-written baseline)."""
    close = frame["close"]
    mom = close.pct_change().rolling(5).mean().iloc[-1]
    if mom > 0:
        return {"signal": 1.0, "z": float((close.iloc[-1] - close.mean()) / close.std())}
    return {"signal": -1.0, "z": 0.0}


class OpaqueRule(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=PERIOD, name="price")
        self.add_nodes([price, Node(input=price, compute_fn=lambda view: rule(view[price][60]),
                                    name="rule")])
