"""A node consuming two other computed nodes, and one consuming a frame node's column."""
import pandas as pd

from qmtl.runtime.sdk import Node, Strategy, StreamInput


class TwoNodeInputs(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=30, name="price")

        def fast(view):
            return view[price][60]["close"].rolling(5).mean()

        def bands(view):
            c = view[price][60]["close"]
            m = c.rolling(20).mean()
            s = c.rolling(20).std()
            return pd.DataFrame({"upper": m + 2 * s, "lower": m - 2 * s})

        f = Node(input=price, compute_fn=fast, name="fast")
        b = Node(input=price, compute_fn=bands, name="bands")

        def position(view):
            fm = view[f][60]
            up = view[b][60]["upper"]
            lo = view[b][60]["lower"]
            return (fm > up).astype(int) - (fm < lo).astype(int)

        def width(view):
            frame = view[b][60]
            return frame.upper - frame.lower

        self.add_nodes([price, f, b,
                        Node(input=[f, b], compute_fn=position, name="position"),
                        Node(input=b, compute_fn=width, name="width")])
