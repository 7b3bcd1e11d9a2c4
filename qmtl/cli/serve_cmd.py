"""`qmtl serve`: the gateway with the world service behind it, in one process on one URL."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .output import err


def serve_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    profile: Optional[str] = typer.Option(None, "--profile", help="dev | prod (overrides the config)."),
    config: Optional[Path] = typer.Option(None, "--config", help="qmtl.yml (default: $QMTL_CONFIG "
                                          "or ./qmtl.yml)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, max=64,
                                          help="Server processes on the one port (default: gateway.workers, "
                                               "else one per core with PostgreSQL + Redis, else 1)."),
) -> None:
    """Run the services. dev: SQLite under .qmtl/, nothing else to start. prod: PostgreSQL + Redis
    (checked at start-up)."""
    from qmtl.config import ConfigError, describe, load_config
    from qmtl.services.app import StartupError, serve

    if profile not in (None, "dev", "prod"):
        _fail(f"--profile: expected dev or prod, got {profile!r}")
    try:
        cfg = load_config(config)
        if profile is not None:
            cfg = cfg.model_copy(update={"profile": profile})
        for line in describe(cfg):
            err.print(f"qmtl serve: {line}", markup=False, highlight=False)
        serve(cfg, host, port, workers)
    except (ConfigError, StartupError) as exc:
        _fail(str(exc))


def _fail(message: str) -> None:
    err.print(f"error: {message}", style="bold red", markup=False, highlight=False)
    raise typer.Exit(1)
