"""`qmtl compile`: compile a strategy file, write build artefacts, print a summary or an emitted form."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table


from .output import compile_or_exit, err, out


class Emit(str, Enum):
    ir = "ir"
    json = "json"
    dot = "dot"
    py = "py"
    svg = "svg"
    html = "html"


class Group(str, Enum):
    node = "node"
    kernel = "kernel"


def compile_command(
    path: Path = typer.Argument(..., help="Strategy file (.py)."),
    strategy: Optional[str] = typer.Option(None, "--strategy", "-s", help="Strategy class, when the file defines several."),
    emit: Optional[Emit] = typer.Option(None, "--emit", help="Print one form to stdout instead of the summary: ir | json | dot | py | svg | html (a self-contained page)."),
    no_loc: bool = typer.Option(False, "--no-loc", help="--emit ir without source locations (for diffs)."),
    group: Group = typer.Option(Group.node, "--group", help="svg/html: cluster ops by SDK node or by kernel."),
    store: Optional[str] = typer.Option(None, "--store", help="svg/html: mark node values this artifact store holds."),
    gateway: Optional[str] = typer.Option(None, "--gateway", help="svg/html: mark nodes the gateway has artifacts of."),
    output_dir: Optional[Path] = typer.Option(None, "-o", "--output-dir", help="Where to write build artefacts (default .qmtl/build/<Strategy>)."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Show notes: why nodes are opaque, what was removed."),
) -> None:
    """Compile STRATEGY.py to canonical SSA IR and NodeIDs."""
    compiled = compile_or_exit(path, strategy, notes=verbose)
    if emit in (Emit.svg, Emit.html):
        typer.echo(picture(compiled, emit, group, store, gateway), nl=False)
        return
    if emit is not None:
        typer.echo(render(compiled, emit, no_loc=no_loc), nl=False)
        return
    target = output_dir or _default_dir(compiled.name)
    try:
        written = write_artefacts(compiled, target)
    except OSError as exc:
        # a bad -o is the user's mistake: say where and why, not a traceback
        err.print(f"error: cannot write build artefacts to {target}: {exc.strerror or exc}",
                  markup=False, highlight=False)
        raise typer.Exit(2)
    out.print(summary_table(compiled))
    for line in opaque_reasons(compiled):
        out.print(f"opaque  {line}", highlight=False, markup=False)
    out.print(f"wrote {', '.join(str(p) for p in written)}", highlight=False)


def render(compiled, emit: Emit, no_loc: bool = False) -> str:
    if emit is Emit.ir:
        if no_loc:
            from qmtl.ir.module import without_locs
            from qmtl.ir.printer import print_module
            return print_module(without_locs(compiled.module))
        return compiled.ir_text
    if emit is Emit.json:
        return json.dumps(compiled.dag, indent=2) + "\n"
    if emit is Emit.dot:
        from qmtl.ir.dot import to_dot
        return to_dot(compiled.module)
    from qmtl.codegen import generate
    return generate(compiled.module)


def picture(compiled, emit: Emit, group: Group, store: str | None, gateway: str | None) -> str:
    """The DAG as SVG or a self-contained HTML page; a missing ``dot`` program is a named error."""
    from qmtl.explain import explain
    from qmtl.explain.graph import GraphvizMissing, to_svg
    from qmtl.explain.page import to_html

    from .explain_cmd import gateway_at, store_at
    with gateway_at(gateway) as client:
        ex = explain(compiled, store=store_at(store), gateway=client)
    try:
        if emit is Emit.svg:
            return to_svg(compiled, ex, group.value)
        return to_html(compiled, ex, group.value)
    except GraphvizMissing as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2)


def write_artefacts(compiled, target: Path) -> list[Path]:
    from qmtl.codegen import generate
    target.mkdir(parents=True, exist_ok=True)
    files = {"module.qir": compiled.ir_text, "dag.json": json.dumps(compiled.dag, indent=2) + "\n",
             "module.py": generate(compiled.module)}
    written = []
    for name, text in files.items():
        (target / name).write_text(text, encoding="utf-8")
        written.append(target / name)
    return written


def summary_table(compiled) -> Table:
    from qmtl.codegen.split import cross_instrument_nodes
    ops = compiled.module.op_map()
    per_tick = cross_instrument_nodes(compiled.module)  # they leave the kernels: say so (W204)
    table = Table(title=f"{compiled.name}: {len(compiled.module.ops)} ops, {len(compiled.module.outputs)} nodes")
    for col in ("node", "op", "NodeID", "period", "needs", "kind"):
        table.add_column(col)
    for o in compiled.module.outputs:
        op = ops[o.value]
        table.add_row(o.name, op.name, (op.node_id or "")[:19], str(o.period),
                      str(compiled.required_period.get(o.value, "")),
                      o.kind + (", per tick" if o.name in per_tick else ""))
    return table


def opaque_reasons(compiled) -> list[str]:
    """One line per opaque node saying why it could not be traced (printed under the table)."""
    return [f"{o.name}: {o.reason}" for o in compiled.module.outputs if o.kind == "opaque" and o.reason]


def _default_dir(name: str) -> Path:
    from qmtl.paths import build_dir
    return build_dir() / name
