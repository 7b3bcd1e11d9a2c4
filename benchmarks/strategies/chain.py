"""A chain of N traced nodes, each adding 1 to the previous one's frame (N from QMTL_CHAIN_N)."""
import os

from qmtl.runtime.sdk import Node, Strategy, StreamInput

N = int(os.environ.get("QMTL_CHAIN_N", "2000"))


class Chain(Strategy):
    def setup(self):
        price = StreamInput(interval="60s", period=2)
        nodes = [price]
        prev = price
        for i in range(N):
            if i == 0:
                def fn(view, prev=prev):
                    return view.as_frame(prev, 60).frame[["close"]] + 1.0
            else:
                def fn(view, prev=prev):
                    return view.as_frame(prev, 60).frame + 1.0
            prev = Node(input=prev, compute_fn=fn, name=f"n{i}", period=2)
            nodes.append(prev)
        self.add_nodes(nodes)
