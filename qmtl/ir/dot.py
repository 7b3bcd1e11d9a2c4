"""Graphviz rendering of a module (`qmtl compile --emit dot`): one box per op, outputs highlighted."""

from __future__ import annotations

from .module import Module


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _label(*lines: str) -> str:
    """A multi-line DOT label: each line escaped, joined with DOT's own ``\\n``."""
    return '"' + "\\n".join(_quote(line)[1:-1] for line in lines) + '"'


def to_dot(module: Module) -> str:
    """One box per op; one ellipse per output, so outputs naming the same value (after CSE two SDK
    nodes can share a NodeID) each keep their name."""
    outputs = [(o.value, o.name) for o in module.outputs]
    output_values = {value for value, _ in outputs}
    lines = [f"digraph {_quote(module.name)} {{", "  rankdir=LR;",
             "  node [shape=box, fontname=monospace];"]
    for op in module.ops:
        attrs = ", ".join(f"{k}={v!r}" for k, v in op.attrs if k not in ("code_hash", "reason"))
        text = [f"%{op.result}", op.name + (f"({attrs})" if attrs else "")]
        if op.node_id:
            text.append(op.node_id[:19])
        style = ", style=bold, color=blue" if op.result in output_values else ""
        if op.name == "py_call":
            style += ", shape=octagon"
        lines.append(f"  {_quote(op.result)} [label={_label(*text)}{style}];")
        for i, src in enumerate(op.operands):
            lines.append(f"  {_quote(src)} -> {_quote(op.result)} [label=\"{i}\"];")
    for value, name in outputs:
        lines.append(f"  {_quote('out:' + name)} [shape=ellipse, label={_quote(name)}];")
        lines.append(f"  {_quote(value)} -> {_quote('out:' + name)} [style=dashed];")
    lines.append("}")
    return "\n".join(lines) + "\n"
