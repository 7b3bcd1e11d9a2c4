"""`qmtl replay`: run several strategy files over the same bars in one flow (each NodeID once),
reading and filling the artifact store; print what each strategy computed, shared and reused."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from .output import err, out, print_diagnostics, print_json
from .progress import progress_for


def replay_command(
    strategy_files: List[str] = typer.Argument(..., help="Strategy .py files; FILE::Class picks one "
                                               "class of a file that defines several."),
    data: Path = typer.Option(..., "--data", help="Bars to replay (.parquet, .csv, .arrow, .feather, "
                              "or a directory of them)."),
    store: bool = typer.Option(True, "--store/--no-store", help="Read and write the artifact store "
                               "($QMTL_HOME/artifacts)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1),
    output_dir: Optional[Path] = typer.Option(None, "--out", help="Write each strategy's outputs as "
                                              "<dir>/<strategy>/<node>.parquet."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Replay STRATEGY_FILES over DATA as one run."""
    from qmtl.ir.diagnostics import CompileError
    from qmtl.runner.replay import replay
    from qmtl.runtime.artifacts import ArtifactStore
    from qmtl.runtime.results import NodeRuntimeError

    targets = []
    for arg in strategy_files:
        file, _, cls = arg.partition("::")
        if not Path(file).is_file():
            err.print(f"error[E301]: {file}: no such file", style="bold red", markup=False)
            raise typer.Exit(1)
        targets.append((Path(file), cls or None))
    if not data.exists():
        err.print(f"error[E505]: {data}: no such data file", style="bold red", markup=False)
        raise typer.Exit(1)
    if output_dir is not None and output_dir.exists() and not output_dir.is_dir():
        err.print(f"error: --out {output_dir}: exists and is not a directory", style="bold red", markup=False)
        raise typer.Exit(1)
    from qmtl.compiler.pipeline import compile as compile_strategy

    try:
        compiled = [compile_strategy(file, cls) for file, cls in targets]
    except CompileError as exc:
        print_diagnostics(exc.diagnostics, "<strategy>")
        if any(d.code == "E303" for d in exc.diagnostics):
            err.print("hint: qmtl replay takes FILE::Class to pick one class of a file", markup=False)
        raise typer.Exit(1)
    try:
        res = replay(compiled, data, store=ArtifactStore() if store else None, batch_size=batch_size,
                     progress=progress_for(quiet))
    except CompileError as exc:
        print_diagnostics(exc.diagnostics, str(data))
        raise typer.Exit(1)
    except NodeRuntimeError as exc:
        err.print(f"error: {exc}", style="bold red", markup=False)
        raise typer.Exit(1)
    if output_dir is not None:
        for name, s in res.strategies.items():
            folder = output_dir / name
            folder.mkdir(parents=True, exist_ok=True)
            for node, frame in s.result.outputs.items():
                frame.to_parquet(folder / f"{node}.parquet")
    report = [{"strategy": name, "nodes": len(s.node_ids), "computed": len(s.computed),
               "shared": len(s.shared), "from_store": sorted(s.from_store),
               "rows": {node: len(f) for node, f in s.result.outputs.items()}}
              for name, s in res.strategies.items()]
    if as_json:
        print_json({"strategies": report, "unique_nodes": res.unique_nodes, "total_nodes": res.total_nodes})
        return
    table = Table(title=f"replay: {res.unique_nodes} NodeIDs computed once for {res.total_nodes} "
                        f"strategy nodes")
    for col in ("strategy", "nodes", "computed here", "shared (earlier strategy)", "read from store", "rows out"):
        table.add_column(col)
    for r in report:
        table.add_row(r["strategy"], str(r["nodes"]), str(r["computed"]), str(r["shared"]),
                      ", ".join(r["from_store"]) or "-", str(sum(r["rows"].values())))
    out.print(table)
