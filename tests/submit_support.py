"""What the submit tests share (tests/sdk/test_runner.py and tests/e2e): the momentum strategy they
submit, and a gateway URL that refuses connections (for the safe-mode paths)."""

from __future__ import annotations

import socket

# One input (60 s bars, 30-bar period) and one signal node; the e2e tests rely on its names
# ("momentum_signal.signal" as the returns source) and on a second strategy sharing the input.
MOMENTUM = '''
from qmtl.runtime.sdk import Strategy, Node, StreamInput
import pandas as pd


class GeneralStrategy(Strategy):
    def setup(self):
        price_stream = StreamInput(interval="60s", period=30)

        def generate_signal(view) -> pd.DataFrame:
            price = view.as_frame(price_stream, 60, columns=["close"]).validate_columns(["close"])
            momentum = price.frame["close"].pct_change().rolling(5).mean()
            signal = (momentum > 0).astype(int)
            return pd.DataFrame({"signal": signal})

        signal_node = Node(input=price_stream, compute_fn=generate_signal, name="momentum_signal")
        self.add_nodes([price_stream, signal_node])
'''


def closed_port_url() -> str:
    """The URL of a loopback port nothing listens on: the port is bound, read, then released."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# An opaque compute function that reads a lock (a value with no canonical form): it compiles and
# runs, but its NodeID cannot be stable, so lint reports E111.
UNSTABLE_CLOSURE = '''
import threading
from qmtl.runtime.sdk import Strategy, Node, StreamInput

guard = threading.Lock()

def guarded(view):
    with guard:
        return view[src][60]["close"].rank()

class Unstable(Strategy):
    def setup(self):
        global src
        src = StreamInput(interval=60, period=5)
        self.add_nodes([src, Node(input=src, period=5, name="ranked", compute_fn=guarded)])
'''
