"""Compile a generated strategy of ~10,000 IR nodes end to end and time each stage.

    .venv/bin/python benchmarks/bench_compile.py [--nodes 10000] [--repeat 3]

Writes benchmarks/results/compile.md.  The strategy is generated as a real source file (streams ×
SDK nodes, each node a traced compute function of a few ops), so the time includes loading the file,
tracing every compute function, the passes, hashing, printing and re-parsing the IR dump.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _machine import machine  # noqa: E402  (benchmarks/ is the script's folder)

HEADER = '''
from qmtl.runtime.sdk import Strategy, Node, StreamInput


def make_signal(src, lag, window, level):
    def signal(view):
        close = view[src][60]["close"]
        return (close.pct_change(lag).rolling(window).mean() > level).astype(float)
    return signal


class Generated(Strategy):
    def setup(self):
        nodes = []
'''


def generate(ops_target: int, streams: int = 50) -> str:
    """A strategy whose canonical IR has about ``ops_target`` ops (5 unique ops per SDK node)."""
    per_node = 5
    n_nodes = ops_target // per_node
    lines = [HEADER]
    for s in range(streams):
        lines.append(f'        s{s} = StreamInput(tags=["SYM{s}"], interval=60, period=64)\n')
        lines.append(f"        nodes.append(s{s})\n")
    for i in range(n_nodes):
        s = i % streams
        lag, window, level = 1 + (i // streams) % 7, 2 + (i // (streams * 7)) % 30, 0.0001 * i
        lines.append(f"        nodes.append(Node(input=s{s}, period=64, name='n{i}', "
                     f"compute_fn=make_signal(s{s}, {lag}, {window}, {level!r})))\n")
    lines.append("        self.add_nodes(nodes)\n")
    return "".join(lines)


def timed(fn):
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def run(ops_target: int, repeat: int) -> dict:
    import qmtl
    from qmtl.ir.parser import parse_module

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "generated.py"
        path.write_text(generate(ops_target))
        totals, prints, parses = [], [], []
        compiled = None
        for _ in range(repeat):
            compiled, t_compile = timed(lambda: qmtl.compile(path))
            text, t_print = timed(lambda: compiled.ir_text)
            _, t_parse = timed(lambda: parse_module(text))
            totals.append(t_compile)
            prints.append(t_print)
            parses.append(t_parse)
            compiled.__dict__.pop("ir_text", None)
        return {"ops": len(compiled.module.ops), "sdk_nodes": len(compiled.module.outputs),
                "compile_s": statistics.median(totals), "print_s": statistics.median(prints),
                "parse_s": statistics.median(parses), "lines": compiled.ir_text.count("\n")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=10_000, help="target number of IR ops")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    r = run(args.nodes, args.repeat)
    report = (
        "# Compile benchmark\n\n"
        f"Machine: {machine()}\n\n"
        f"Command: `.venv/bin/python benchmarks/bench_compile.py --nodes {args.nodes} --repeat {args.repeat}` "
        "(median of the repeats)\n\n"
        "| IR ops | SDK nodes | compile end to end (s) | print IR (s) | parse IR (s) | IR lines |\n"
        "|---:|---:|---:|---:|---:|---:|\n"
        f"| {r['ops']} | {r['sdk_nodes']} | {r['compile_s']:.2f} | {r['print_s']:.3f} | "
        f"{r['parse_s']:.3f} | {r['lines']} |\n")
    out = ROOT / "benchmarks" / "results" / "compile.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
