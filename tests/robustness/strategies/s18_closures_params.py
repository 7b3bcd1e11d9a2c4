"""Strategy subclass with __init__ params, self.param in compute_fns, closure factories."""
import pandas as pd

from qmtl.runtime.sdk import Node, Strategy, StreamInput


def make_signal(n, threshold):
    def compute(view):
        c = view["price"][60]["close"]
        mom = c.pct_change(n)
        return (mom > threshold).astype(float) - (mom < -threshold).astype(float)
    return compute


def make_scaler(k):
    return lambda v: v["price"][60]["close"].diff() * k


class Parametrised(Strategy):
    lookback = 8

    def __init__(self, fast=3, slow=12):
        self.fast = fast
        self.slow = slow

    def setup(self):
        price = StreamInput(interval=60, period=30, name="price")

        def cross(view):
            c = view[price][60]["close"]
            return c.rolling(self.fast).mean() - c.rolling(self.slow).mean()

        def lookback_ret(view):
            return view[price][60]["close"].pct_change(self.lookback)

        self.add_nodes([
            price,
            Node(input=price, compute_fn=cross, name="cross"),
            Node(input=price, compute_fn=lookback_ret, name="lb_ret"),
            Node(input=price, compute_fn=make_signal(5, 0.001), name="mom_sig"),
            Node(input=price, compute_fn=make_scaler(10.0), name="scaled"),
        ])
