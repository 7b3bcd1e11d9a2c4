"""Mistake: the file defines no Strategy subclass."""  # MISTAKE-LINE (reported at line 1)
from qmtl.runtime.sdk import Node, StreamInput


class NotAStrategy:
    def setup(self):
        price = StreamInput(interval=60, period=20, name="price")
