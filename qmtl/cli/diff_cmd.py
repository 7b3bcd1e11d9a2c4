"""`qmtl diff OLD NEW`: what changed between two versions of a strategy, keyed by NodeID
(``qmtl.ir.diff``).  Each side is a strategy file (compiled), an IR dump (``.qir``) or a DAG document
(``.json``); NodeIDs are recomputed from the content, so a stale or hand-edited id does not hide a
change.  Exit 0 when nothing differs, 1 when something does (like ``diff``), 2 for unusable input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from qmtl.ir.diagnostics import CompileError
from qmtl.ir.diff import ModuleDiff, diff_modules
from qmtl.ir.module import Module

from .formats import Format, FormatOption
from .output import err, out, print_diagnostics, print_json

_KINDS = {".py": "strategy", ".qir": "IR dump", ".json": "DAG document"}


def diff_command(
    old: Path = typer.Argument(..., help="The old version: strategy .py, IR dump .qir or DAG .json."),
    new: Path = typer.Argument(..., help="The new version (any of the same kinds)."),
    strategy: Optional[str] = typer.Option(None, "--strategy", "-s", help="Strategy class in .py files that define several."),
    output_format: Format = FormatOption,
) -> None:
    """Nodes and ops added, removed, changed (which parameter) and invalidated downstream."""
    result = diff_modules(load_module(old, strategy), load_module(new, strategy))
    if output_format is Format.json:
        print_json(result.to_dict())
    else:
        out.print(diff_text(result), end="", markup=False, highlight=False)
    raise typer.Exit(0 if result.empty else 1)


def load_module(path: Path, strategy: str | None) -> Module:
    """``path`` as a module with NodeIDs; unusable input ends the command with exit 2, named."""
    from qmtl.ir.nodeid import with_node_ids

    kind = _KINDS.get(path.suffix)
    if kind is None:
        _unusable(f"{path}: unknown kind of file (expected a strategy .py, an IR dump .qir or a DAG .json)")
    if not path.is_file():
        _unusable(f"{path}: no such file")
    try:
        if kind == "strategy":
            from qmtl.compiler.pipeline import compile as compile_strategy
            return compile_strategy(path, strategy).module
        text = path.read_text(encoding="utf-8")
        if kind == "IR dump":
            from qmtl.ir.parser import parse_module
            module = parse_module(text, str(path))
        else:
            module = _from_dag_text(path, text)
    except CompileError as exc:
        print_diagnostics(exc.diagnostics, str(path))
        _unusable(f"{path}: not a usable {kind}")
    except (OSError, UnicodeDecodeError) as exc:
        _unusable(f"{path}: cannot read: {exc}")
    try:
        return with_node_ids(module)
    except Exception as exc:  # an op the registry lacks or malformed attributes: say which file
        _unusable(f"{path}: not a valid {kind}: {exc} (`qmtl lint --ssa {path}` says more)")


def _from_dag_text(path: Path, text: str) -> Module:
    from qmtl.ir.dag import from_dag
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        _unusable(f"{path}: not JSON: {exc}")
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
        _unusable(f"{path}: not a DAG document (no \"nodes\" list)")
    try:
        return from_dag(doc)
    except (KeyError, TypeError, ValueError) as exc:
        _unusable(f"{path}: not a DAG document: missing or malformed field {exc}")


def _unusable(message: str) -> None:
    err.print(f"error: {message}", markup=False, highlight=False)
    raise typer.Exit(2)


def diff_text(d: ModuleDiff) -> str:
    """The report: a summary line, then per node its status, NodeIDs and what changed."""
    counts = [f"{d.count(s)} {s}" for s in ("changed", "invalidated", "added", "removed", "renamed", "emission")
              if d.count(s)]
    title = d.old if d.old == d.new else f"{d.old} → {d.new}"
    if d.empty:
        return f"{title}: no differences ({d.unchanged_ops} ops, {len(d.unchanged_nodes)} nodes unchanged)\n"
    lines = [f"{title}: " + (", ".join(counts) or "no node changed")
             + f"; ops: {_op_counts(d)}, {d.unchanged_ops} unchanged"]
    for n in d.nodes:
        ids = f"{_short(n.old_id)} → {_short(n.new_id)}" if n.old_id and n.new_id and n.old_id != n.new_id \
            else _short(n.new_id or n.old_id)
        lines.append(f"{n.status:12} {n.name}  {ids}")
        lines += [f"    {x}" for x in n.details]
    removed = [o for o in d.ops if o.status == "removed"]
    if removed:
        lines.append("removed ops: " + ", ".join(f"%{o.value} {o.op}" for o in removed))
    return "\n".join(lines) + "\n"


def _op_counts(d: ModuleDiff) -> str:
    found = {}
    for o in d.ops:
        found[o.status] = found.get(o.status, 0) + 1
    return ", ".join(f"{v} {k}" for k, v in found.items()) or "none differ"


def _short(node_id: str | None) -> str:
    return (node_id or "-")[:19]
