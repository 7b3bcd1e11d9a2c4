"""`qmtl lint --ssa`: the CI gate over IR dumps, DAG JSON and strategy files."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .formats import Format, FormatOption
from .output import print_diagnostics, print_json


def lint_command(
    paths: List[Path] = typer.Argument(..., help=".qir dumps, DAG .json documents or strategy .py files."),
    ssa: bool = typer.Option(False, "--ssa", help="Check SSA invariants (the only mode; kept explicit for CI scripts)."),
    strategy: Optional[str] = typer.Option(None, "--strategy", "-s", help="Strategy class in a .py file."),
    output_format: Format = FormatOption,
    werror: bool = typer.Option(False, "--werror", help="Treat warnings as findings (exit 1)."),
) -> None:
    """Check IR invariants. Exit 0 clean, 1 findings, 2 unusable input."""
    from qmtl.lint import lint_path

    reports = [lint_path(p, strategy) for p in paths]
    if output_format is Format.json:
        print_json([{"path": r.path, "kind": r.kind, "exit_code": r.exit_code(werror),
                     "diagnostics": [d.to_json(r.path) for d in r.diagnostics]} for r in reports])
    else:
        for r in reports:
            print_diagnostics(r.diagnostics, r.path)
            if r.exit_code(werror) == 0:
                typer.echo(f"{r.path}: ok")
    raise typer.Exit(max(r.exit_code(werror) for r in reports))
