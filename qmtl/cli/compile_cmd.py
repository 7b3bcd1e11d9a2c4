"""`qmtl compile`: compile a strategy file, write build artefacts, print a summary or an emitted form."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from qmtl.ir.diagnostics import CompileError

from .output import err, out, print_diagnostics


class Emit(str, Enum):
    ir = "ir"
    json = "json"
    dot = "dot"
    py = "py"


def compile_command(
    path: Path = typer.Argument(..., help="Strategy file (.py)."),
    strategy: Optional[str] = typer.Option(None, "--strategy", "-s", help="Strategy class, when the file defines several."),
    emit: Optional[Emit] = typer.Option(None, "--emit", help="Print one form to stdout instead of the summary: ir | json | dot | py."),
    output_dir: Optional[Path] = typer.Option(None, "-o", "--output-dir", help="Where to write build artefacts (default .qmtl/build/<Strategy>)."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Show notes: why nodes are opaque, what was removed."),
) -> None:
    """Compile STRATEGY.py to canonical SSA IR and NodeIDs."""
    from qmtl.compiler.pipeline import compile as compile_strategy

    try:
        compiled = compile_strategy(path, strategy)
    except CompileError as exc:
        print_diagnostics(exc.diagnostics, str(path))
        raise typer.Exit(1)
    print_diagnostics(compiled.diagnostics, str(path), show_notes=verbose)
    if emit is not None:
        typer.echo(render(compiled, emit), nl=False)
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


def render(compiled, emit: Emit) -> str:
    if emit is Emit.ir:
        return compiled.ir_text
    if emit is Emit.json:
        return json.dumps(compiled.dag, indent=2) + "\n"
    if emit is Emit.dot:
        from qmtl.ir.dot import to_dot
        return to_dot(compiled.module)
    from qmtl.codegen import generate
    return generate(compiled.module)


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
    ops = compiled.module.op_map()
    table = Table(title=f"{compiled.name}: {len(compiled.module.ops)} ops, {len(compiled.module.outputs)} nodes")
    for col in ("node", "op", "NodeID", "period", "needs", "kind"):
        table.add_column(col)
    for o in compiled.module.outputs:
        op = ops[o.value]
        table.add_row(o.name, op.name, (op.node_id or "")[:19], str(o.period),
                      str(compiled.required_period.get(o.value, "")), o.kind)
    return table


def opaque_reasons(compiled) -> list[str]:
    """One line per opaque node saying why it could not be traced (printed under the table)."""
    return [f"{o.name}: {o.reason}" for o in compiled.module.outputs if o.kind == "opaque" and o.reason]


def _default_dir(name: str) -> Path:
    from qmtl.paths import build_dir
    return build_dir() / name
