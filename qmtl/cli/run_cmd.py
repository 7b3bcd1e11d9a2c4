"""`qmtl run`: replay one strategy over a data file, directory or object-store prefix and write each
output as Parquet.  On one machine (the default) the artifact store is read and filled unless
``--no-store``; with Bytewax's cluster options (``--addresses``/``--process-id``, or
``--recovery-dir``; the same ``BYTEWAX_*`` environment variables) this process runs its share of a
cluster run (``qmtl.runner.cluster``) and writes per-instrument batches under ``--out``.  With
``--live`` it runs on a live feed instead, warmed up on ``--data`` (``live_run``)."""

from __future__ import annotations

import re
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
    output_dir: Optional[Path] = typer.Option(None, "--out", help="Write <dir>/<node>.parquet per output "
                                              "(required unless --live)."),
    start: Optional[str] = typer.Option(None, "--start", help="Only bars at or after this time "
                                        "(epoch seconds or e.g. 2024-01-31; naive times are UTC)."),
    end: Optional[str] = typer.Option(None, "--end", help="Only bars before this time."),
    store: bool = typer.Option(True, "--store/--no-store", help="Read and fill the artifact store."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1),
    workers: int = typer.Option(1, "--workers", "-w", "--workers-per-process", min=1,
                                envvar="BYTEWAX_WORKERS_PER_PROCESS", help="Bytewax worker threads."),
    addresses: Optional[str] = typer.Option(
        None, "--addresses", "-a", envvar="BYTEWAX_ADDRESSES",
        help="Cluster run: every process's host:port, ';'-separated, the same list on every process."),
    process_id: Optional[int] = typer.Option(None, "--process-id", "-i", min=0, envvar="BYTEWAX_PROCESS_ID",
                                             help="Cluster run: this process's index in --addresses."),
    recovery_dir: Optional[Path] = typer.Option(
        None, "--recovery-dir", "-r", envvar="BYTEWAX_RECOVERY_DIRECTORY",
        help="Snapshot state here and resume from it after a crash (a cluster run, even on one process)."),
    snapshot_interval: float = typer.Option(2.0, "--snapshot-interval", "-s", min=0.01,
                                            envvar="BYTEWAX_SNAPSHOT_INTERVAL",
                                            help="Seconds between recovery snapshots."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    live: bool = typer.Option(False, "--live", help="Run on a live feed (--feed), warmed up on --data, sending "
                              "orders while --world activates the strategy."),
    world: Optional[str] = typer.Option(None, "--world", help="Live: the world whose decision gates orders."),
    feed: Optional[str] = typer.Option(None, "--feed", help="Live: nats://HOST:PORT/SUBJECT the bars arrive on."),
    gateway_url: Optional[str] = typer.Option(None, "--gateway-url", envvar="QMTL_GATEWAY_URL",
                                              help="Live: the gateway whose event stream carries the world's "
                                                   "decisions (default http://127.0.0.1:8000)."),
    broker: str = typer.Option("sim", "--broker", help="Live: sim (a simulated broker fills this world's "
                               "paper and live orders in this process) or none."),
    metrics_port: Optional[int] = typer.Option(None, "--metrics-port", min=1, max=65535,
                                               help="Live: serve Prometheus metrics on 127.0.0.1:PORT."),
    max_bar_age: Optional[float] = typer.Option(None, "--max-bar-age", metavar="SECONDS",
                                                help="Live: send no order for a bar that closed longer ago "
                                                     "than this (it still runs through the kernels; counted "
                                                     "as gated, stale_bar). Default: 3 feed intervals; inf: "
                                                     "any age."),
) -> None:
    """Run STRATEGY_FILE over DATA and write its outputs to --out (or, with --live, on a live feed)."""
    from qmtl.compiler.pipeline import compile as compile_strategy
    from qmtl.ir.diagnostics import CompileError
    from qmtl.runtime.artifacts import ArtifactStore
    from qmtl.runtime.results import NodeRuntimeError
    from qmtl.runtime.row_sink import RunDirError, RunFailed

    file, cls = strategy_target(strategy_file)
    check_data(data)
    if live:
        from .live_run import run_live
        run_live(file, cls, data, world, feed, gateway_url, broker, metrics_port, max_bar_age)
        return
    if output_dir is None:
        err.print("error: --out is required (where the outputs are written)", style="bold red", markup=False)
        raise typer.Exit(2)
    check_out_dir(output_dir)
    cluster = _cluster_options(addresses, process_id)
    source = _time_range(data, start, end)
    if cluster is None and recovery_dir is None and (output_dir / "_run.json").exists():
        err.print(f"error: --out {output_dir} holds a cluster run's outputs; use another directory",
                  style="bold red", markup=False)
        raise typer.Exit(1)
    try:
        compiled = compile_strategy(file, cls)
        if cluster is not None or recovery_dir is not None:
            _run_cluster(compiled, source, output_dir, cluster, workers, recovery_dir, snapshot_interval, batch_size)
            return
        result = compiled.run(source, batch_size=batch_size, workers=workers,
                              store=ArtifactStore() if store else None,
                              progress=progress_for(quiet, compiled.name))
    except CompileError as exc:
        print_diagnostics(exc.diagnostics, str(file))
        raise typer.Exit(1)
    except (NodeRuntimeError, RunDirError, RunFailed, TimeoutError) as exc:
        err.print(f"error: {exc}", style="bold red", markup=False)
        raise typer.Exit(1)
    for (name, frame), path in zip(result.outputs.items(), write_frames(result.outputs, output_dir)):
        out.print(f"{name}: {len(frame)} rows -> {path}", markup=False)
    if result.sharing is not None and result.sharing.reused:
        out.print(f"read from the artifact store: {', '.join(sorted(result.sharing.reused))}", markup=False)


