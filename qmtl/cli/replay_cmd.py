"""`qmtl replay`: run several strategy files over the same bars in one flow (each NodeID once),
reading and filling the artifact store; print what each strategy computed, shared and reused."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from .formats import Format, FormatOnlyOption, JsonFlag
from .output import err, out, print_diagnostics, print_json
from .progress import progress_for
from .run_inputs import check_data, check_out_dir, strategy_target, write_frames


def replay_command(
    strategy_files: List[str] = typer.Argument(..., help="Strategy .py files; FILE::Class picks one "
                                               "class of a file that defines several."),
    data: str = typer.Option(..., "--data", help="Bars to replay: a .parquet/.csv/.arrow file, a "
                             "directory of them (hive partitions too), or an object-store URI."),
    store: bool = typer.Option(True, "--store/--no-store", help="Read and write the artifact store "
                               "($QMTL_HOME/artifacts)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1),
    output_dir: Optional[Path] = typer.Option(None, "--out", help="Write each strategy's outputs as "
                                              "<dir>/<strategy>/<node>.parquet."),
    output_format: Format = FormatOnlyOption,
    as_json: bool = JsonFlag,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Replay STRATEGY_FILES over DATA as one run."""
    as_json = as_json or output_format is Format.json
    from qmtl.ir.diagnostics import CompileError
    from qmtl.runner.replay import replay
    from qmtl.runtime.artifacts import ArtifactStore
    from qmtl.runtime.results import NodeRuntimeError

    targets = [strategy_target(arg) for arg in strategy_files]
    check_data(data)
    check_out_dir(output_dir)
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
        print_diagnostics(exc.diagnostics, data)
        raise typer.Exit(1)
    except NodeRuntimeError as exc:
        err.print(f"error: {exc}", style="bold red", markup=False)
        raise typer.Exit(1)
    if output_dir is not None:
        for name, s in res.strategies.items():
            write_frames(s.result.outputs, output_dir / name)
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
