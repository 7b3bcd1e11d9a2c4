"""Returning a Series, a DataFrame and a dict of series."""
import pandas as pd

from qmtl.runtime.sdk import Node, Strategy, StreamInput


class ReturnShapes(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=10, name="price")

        def as_series(view):
            return view[price][60]["close"].diff()

        def as_frame(view):
            c = view[price][60]["close"]
            return pd.DataFrame({"d": c.diff(), "p": c.pct_change()})

        def as_dict(view):
            c = view[price][60]["close"]
            return {"d": c.diff(), "p": c.pct_change()}

        self.add_nodes([
            price,
            Node(input=price, compute_fn=as_series, name="series_out"),
            Node(input=price, compute_fn=as_frame, name="frame_out"),
            Node(input=price, compute_fn=as_dict, name="dict_out"),
        ])
