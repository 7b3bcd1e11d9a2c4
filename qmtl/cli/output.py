"""Console helpers shared by the CLI commands: diagnostics on stderr, JSON on stdout."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import typer
from rich.console import Console

from qmtl.ir.diagnostics import Diagnostic

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

_STYLE = {"error": "bold red", "warning": "yellow", "note": "cyan"}


def print_diagnostics(diags: Iterable[Diagnostic], default_path: str = "<input>",
                      show_notes: bool = True) -> None:
    for d in diags:
        if d.severity == "note" and not show_notes:
            continue
        err.print(d.format(default_path), style=_STYLE.get(d.severity), markup=False, highlight=False)


def compile_or_exit(path: Path, strategy: str | None, warnings: bool = True, notes: bool = False) -> Any:
    """Compile a strategy file for a command, printing its diagnostics (errors always, warnings and
    notes as asked); a strategy that does not compile ends the command with exit status 1."""
    from qmtl.compiler.pipeline import compile as compile_strategy
    from qmtl.ir.diagnostics import CompileError
    try:
        compiled = compile_strategy(path, strategy)
    except CompileError as exc:
        print_diagnostics(exc.diagnostics, str(path))
        raise typer.Exit(1)
    print_diagnostics([d for d in compiled.diagnostics if warnings or d.severity == "error"], str(path),
                      show_notes=notes)
    return compiled


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no rich markup), for scripts."""
    print(json.dumps(data, indent=2, sort_keys=False, default=str))


def human_time(value: Any, now: float | None = None) -> str:
    """An instant as people read it: ``2026-12-01 04:12:03 UTC (5 min ago)``, from epoch seconds or
    an ISO 8601 text; anything else is shown as it came."""
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            when = datetime.fromtimestamp(float(value), tz=timezone.utc)
        elif isinstance(value, str):
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
        else:
            return str(value)
    except (ValueError, OverflowError, OSError):
        return str(value)
    ago = (time.time() if now is None else now) - when.timestamp()
    return f"{when.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC ({_ago(ago)})"


def _ago(seconds: float) -> str:
    if seconds < 0:
        return "in the future"
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"
