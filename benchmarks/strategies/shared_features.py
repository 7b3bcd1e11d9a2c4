"""Ten strategies in one template (``QMTL_SHARED_VARIANT`` = 0..9 picks one): eight expensive feature
nodes every variant shares (an opaque per-tick feature, long rolling windows), and two nodes of its
own (a threshold and a smoothing window that differ per variant), so 80 % of each strategy's nodes
are shared.  Used by ``benchmarks/bench_sharing.py``."""
import os

import numpy as np
from qmtl.runtime.sdk import Node, Strategy, StreamInput

VARIANT = int(os.environ.get("QMTL_SHARED_VARIANT", "0"))


def trend_strength(view):
    """Opaque (a Python ``if`` on a value): the share of up-moves in the window, signed by the drift."""
    close = view[PRICE][60]["close"].to_numpy()
    up = float(np.mean(np.diff(close) > 0))
    if close[-1] > close[0]:
        return up
    return -up


PRICE = StreamInput(interval=60, period=200, name="price")


class SharedFeatures(Strategy):
    def setup(self):
        close = lambda v: v[PRICE][60]["close"]  # noqa: E731
        trend = Node(input=PRICE, compute_fn=trend_strength, period=200, name="trend")
        mean = Node(input=PRICE, compute_fn=lambda v: close(v).rolling(2000).mean(), period=2000, name="mean")
        std = Node(input=PRICE, compute_fn=lambda v: close(v).rolling(2000).std(), period=2000, name="std")
        hi = Node(input=PRICE, compute_fn=lambda v: close(v).rolling(1000).max(), period=1000, name="hi")
        lo = Node(input=PRICE, compute_fn=lambda v: close(v).rolling(1000).min(), period=1000, name="lo")
        mom = Node(input=PRICE, compute_fn=lambda v: close(v).pct_change(500), period=501, name="mom")
        z = Node(input=[PRICE, mean, std], compute_fn=lambda v: (close(v) - v[mean][60]) / v[std][60],
                 period=1, name="z")
        rng = Node(input=[hi, lo], compute_fn=lambda v: v[hi][60] - v[lo][60], period=1, name="range")
        thr = 0.5 + 0.1 * VARIANT
        signal = Node(input=[z, trend], compute_fn=lambda v: ((v[z][60] > thr) & (v[trend][60] > 0)).astype(float),
                      period=1, name="signal")
        smooth = Node(input=signal, compute_fn=lambda v: v[signal][60].rolling(3 + VARIANT).mean(),
                      period=3 + VARIANT, name="position")
        self.add_nodes([PRICE, trend, mean, std, hi, lo, mom, z, rng, signal, smooth])
