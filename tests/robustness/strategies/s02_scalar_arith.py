"""Scalars on either side of every operator, unary minus and powers."""
import numpy as np
import pandas as pd

from qmtl.runtime.sdk import Node, Strategy, StreamInput


class ScalarArith(Strategy):
    def setup(self):
        bars = StreamInput(interval=60, period=20, name="bars")

        def compute(view):
            c = view[bars][60]["close"]
            o = view[bars][60]["open"]
            r = (c - o) / o
            out = pd.DataFrame({
                "one_minus": 1 - r,
                "twice": 2 * r,
                "half": r / 2,
                "inv": 1 / c,
                "sq": r ** 2,
                "neg": -r,
                "pos": +r,
                "shifted": 100 + c - 0.5 * o,
                "pow2": 2 ** (r * 10),
            })
            return out

        self.add_nodes([bars, Node(input=bars, compute_fn=compute, name="arith")])