#: host:port — a name or IPv4 address, or [IPv6] — as Bytewax's --addresses takes them (';' between)
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}")


def _cluster_options(addresses: str | None, process_id: int | None) -> tuple[list[str], int] | None:
    """``--addresses`` and ``--process-id`` as Bytewax takes them (both or neither)."""
    if addresses is None and process_id is None:
        return None
    if addresses is None or process_id is None:
        err.print("error: a cluster run needs both --addresses and --process-id", style="bold red", markup=False)
        raise typer.Exit(2)
    hosts = [a.strip() for a in addresses.split(";") if a.strip()]
    bad = [a for a in hosts if not _HOST_PORT.fullmatch(a)]
    if bad or not hosts:
        err.print(f"error: --addresses: expected host:port;host:port…, got {addresses!r}", style="bold red",
                  markup=False)
        raise typer.Exit(2)
    if process_id >= len(hosts):
        err.print(f"error: --process-id {process_id} is not an index of the {len(hosts)} --addresses",
                  style="bold red", markup=False)
        raise typer.Exit(2)
    return hosts, process_id


def _run_cluster(compiled, data, out_dir: Path, cluster: tuple[list[str], int] | None, workers: int,
                 recovery_dir: Path | None, snapshot_interval: float, batch_size: int | None) -> None:
    from qmtl.ir.diagnostics import CompileError
    from qmtl.runner.cluster import run
    from qmtl.runtime.results import NodeRuntimeError
    from qmtl.runtime.row_sink import RunDirError, RunFailed
    hosts, pid = cluster if cluster is not None else (None, None)
    try:
        job = run(compiled, data, out_dir, addresses=hosts, process_id=pid, workers=workers,
                  recovery_dir=recovery_dir, snapshot_interval=snapshot_interval, batch_size=batch_size)
    except (CompileError, NodeRuntimeError, RunDirError, RunFailed, TimeoutError):
        raise
    except BaseException as exc:  # noqa: BLE001 - Bytewax's own failures (a peer lost, networking)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        last = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        err.print(f"error: the cluster run stopped ({type(exc).__name__}: {last}); a process may have died or "
                  "be unreachable — run every process again with the same --recovery-dir to resume",
                  style="bold red", markup=False)
        raise typer.Exit(1)
    who = f"process {pid} of {len(hosts)}" if hosts else "one process"
    out.print(f"{compiled.name}: {len(job.manifest.outputs)} outputs of a cluster run ({who}) under "
              f"{out_dir}/ (read them with qmtl.runtime.row_sink.read_outputs)", markup=False)


def _time_range(data: str, start: str | None, end: str | None):
    """``--data`` alone, or with ``--start``/``--end`` a ``Bars`` read only over that range."""
    from qmtl.runtime.data import Bars
    if start is None and end is None:
        return data
    try:
        return Bars.between(data, int(start) if start and start.lstrip("-").isdigit() else start,
                            int(end) if end and end.lstrip("-").isdigit() else end)
    except ValueError as exc:
        err.print(f"error: --start/--end: {exc}", style="bold red", markup=False)
        raise typer.Exit(2)
