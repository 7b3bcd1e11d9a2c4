"""`qmtl config validate`: the same findings the services stop on at start-up, before you start."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .formats import Format, FormatOption
from .output import err, out, print_json

config_app = typer.Typer(help="Check qmtl.yml.", no_args_is_help=True)

TARGETS = ("all", "gateway", "worldservice")


@config_app.command("validate")
def validate_command(
    target: str = typer.Option("all", "--target", help="all | gateway | worldservice"),
    config: Optional[Path] = typer.Option(None, "--config", help="qmtl.yml (default: $QMTL_CONFIG "
                                          "or ./qmtl.yml)."),
    output: Format = FormatOption,
) -> None:
    """Exit 0 when the config can start ``target``, 1 with every problem listed otherwise."""
    from qmtl.config import ConfigError, config_path, load_config, validate

    if target not in TARGETS:
        err.print(f"error: --target: expected one of {', '.join(TARGETS)}, got {target!r}",
                  style="bold red", markup=False)
        raise typer.Exit(1)
    source = str(config_path(config) or "<defaults>")
    try:
        cfg = load_config(config)
        problems = validate(cfg, target)  # type: ignore[arg-type]
        profile = cfg.profile
    except ConfigError as exc:
        problems, profile = [str(exc)], None
    if output == "json":
        print_json({"config": source, "target": target, "profile": profile, "ok": not problems,
                    "errors": problems})
    elif problems:
        for p in problems:
            err.print(f"error: {p}", style="bold red", markup=False, highlight=False)
    else:
        out.print(f"{source}: ok ({profile} profile, target {target})", markup=False, highlight=False)
    raise typer.Exit(1 if problems else 0)
