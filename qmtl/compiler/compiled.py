"""The compiler's product: canonical IR with NodeIDs, plus what running it needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

from qmtl.ir.diagnostics import Diagnostic
from qmtl.ir.module import Module


#: how many nodes a notebook's table of a compiled strategy shows
_HTML_NODES = 50


@dataclass
class CompiledStrategy:
    """A compiled strategy.

    ``module`` is canonical and every op carries its NodeID.  ``functions`` binds each ``py_call``'s
    ``code_hash`` to the Python function it stands for; ``sdk_nodes`` maps output names to the SDK
    node objects (each stamped with ``node_id``) so a ``CacheView`` can resolve ``view[node]``.
    """

    name: str
    module: Module
    functions: dict[str, Callable[..., Any]] = field(default_factory=dict)
    sdk_nodes: dict[str, Any] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    required_period: dict[str, int] = field(default_factory=dict)
    source_file: str | None = None
    #: output name → (strategy, node name) it stands for, when one module runs several strategies
    #: (``qmtl.compiler.union``); empty for a single strategy
    output_owners: dict[str, tuple[str, str]] = field(default_factory=dict)

    def __repr__(self) -> str:
        """One line whatever the size (the dataclass repr of a 1,200-node strategy was over 1 MB)."""
        from qmtl.codegen.split import cross_instrument_nodes
        per_tick = cross_instrument_nodes(self.module)  # {} at once without a tag query
        kinds: dict[str, int] = {}
        for o in self.module.outputs:
            kind = "per-tick" if o.name in per_tick else o.kind
            kinds[kind] = kinds.get(kind, 0) + 1
        shown = ", ".join(f"{n} {k}" for k, n in kinds.items())
        warnings = len(self.warnings)
        where = f" from {self.source_file}" if self.source_file else ""
        return (f"<CompiledStrategy {self.name}: {len(self.module.outputs)} nodes ({shown}), "
                f"{len(self.module.ops)} ops{where}" + (f", {warnings} warnings" if warnings else "") + ">")

    def _repr_html_(self) -> str:
        """A table of the first ``_HTML_NODES`` nodes (name, kind, period, NodeID); ``explain()``
        says more."""
        import html
        ops = self.module.op_map()
        rows = [f"<tr><td>{html.escape(o.name)}</td><td>{html.escape(o.kind)}</td><td>{o.period}</td>"
                f"<td>{html.escape((ops[o.value].node_id or '')[:19] if o.value in ops else '')}</td></tr>"
                for o in self.module.outputs[:_HTML_NODES]]
        more = len(self.module.outputs) - _HTML_NODES
        return (f"<div>{html.escape(repr(self))}<table><thead><tr><th>node</th><th>kind</th>"
                "<th>period</th><th>NodeID</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
                + (f"<p>+{more} more nodes: <code>explain()</code> lists them all</p>" if more > 0 else "")
                + "</div>")

    @cached_property
    def ir_text(self) -> str:
        from qmtl.ir.printer import print_module
        return print_module(self.module)

    @cached_property
    def dag(self) -> dict[str, Any]:
        from qmtl.ir.dag import to_dag
        return to_dag(self.module)

    @cached_property
    def node_ids(self) -> dict[str, str]:
        """SDK node name → NodeID of the value that node produces."""
        ops = self.module.op_map()
        return {o.name: ops[o.value].node_id for o in self.module.outputs}

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity != "error"]

    def explain(self, store: Any = None, gateway: Any = None, data: Any = None):
        """Per node: traced / opaque (why) / per tick (why, cost), the kernels it runs in, the NodeIDs
        it shares with other nodes; with an ``ArtifactStore`` / ``GatewayClient``, what they hold, and
        with a store and ``data``, what a run on that data would read from it (``qmtl.explain``).
        ``print(c.explain())`` shows the table."""
        from qmtl.explain import explain
        return explain(self, store=store, gateway=gateway, data=data)

    def run(self, data: Any, batch_size: int | None = None, **options: Any):
        """Replay ``data`` through the generated Numba + Bytewax flow (see ``qmtl.runtime.engine``)."""
        from qmtl.runtime.engine import run
        result = run(self, data, batch_size=batch_size, **options)
        result.origin = (self, data)  # what ``result.performance()`` / ``report()`` price against
        return result

    def run_reference(self, data: Any):
        """Replay ``data`` through the slow, obvious reference interpreter (the oracle)."""
        from qmtl.runtime.reference import run
        result = run(self, data)
        result.origin = (self, data)
        return result
