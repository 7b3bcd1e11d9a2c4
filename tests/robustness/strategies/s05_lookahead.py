"""Look-ahead: shift(-1) reads the next bar — must be refused at compile time."""
import pandas as pd

from qmtl.runtime.sdk import Node, Strategy, StreamInput


class LookAhead(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=20, name="price")

        def future_return(view):
            close = view[price][60]["close"]
            nxt = close.shift(-1)  # MISTAKE-LINE
            return (nxt - close) / close

        self.add_nodes([price, Node(input=price, compute_fn=future_return, name="fwd")])
