"""Mistake: the file defines no Strategy subclass."""
from qmtl.runtime.sdk import Node, StreamInput


class NotAStrategy:  # MISTAKE-LINE
    def setup(self):
        price = StreamInput(interval=60, period=20, name="price")
