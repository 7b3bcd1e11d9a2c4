"""What the compiler decided for each SDK node of a compiled strategy (``qmtl explain``).

Everything here is read off the compiled module and its execution plan, never re-derived: a node's
kind and reason come from its ``Output`` and from ``codegen.split`` (the nodes the interpreter runs
per tick), its kernels from ``codegen.plan``, the NodeIDs it shares from the node regions
(``ir.regions``: after CSE one op can sit in several nodes' regions).  What other runs already hold —
the artifact store's files, the gateway's artifact index — is asked only when the caller passes a
store or a gateway client, so explaining a strategy costs one compile and no I/O by default.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from qmtl.codegen.plan import Kernel, plan
from qmtl.codegen.split import OPAQUE_COST, PER_TICK_COST, split
from qmtl.ir.module import Module
from qmtl.ir.regions import node_regions

#: a node's kind as ``qmtl explain`` shows it
KINDS = ("source", "traced", "opaque", "per-tick")


@dataclass(frozen=True)
class NodeReport:
    """One SDK node: how it runs, why, where, and what it shares.

    ``runs_in`` names the steps computing the node's ops: ``k<i>`` for fused Numba kernel *i*,
    ``python`` for an opaque function's per-bar call, ``interpreter`` for a node the reference
    interpreter runs per tick after the flow, ``input`` for a source.  ``shares`` maps every other
    node of the strategy that computes one of this node's NodeIDs to how many it shares.
    ``stored`` / ``in_graph`` / ``registered`` are ``None`` unless a store / gateway was asked: then
    the number of datasets the artifact store holds this node's value for, the number of strategies
    in the gateway's global graph using its NodeID (0: the graph does not have it), and the number of
    artifacts of it the gateway's index knows.  ``stored_here`` (a store and data were given) says
    whether the store holds the node's value computed on exactly those bars — what a run would read
    instead of computing.
    """

    name: str
    kind: str
    op: str
    node_id: str
    period: int
    interval: int
    ops: int
    runs_in: tuple[str, ...]
    why: str = ""
    cost: str = ""
    inputs: tuple[str, ...] = ()
    shares: tuple[tuple[str, int], ...] = ()
    stored: int | None = None
    stored_here: bool | None = None
    in_graph: int | None = None
    registered: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["runs_in"] = list(self.runs_in)
        d["inputs"] = list(self.inputs)
        d["shares"] = dict(self.shares)
        return d


@dataclass(frozen=True)
class Explanation:
    """A compiled strategy's nodes as ``qmtl explain`` reports them (``str()`` is the text form,
    ``to_dict()`` the JSON one, ``_repr_html_`` a table for notebooks)."""

    strategy: str
    source_file: str | None
    ops: int
    kernels: int
    nodes: tuple[NodeReport, ...]
    store: str | None = None
    gateway: str | None = None

    def node(self, name: str) -> NodeReport:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "source_file": self.source_file, "ops": self.ops,
                "kernels": self.kernels, "store": self.store, "gateway": self.gateway,
                "nodes": [n.to_dict() for n in self.nodes]}

    def __str__(self) -> str:
        from .render import explanation_text
        return explanation_text(self)

    def __repr__(self) -> str:
        from .render import summary
        counts = {k: sum(1 for n in self.nodes if n.kind == k) for k in KINDS}
        shown = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        return f"<Explanation {self.strategy}: {summary(self)} ({shown})>"

    def _repr_html_(self) -> str:
        from .render import explanation_html
        return explanation_html(self)


class ArtifactLookup(Protocol):
    """What ``explain`` asks of an artifact store (``qmtl.runtime.artifacts.ArtifactStore``)."""

    def of_node(self, node_id: str) -> list[Any]: ...

    def has(self, node_id: str, fingerprint: str) -> bool: ...


class GatewayLookup(Protocol):
    """What ``explain`` asks of a gateway (``qmtl.services.client.GatewayClient``)."""

    base_url: str

    def artifacts(self, node_id: str | None = None, limit: int = 10_000) -> list[dict[str, Any]]: ...

    def nodes(self, node_ids: list[str]) -> dict[str, list[str]]: ...


def explain(compiled: Any, store: ArtifactLookup | None = None,
            gateway: GatewayLookup | None = None, data: Any = None) -> Explanation:
    """Explain ``compiled`` (a ``CompiledStrategy``); with ``store`` / ``gateway``, also say which
    node values they already hold, and with ``store`` and ``data`` (what ``run`` takes) which a run
    on that data would read from the store."""
    module: Module = compiled.module
    ops = module.op_map()
    regions = node_regions(module)
    parts = split(module)
    runs = op_steps(parts.flow) if parts.flow is not None else {}
    holders: dict[str, list[str]] = defaultdict(list)  # NodeID → nodes whose region computes it
    for name, region in regions.items():
        if region.is_source:
            continue
        for nid in dict.fromkeys(op.node_id for op in region.ops if op.node_id):
            holders[nid].append(name)
    here = stored_on(compiled.module, parts.flow, store, data) if store is not None and data is not None \
        else None
    graph = gateway.nodes([ops[o.value].node_id for o in module.outputs if ops[o.value].node_id]) \
        if gateway is not None else {}
    value_names = {o.value: o.name for o in module.outputs}
    position = {o.name: i for i, o in enumerate(module.outputs)}
    reports = []
    for out in module.outputs:
        region = regions[out.name]
        op = ops[out.value]
        node_id = op.node_id or ""
        shares: dict[str, int] = defaultdict(int)
        if not region.is_source:
            for nid in dict.fromkeys(o.node_id for o in region.ops if o.node_id):
                for other in holders[nid]:
                    if other != out.name:
                        shares[other] += 1
        if region.is_source:
            kind, why, cost, where = "source", "", "", ("input",)
        elif out.name in parts.per_tick:
            kind, cost, where = "per-tick", PER_TICK_COST, ("interpreter",)
            why = parts.per_tick[out.name] + (f"; opaque: {out.reason}" if out.kind == "opaque" and out.reason else "")
        else:
            kind = "opaque" if out.kind == "opaque" else "traced"
            where = tuple(dict.fromkeys(runs[o.result] for o in region.ops if o.result in runs))
            why = out.reason if kind == "opaque" else ""
            cost = (f"{OPAQUE_COST} (one Python call per bar on a {out.period}-bar window)"
                    if kind == "opaque" else "")
        stored = len(store.of_node(node_id)) if store is not None and node_id else None
        registered = len(gateway.artifacts(node_id=node_id)) if gateway is not None and node_id else None
        in_graph = len(graph.get(node_id, ())) if gateway is not None else None
        reports.append(NodeReport(
            name=out.name, kind=kind, op=op.name, node_id=node_id, period=out.period,
            interval=out.interval, ops=len(region.ops), runs_in=where, why=why, cost=cost,
            inputs=tuple(value_names.get(v, v) for v in out.inputs),
            shares=tuple(sorted(shares.items(), key=lambda kv: position[kv[0]])),
            stored=stored, stored_here=None if here is None else out.value in here,
            in_graph=in_graph, registered=registered))
    flow_plan_kernels = len({r for r in runs.values() if r.startswith("k")})
    return Explanation(strategy=compiled.name, source_file=compiled.source_file, ops=len(module.ops),
                       kernels=flow_plan_kernels, nodes=tuple(reports),
                       store=_where(store, "root"), gateway=_where(gateway, "base_url"))


def _where(service: Any, attr: str) -> str | None:
    """The location a store or gateway was asked at, without a URI's query (it may hold keys)."""
    if service is None:
        return None
    return str(getattr(service, attr, "") or "?").split("?", 1)[0]


