"""The `qmtl` command.  Each sub-command lives in its own module; this file only wires them."""

from __future__ import annotations

import typer

from .artifacts_cmd import artifacts_app
from .compile_cmd import compile_command
from .config_cmd import config_app
from .demo_cmd import demo_command
from .diff_cmd import diff_command
from .explain_cmd import explain_command
from .lint_cmd import lint_command
from .orders_cmd import orders_command
from .replay_cmd import replay_command
from .run_cmd import run_command
from .serve_cmd import serve_command
from .status_cmd import status_command
from .submit_cmd import submit_command
from .world_cmd import world_app

app = typer.Typer(help="qmtl: compile trading strategies to SSA IR, Numba kernels and Bytewax flows.",
                  no_args_is_help=True, add_completion=True, pretty_exceptions_enable=False)


def _version(value: bool) -> None:
    if value:
        from qmtl import __version__
        typer.echo(f"qmtl {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """qmtl: compile trading strategies to SSA IR, Numba kernels and Bytewax flows."""
app.command("compile")(compile_command)
app.command("lint")(lint_command)
app.command("explain")(explain_command)
app.command("diff")(diff_command)
app.command("serve")(serve_command)
app.command("submit")(submit_command)
app.command("status")(status_command)
app.command("demo")(demo_command)
app.command("replay")(replay_command)
app.command("run")(run_command)
app.command("orders")(orders_command)
app.add_typer(artifacts_app, name="artifacts")
app.add_typer(world_app, name="world")
app.add_typer(config_app, name="config")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
