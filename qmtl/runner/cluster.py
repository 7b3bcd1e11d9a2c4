"""One strategy across several processes or machines: what ``qmtl run --addresses/--process-id/
--recovery-dir`` runs, and a flow factory for Bytewax's own runner::

    python -m bytewax.run "qmtl.runner.cluster:flow('strategy.py', 'bars/', 'results/')" \\
        -a "10.0.0.1:2101;10.0.0.2:2101" -i 0 -w 4 [-r recovery/ -s 5]

Every process compiles the strategy itself (its NodeIDs, hence its generated module, are the same
everywhere) and runs its share of the instruments (``qmtl.runtime.cluster``); outputs land under the
output directory all processes reach (``qmtl.runtime.row_sink``; ``read_outputs`` reads them back).
"""

from __future__ import annotations

import atexit
import os
import sys
import time
from pathlib import Path
from typing import Any

from qmtl.runtime.cluster import ClusterRun, cluster_flow, run_process
from qmtl.runtime.atomic_files import write_atomically
from qmtl.runtime.row_sink import MANIFEST, RunDirError, RunManifest, check_finished, differences, run_status


def compile_target(strategy: str) -> Any:
    """``file.py`` or ``file.py::Class``, compiled."""
    from qmtl.compiler.pipeline import compile as compile_strategy
    file, _, cls = str(strategy).partition("::")
    return compile_strategy(Path(file), cls or None)


def flow(strategy: str, data: str, out: str, batch_size: int | None = None) -> Any:
    """The dataflow ``python -m bytewax.run`` starts (see the module docstring).  Bytewax's runner
    exits 0 when the dataflow stops, so a node's or the data's error (noted, not raised into the
    dataflow) is printed and turned into exit status 1 when the process ends."""
    atexit.register(_exit_failed)
    return cluster_flow(compile_target(strategy), data, out, batch_size).flow


def _exit_failed() -> None:
    from qmtl.runtime.flow import first_failure
    error = first_failure()
    if error is not None:
        print(f"error: {error}", file=sys.stderr, flush=True)
        os._exit(1)


def run(compiled: Any, data: str, out: str | Path, *, addresses: list[str] | None = None,
        process_id: int | None = None, workers: int = 1, recovery_dir: Path | None = None,
        snapshot_interval: float = 2.0, batch_size: int | None = None) -> ClusterRun:
    """Run this process's part of a cluster run of ``compiled`` (see the module docstring); with
    ``recovery_dir``, resume from its snapshots (the first process creates it on a first run)."""
    job = cluster_flow(compiled, data, out, batch_size)
    if recovery_dir is not None:
        prepare_recovery(Path(recovery_dir), len(addresses or [None]), primary=process_id in (None, 0),
                         manifest=job.manifest)
    run_process(job.flow, addresses=addresses, process_id=process_id, workers=workers,
                recovery_dir=recovery_dir, snapshot_interval=snapshot_interval)
    wait_finished(Path(out))
    return job


def wait_finished(out: Path, wait_s: float = 30.0) -> None:
    """Once this process's dataflow stopped: wait for every worker of the cluster to report, and raise
    ``RunFailed`` if one failed — so every process, not only the failing one, says the run failed."""
    deadline = time.monotonic() + wait_s
    while run_status(out) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    check_finished(out)


def prepare_recovery(directory: Path, partitions: int, primary: bool, manifest: RunManifest,
                     wait_s: float = 60.0) -> None:
    """Bytewax keeps snapshots in SQLite partition files it must find created: the first process
    creates ``partitions`` of them in an empty directory (with the run's manifest beside them); the
    others wait for them to appear.  Snapshots of another run (strategy, data, batch size) are refused:
    resuming from them would compute the wrong thing, or nothing."""
    from bytewax.recovery import init_db_dir
    mine = directory / MANIFEST
    if mine.is_file():
        old = RunManifest.model_validate_json(mine.read_text())
        if old != manifest:
            raise RunDirError(f"--recovery-dir {directory} holds the snapshots of another run "
                              f"({differences(old, manifest)}); use an empty directory")
    if any(directory.glob("part-*.sqlite3")):
        if not mine.is_file():
            raise RunDirError(f"--recovery-dir {directory} holds snapshots qmtl did not make; use an empty directory")
        return
    if primary:
        directory.mkdir(parents=True, exist_ok=True)
        if any(p.name != MANIFEST for p in directory.iterdir()):
            raise RunDirError(f"--recovery-dir {directory} is not empty; use an empty directory")
        write_atomically(mine, manifest.model_dump_json(indent=2).encode())
        init_db_dir(directory, partitions)
        return
    deadline = time.monotonic() + wait_s
    while not any(directory.glob("part-*.sqlite3")):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{directory}: process 0 did not create the recovery partitions in {wait_s:.0f} s")
        time.sleep(0.2)
