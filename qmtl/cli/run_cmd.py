"""`qmtl run`: replay one strategy over a data file, directory or object-store prefix on this machine
and write each output as Parquet (the artifact store read and filled unless ``--no-store``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .output import err, out, print_diagnostics
from .progress import progress_for
from .run_inputs import check_data, check_out_dir, strategy_target, write_frames


def run_command(
    strategy_file: str = typer.Argument(..., help="Strategy .py file; FILE::Class picks one class."),
    data: str = typer.Option(..., "--data", help="Bars: a .parquet/.csv/.arrow file, a directory of them "
                             "(hive partitions too), or an object-store URI (s3://bucket/bars/?…)."),
    output_dir: Path = typer.Option(..., "--out", help="Write <dir>/<node>.parquet per output."),
    store: bool = typer.Option(True, "--store/--no-store", help="Read and fill the artifact store."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Bytewax worker threads."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Run STRATEGY_FILE over DATA and write its outputs to --out."""
    from qmtl.compiler.pipeline import compile as compile_strategy
    from qmtl.ir.diagnostics import CompileError
    from qmtl.runtime.artifacts import ArtifactStore
    from qmtl.runtime.results import NodeRuntimeError

    file, cls = strategy_target(strategy_file)
    check_data(data)
    check_out_dir(output_dir)
    try:
        compiled = compile_strategy(file, cls)
        result = compiled.run(data, batch_size=batch_size, workers=workers,
                              store=ArtifactStore() if store else None,
                              progress=progress_for(quiet, compiled.name))
    except CompileError as exc:
        print_diagnostics(exc.diagnostics, str(file))
        raise typer.Exit(1)
    except NodeRuntimeError as exc:
        err.print(f"error: {exc}", style="bold red", markup=False)
        raise typer.Exit(1)
    for (name, frame), path in zip(result.outputs.items(), write_frames(result.outputs, output_dir)):
        out.print(f"{name}: {len(frame)} rows -> {path}", markup=False)
    if result.sharing is not None and result.sharing.reused:
        out.print(f"read from the artifact store: {', '.join(sorted(result.sharing.reused))}", markup=False)
