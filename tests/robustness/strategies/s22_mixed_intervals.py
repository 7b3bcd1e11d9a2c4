"""Two inputs with different intervals: 1m bars and 5m bars of the same data."""
from qmtl.runtime.sdk import Node, Strategy, StreamInput


class MixedIntervals(Strategy):
    def setup(self):
        fast = StreamInput(interval="1m", period=20, name="fast")
        slow = StreamInput(interval="5m", period=10, name="slow")

        def fast_trend(view):
            return view[fast][60]["close"].rolling(10).mean()

        def slow_trend(view):
            return view[slow]["5m"]["close"].rolling(5).mean()

        ft = Node(input=fast, compute_fn=fast_trend, name="fast_trend")
        st = Node(input=slow, compute_fn=slow_trend, name="slow_trend")
        self.add_nodes([fast, slow, ft, st])
