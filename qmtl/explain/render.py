"""The text, JSON-ready and HTML forms of an ``Explanation`` (``qmtl explain``, notebooks).

The text form is one table with a line per node — short enough that a 20-node strategy fits on one
screen — followed by one line per node that does not run in a kernel, saying why and what it costs.
"""

from __future__ import annotations

import html
import io

from rich.console import Console
from rich.table import Table

from .nodes import Explanation, NodeReport

#: how many NodeID hex digits the table shows (enough to tell a strategy's nodes apart)
_ID_CHARS = 19


def summary(ex: Explanation) -> str:
    return f"{_count(len(ex.nodes), 'node')}, {_count(ex.ops, 'op')}, {_count(ex.kernels, 'kernel')}"


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def runs_in_text(node: NodeReport) -> str:
    """``k0,k1`` / ``python`` / ``interpreter`` / ``input``: where a node's ops run."""
    return ",".join(node.runs_in) or "-"


def shares_text(node: NodeReport, shown: int = 3) -> str:
    """``slope(2)``: another node and how many NodeIDs both compute; past ``shown`` nodes, a count
    (the JSON form lists them all)."""
    parts = [f"{other}({n})" for other, n in node.shares]
    if len(parts) > shown:
        parts = parts[:shown] + [f"+{len(node.shares) - shown} more"]
    return ", ".join(parts) or "-"


def explanation_table(ex: Explanation) -> Table:
    title = (f"{ex.strategy}: {summary(ex)}"
             + (f" — {ex.source_file}" if ex.source_file else ""))
    table = Table(title=title, title_justify="left")
    columns = ["node", "kind", "period", "ops", "runs in", "NodeID", "shares NodeIDs with"]
    if ex.store is not None:
        columns.append("stored")
    if ex.gateway is not None:
        columns.append("gateway")
    for c in columns:
        table.add_column(c, overflow="fold")
    for n in ex.nodes:
        row = [n.name, n.kind, str(n.period), str(n.ops), runs_in_text(n), n.node_id[:_ID_CHARS],
               shares_text(n)]
        if ex.store is not None:
            row.append(stored_text(n))
        if ex.gateway is not None:
            row.append(gateway_text(n))
        table.add_row(*row)
    return table


def reasons(ex: Explanation) -> list[str]:
    """One line per node outside the kernels: why, and the expected cost."""
    return [f"{n.kind:8} {n.name}: {n.why or 'no reason recorded'}" + (f" — {n.cost}" if n.cost else "")
            for n in ex.nodes if n.kind in ("opaque", "per-tick")]


def explanation_text(ex: Explanation, width: int = 120) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=width, no_color=True, highlight=False, soft_wrap=False)
    console.print(explanation_table(ex))
    for line in reasons(ex):
        console.print(line, markup=False, soft_wrap=True)
    if ex.store is not None:
        console.print(f"stored: datasets the artifact store {ex.store} holds the node's value for "
                      "(this data: computed on the bars given with --data, read instead of computed)",
                      markup=False, soft_wrap=True)
    if ex.gateway is not None:
        console.print(f"gateway: how many strategies in the global graph at {ex.gateway} use the NodeID "
                      "(new: none), and the artifacts of it registered there", markup=False, soft_wrap=True)
    return buf.getvalue()


def explanation_html(ex: Explanation) -> str:
    """A plain HTML table (no scripts, no styles beyond the notebook's own)."""
    esc = html.escape
    head = ["node", "kind", "period", "ops", "runs in", "NodeID", "shares NodeIDs with", "why"]
    if ex.store is not None:
        head.append("stored")
    if ex.gateway is not None:
        head.append("gateway")
    rows = []
    for n in ex.nodes:
        cells = [n.name, n.kind, str(n.period), str(n.ops), runs_in_text(n), n.node_id[:_ID_CHARS],
                 shares_text(n), " — ".join(x for x in (n.why, n.cost) if x)]
        if ex.store is not None:
            cells.append(stored_text(n))
        if ex.gateway is not None:
            cells.append(gateway_text(n))
        rows.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
    return (f"<div><b>{esc(ex.strategy)}</b>: {esc(summary(ex))}"
            "<table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></div>")


def stored_text(node: NodeReport) -> str:
    """``2 datasets`` (how many the store holds the value for), ``, this data`` when one is the
    data given."""
    return _held(node.stored, "dataset") + (", this data" if node.stored_here else "")


def gateway_text(node: NodeReport) -> str:
    """``used by 2, 1 artifact`` / ``new``: how many strategies in the gateway's global graph use the
    node's NodeID, and how many artifacts of it its index has registered."""
    if node.in_graph is None:
        return "?"
    if node.in_graph == 0 and not node.registered:
        return "new"
    return f"used by {node.in_graph}" + (f", {_count(node.registered, 'artifact')}" if node.registered else "")


def _held(count: int | None, what: str) -> str:
    if count is None:
        return "?"
    return "no" if count == 0 else _count(count, what)
