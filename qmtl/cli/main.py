"""The `qmtl` command.  Each sub-command lives in its own module; this file only wires them."""

from __future__ import annotations

import typer

from .compile_cmd import compile_command
from .lint_cmd import lint_command

app = typer.Typer(help="qmtl: compile trading strategies to SSA IR, Numba kernels and Bytewax flows.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
app.command("compile")(compile_command)
app.command("lint")(lint_command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