def stored_on(module: Module, flow: Module | None, store: Any, data: Any) -> set[str]:
    """The node values of ``module`` whose artifact for exactly ``data``'s bars ``store`` holds: the
    fingerprint a run computes (``runtime.reuse``), looked up without reading the artifact.  Only the
    flow's nodes are stored (per-tick nodes never are)."""
    from qmtl.runtime.binding import bind
    from qmtl.runtime.reuse import fingerprint, storable, upstream_reads

    if flow is None:
        return set()
    bindings = bind(flow, data)
    ops = flow.op_map()
    found: set[str] = set()
    cache: dict = {}
    for out in flow.outputs:
        op = ops.get(out.value)
        if op is None or op.name in ("stream_input", "tag_query") or not op.node_id or not storable(op):
            continue
        fp = fingerprint(flow, bindings, upstream_reads(flow, bindings, out.value), cache=cache)
        if store.has(op.node_id, fp):
            found.add(out.value)
    return found


def op_steps(module: Module) -> dict[str, str]:
    """value → ``k<i>`` (the fused kernel computing it) or ``python`` (an opaque call, the columns
    read out of its rows); sources and constants are in no step."""
    p = plan(module)
    where: dict[str, str] = {}
    for step in p.steps:
        if isinstance(step, Kernel):
            where.update({op.result: f"k{step.index}" for op in step.ops})
        else:
            where[step.op.result] = "python"
            where.update({c.result: "python" for c in step.columns})
    return where
