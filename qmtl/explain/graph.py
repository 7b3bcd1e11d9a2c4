"""DAG pictures (``qmtl compile --emit svg|html``): the module's ops drawn with Graphviz, grouped by
SDK node (or by the kernel that runs them), each op marked by what ``explain`` says of its node.

The picture is built as a Graphviz graph with the ``graphviz`` package and laid out by the ``dot``
program (Debian's ``graphviz``); an op computed by several nodes (CSE) is drawn once, inside the
first of them, with every node's name on it — no name is ever dropped.  Marks:

* source (bars in): green, ``cds`` shape;  traced: white box;
* opaque (``py_call``: Python per bar): orange octagon;  per tick (the interpreter): red, dashed;
* shared (an op several nodes compute): double border;  reused (the store holds the node's value, or
  the gateway's graph or artifact index has its NodeID): blue fill.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from typing import Any

import graphviz

from qmtl.codegen.split import split
from qmtl.ir.module import Module, Op
from qmtl.ir.regions import node_regions

from .nodes import Explanation, op_steps

GROUPINGS = ("node", "kernel")

_FILL = {"source": "#d9f2d9", "traced": "#ffffff", "opaque": "#ffe0b3", "per-tick": "#ffd6d6"}
_SHAPE = {"source": "cds", "traced": "box", "opaque": "octagon", "per-tick": "box"}
_REUSED_FILL = "#cfe2ff"


class GraphvizMissing(RuntimeError):
    """The ``dot`` program is not installed (the Python package only writes DOT text)."""


def dag_graph(compiled: Any, explanation: Explanation, group: str = "node") -> graphviz.Digraph:
    """The module of ``compiled`` as a Graphviz graph, clustered by SDK node or by kernel."""
    if group not in GROUPINGS:
        raise ValueError(f"unknown grouping {group!r}: expected one of {', '.join(GROUPINGS)}")
    module: Module = compiled.module
    regions = node_regions(module)
    nodes = {n.name: n for n in explanation.nodes}
    owners: dict[str, list[str]] = defaultdict(list)  # op → the SDK nodes computing it, output order
    for name, region in regions.items():
        for op in region.ops:
            owners[op.result].append(name)
    outputs: dict[str, list[str]] = defaultdict(list)  # value → every output naming it
    for o in module.outputs:
        outputs[o.value].append(o.name)
    parts = split(module)
    steps = op_steps(parts.flow) if parts.flow is not None else {}
    g = graphviz.Digraph(name=module.name, graph_attr={
        "rankdir": "LR", "fontname": "Helvetica", "label": f"{module.name}: {explanation.ops} ops, "
        f"{len(explanation.nodes)} nodes", "labelloc": "t"},
        node_attr={"fontname": "Helvetica", "fontsize": "10", "style": "filled"},
        edge_attr={"arrowsize": "0.6"})
    clusters: dict[str, list[Op]] = defaultdict(list)
    for op in module.ops:
        names = owners.get(op.result) or outputs.get(op.result) or []
        home = names[0] if names else ""
        if group == "kernel":
            home = "interpreter" if home in parts.per_tick else steps.get(op.result, "inputs and constants")
        clusters[home].append(op)
    for i, (home, ops) in enumerate(clusters.items()):
        with g.subgraph(name=f"cluster_{i}") as sub:
            sub.attr(label=_cluster_label(home, nodes, group), style="rounded", color="#888888")
            for op in ops:
                names = owners.get(op.result) or outputs.get(op.result) or []
                kind = _op_kind(op, names, nodes)
                _add_op(sub, op, names, outputs.get(op.result, []), kind, steps.get(op.result),
                        reused=any(_reused(nodes[n]) for n in outputs.get(op.result, []) if n in nodes))
    for op in module.ops:
        for src in op.operands:
            g.edge(_id(src), _id(op.result))
    _legend(g)
    return g


def to_svg(compiled: Any, explanation: Explanation, group: str = "node") -> str:
    """The picture as SVG text (needs Graphviz's ``dot`` on PATH)."""
    if shutil.which("dot") is None:
        raise GraphvizMissing("Graphviz's `dot` program is not installed (Debian: apt-get install graphviz); "
                              "`--emit dot` prints the graph without it")
    return dag_graph(compiled, explanation, group).pipe(format="svg", encoding="utf-8")


def _cluster_label(home: str, nodes: dict, group: str) -> str:
    if group == "kernel":
        return home
    node = nodes.get(home)
    return f"{home} ({node.kind})" if node is not None else home


def _op_kind(op: Op, owners: list[str], nodes: dict) -> str:
    if op.name in ("stream_input", "tag_query"):
        return "source"
    if op.name == "py_call":
        return "opaque"
    if any(nodes[n].kind == "per-tick" for n in owners if n in nodes):
        return "per-tick"
    return "traced"


def _reused(node: Any) -> bool:
    """The store holds the node's value, or the gateway's graph or index already has its NodeID."""
    return bool(node.stored) or bool(node.registered) or bool(node.in_graph)


def _add_op(g: graphviz.Digraph, op: Op, owners: list[str], named: list[str], kind: str,
            step: str | None, reused: bool) -> None:
    attrs = ", ".join(f"{k}={v!r}" for k, v in op.attrs if k not in ("code_hash", "reason", "fn"))
    lines = [" = ".join(named) if named else f"%{op.result}", op.name + (f"({attrs})" if attrs else "")]
    if len(owners) > 1:
        lines.append("in " + ", ".join(owners))
    lines.append(" ".join(x for x in ((op.node_id or "")[:19], step or "") if x))
    style = ["filled"] + (["dashed"] if kind == "per-tick" else []) + (["bold"] if named else [])
    g.node(_id(op.result), label="\n".join(_short(line) for line in lines), shape=_SHAPE[kind],
           fillcolor=_REUSED_FILL if reused else _FILL[kind], style=",".join(style),
           peripheries="2" if len(owners) > 1 else "1", tooltip=op.node_id or op.result)


def _legend(g: graphviz.Digraph) -> None:
    with g.subgraph(name="cluster_legend") as lg:
        lg.attr(label="legend", style="dashed", color="#bbbbbb", fontsize="10")
        for kind in ("source", "traced", "opaque", "per-tick"):
            lg.node(f"legend_{kind}", label=kind, shape=_SHAPE[kind], fillcolor=_FILL[kind],
                    style="filled,dashed" if kind == "per-tick" else "filled")
        lg.node("legend_shared", label="shared by several nodes", shape="box", peripheries="2",
                fillcolor="#ffffff")
        lg.node("legend_reused", label="already stored / in the graph", shape="box", fillcolor=_REUSED_FILL)


def _id(value: str) -> str:
    return "v_" + value


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
