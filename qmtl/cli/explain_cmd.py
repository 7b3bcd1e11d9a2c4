"""`qmtl explain`: what the compiler decided for each node of a strategy (``qmtl.explain``)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, Optional

import typer

from qmtl.ir.diagnostics import CompileError

from .formats import Format, FormatOption
from .output import compile_or_exit, out, print_diagnostics, print_json
from .run_inputs import check_data
from .world_cmd import fail, gateway_client


def explain_command(
    path: Path = typer.Argument(..., help="Strategy file (.py)."),
    strategy: Optional[str] = typer.Option(None, "--strategy", "-s", help="Strategy class, when the file defines several."),
    store: Optional[str] = typer.Option(None, "--store", help="Also say which node values this artifact store holds (a directory or s3:// URI)."),
    gateway: Optional[str] = typer.Option(None, "--gateway", help="Also say which nodes the gateway at this URL has in its graph and artifact index."),
    data: Optional[str] = typer.Option(None, "--data", help="With --store: say which node values a run on these bars would read from the store."),
    output_format: Format = FormatOption,
) -> None:
    """Per node: traced / opaque (why) / per tick (why, cost), its kernels and shared NodeIDs."""
    from qmtl.explain import explain

    compiled = compile_or_exit(path, strategy, warnings=False)
    artifact_store = store_at(store)
    if data is not None:
        if artifact_store is None:
            fail("--data says which values the store holds for those bars: give --store too")
        check_data(data)
    with gateway_at(gateway) as client:
        try:
            ex = explain(compiled, store=artifact_store, gateway=client, data=data)
        except CompileError as exc:  # the data does not fit the strategy (E50x): name it, as run does
            print_diagnostics(exc.diagnostics, str(data))
            raise typer.Exit(1)
    if output_format is Format.json:
        print_json(ex.to_dict())
    else:
        out.print(str(ex), end="", markup=False, highlight=False)


def store_at(root: str | None):
    """The artifact store at ``root`` (None: not asked); a missing directory is a named error."""
    if root is None:
        return None
    from qmtl.runtime.artifacts import ArtifactStore
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
