"""`qmtl explain`: what the compiler decided for each node of a strategy (``qmtl.explain``)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, Optional

import typer

from qmtl.ir.diagnostics import CompileError

from .formats import Format, FormatOption
from .output import out, print_diagnostics, print_json
from .world_cmd import gateway_client


def explain_command(
    path: Path = typer.Argument(..., help="Strategy file (.py)."),
    strategy: Optional[str] = typer.Option(None, "--strategy", "-s", help="Strategy class, when the file defines several."),
    store: Optional[str] = typer.Option(None, "--store", help="Also say which node values this artifact store holds (a directory or s3:// URI)."),
    gateway: Optional[str] = typer.Option(None, "--gateway", help="Also say which nodes the gateway at this URL has artifacts of."),
    output_format: Format = FormatOption,
) -> None:
    """Per node: traced / opaque (why) / per tick (why, cost), its kernels and shared NodeIDs."""
    from qmtl.compiler.pipeline import compile as compile_strategy
    from qmtl.explain import explain

    try:
        compiled = compile_strategy(path, strategy)
    except CompileError as exc:
        print_diagnostics(exc.diagnostics, str(path))
        raise typer.Exit(1)
    print_diagnostics([d for d in compiled.diagnostics if d.severity == "error"], str(path))
    artifact_store = store_at(store)
    with gateway_at(gateway) as client:
        ex = explain(compiled, store=artifact_store, gateway=client)
    if output_format is Format.json:
        print_json(ex.to_dict())
    else:
        out.print(str(ex), end="", markup=False, highlight=False)


def store_at(root: str | None):
    """The artifact store at ``root`` (None: not asked); a missing directory is a named error."""
    if root is None:
        return None
    from qmtl.runtime.artifacts import ArtifactStore
    from .world_cmd import fail
    if "://" not in root and not Path(root).is_dir():
        fail(f"--store {root}: no such directory")
    try:
        return ArtifactStore(root)
    except (OSError, ValueError) as exc:  # pyarrow's filesystem errors are of these kinds
        fail(f"--store {root}: cannot open the artifact store: {exc}")


@contextlib.contextmanager
def gateway_at(url: str | None) -> Iterator[object | None]:
    """A gateway client for ``url`` (None: not asked); failures end the command, named."""
    if url is None:
        yield None
        return
    with gateway_client(url) as client:
        yield client
