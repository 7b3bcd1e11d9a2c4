"""Strategy sources the explain / picture / diff tests compile (written to tmp files)."""

from __future__ import annotations

import textwrap
from pathlib import Path

# three nodes: a traced one, an opaque one (Python control flow on a value), and a traced node that
# computes the same rolling mean as the first (CSE: they share NodeIDs)
MIXED = '''
from qmtl.runtime.sdk import Strategy, Node, StreamInput


class Mixed(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period=20, name="price")

        def fast_mean(view):
            return view[price][60]["close"].rolling(5).mean()

        def slope(view):
            return view[price][60]["close"].rolling(5).mean().diff()

        def gate(view):
            if view[price][60]["close"].iloc[-1] > 100:
                return 1.0
            return 0.0

        self.add_nodes([price, Node(input=price, name="fast_mean", compute_fn=fast_mean),
                        Node(input=price, name="slope", compute_fn=slope),
                        Node(input=price, name="gate", compute_fn=gate)])
'''


def wide(n_nodes: int, class_name: str = "Wide") -> str:
    """A strategy of one input and ``n_nodes - 1`` traced nodes with distinct windows."""
    body = "\n".join(
        f'        nodes.append(Node(input=price, name="ma_{i}", '
        f'compute_fn=lambda v, w={i + 2}: v[price][60]["close"].rolling(w).mean()))'
        for i in range(n_nodes - 1))
    return f'''
from qmtl.runtime.sdk import Strategy, Node, StreamInput


class {class_name}(Strategy):
    def setup(self):
        price = StreamInput(interval=60, period={n_nodes + 2}, name="price")
        nodes = [price]
{body}
        self.add_nodes(nodes)
'''


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path
