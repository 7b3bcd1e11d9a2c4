"""`qmtl run`: replay one strategy over a data file, directory or object-store prefix on this machine
and write each output as Parquet (the artifact store read and filled unless ``--no-store``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .output import err, out, print_diagnostics
from .progress import progress_for


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

    file, _, cls = strategy_file.partition("::")
    if not Path(file).is_file():
        err.print(f"error[E301]: {file}: no such file", style="bold red", markup=False)
        raise typer.Exit(1)
    if "://" not in data and not Path(data).exists():
        err.print(f"error[E505]: {data}: no such data file or directory", style="bold red", markup=False)
        raise typer.Exit(1)
    if output_dir.exists() and not output_dir.is_dir():
        err.print(f"error: --out {output_dir}: exists and is not a directory", style="bold red", markup=False)
        raise typer.Exit(1)
    try:
        compiled = compile_strategy(Path(file), cls or None)
        result = compiled.run(data, batch_size=batch_size, workers=workers,
                              store=ArtifactStore() if store else None,
                              progress=progress_for(quiet, compiled.name))
    except CompileError as exc:
        print_diagnostics(exc.diagnostics, file)
        raise typer.Exit(1)
    except NodeRuntimeError as exc:
        err.print(f"error: {exc}", style="bold red", markup=False)
        raise typer.Exit(1)
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in result.outputs.items():
        frame.to_parquet(output_dir / f"{name}.parquet")
        out.print(f"{name}: {len(frame)} rows -> {output_dir / (name + '.parquet')}", markup=False)
    if result.sharing is not None and result.sharing.reused:
        out.print(f"read from the artifact store: {', '.join(sorted(result.sharing.reused))}", markup=False)
