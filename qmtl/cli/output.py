"""Console helpers shared by the CLI commands: diagnostics on stderr, JSON on stdout."""

from __future__ import annotations

import json
from typing import Any, Iterable

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


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no rich markup), for scripts."""
    print(json.dumps(data, indent=2, sort_keys=False, default=str))
