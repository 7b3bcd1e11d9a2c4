"""Tracing cost grows linearly with the strategy: no per-node work that scans the whole file.

Regression guards for quadratic work found in the compile benchmark: the source position of every
node was found by listing all instruction positions of ``setup()`` (as long as the strategy), and
every opaque function's definition was found by walking the whole module's AST.  Each test traces a
strategy and one four times its size; linear work takes ~4× as long, the old quadratic work ≥ 16×.
The bound (8×) leaves room for a noisy shared machine.
"""

from __future__ import annotations

import ast
import time
from pathlib import Path

from qmtl.compiler.frontend import trace
from qmtl.compiler.loader import load_strategy
from qmtl.ir.diagnostics import errors

TRACED = '''
from qmtl.runtime.sdk import Strategy, Node, StreamInput


def make_signal(src, window):
    def signal(view):
        return view[src][60]["close"].rolling(window).mean()
    return signal


class Generated(Strategy):
    def setup(self):
        nodes = []
        src = StreamInput(tags=["SYM"], interval=60, period=64)
        nodes.append(src)
'''

OPAQUE = '''
from qmtl.runtime.sdk import Strategy, Node, StreamInput


class Generated(Strategy):
    def setup(self):
        nodes = []
        src = StreamInput(tags=["SYM"], interval=60, period=64)
        nodes.append(src)
'''


def traced_strategy(n: int) -> str:
    body = "".join(f"        nodes.append(Node(input=src, period=64, name='n{i}', "
                   f"compute_fn=make_signal(src, {2 + i % 50})))\n" for i in range(n))
    return TRACED + body + "        self.add_nodes(nodes)\n"


def opaque_strategy(n: int) -> str:
    # n distinct functions in one file: each is found in the file's AST by name and line
    defs = "".join(f"        def f{i}(view):\n"
                   f"            return float(view[src][60]['close'].iloc[-1] > {i})\n"
                   f"        nodes.append(Node(input=src, period=64, name='n{i}', compute_fn=f{i}))\n"
                   for i in range(n))
    return OPAQUE + defs + "        self.add_nodes(nodes)\n"


def trace_seconds(tmp_path: Path, name: str, text: str, expect_ops: int) -> float:
    path = tmp_path / name
    path.write_text(text)
    cls = load_strategy(path)
    best = float("inf")
    for _ in range(2):
        t0 = time.process_time()
        result = trace(cls)
        best = min(best, time.process_time() - t0)
    assert not errors(result.diagnostics)
    assert len(result.module.ops) >= expect_ops
    return best


def test_tracing_many_nodes_is_linear(tmp_path):
    small = trace_seconds(tmp_path, "small.py", traced_strategy(250), 250)
    large = trace_seconds(tmp_path, "large.py", traced_strategy(1000), 1000)
    assert large < 8 * max(small, 0.01), (small, large)


def test_hashing_many_opaque_functions_of_one_file_is_linear(tmp_path):
    small = trace_seconds(tmp_path, "small_opaque.py", opaque_strategy(150), 150)
    large = trace_seconds(tmp_path, "large_opaque.py", opaque_strategy(600), 600)
    assert large < 8 * max(small, 0.01), (small, large)


def test_a_strategy_file_is_parsed_once_for_all_its_opaque_functions(tmp_path, monkeypatch):
    path = tmp_path / "parsed_once.py"
    path.write_text(opaque_strategy(20))
    cls = load_strategy(path)
    parsed: list[str] = []
    real_parse = ast.parse

    def counting_parse(source, *args, **kwargs):
        parsed.append(source)
        return real_parse(source, *args, **kwargs)

    monkeypatch.setattr(ast, "parse", counting_parse)
    result = trace(cls)
    assert sum(op.name == "py_call" for op in result.module.ops) == 20
    assert len(parsed) <= 1
