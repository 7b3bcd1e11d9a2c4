"""Where a cluster run's outputs go: Parquet files on storage every process reaches, one per output,
instrument and batch, and reading them back as the frames an in-memory run returns.

Layout under the output directory::

    _run.json                                   the manifest (``RunManifest``)
    <output>/symbol=<instrument>/part-<start>.parquet   rows one batch of one instrument emitted
    <output>/part-<start>.parquet               an output that runs once (no instrument fans it out)

``<start>`` is the batch's first tick on the instrument's timeline, so a batch computed again (Bytewax
is at-least-once: after a crash, batches since the last snapshot run again) rewrites the same file
with the same rows — idempotent per (output, instrument, ts) — and a file only appears whole (temp
name, then rename).  The tree is a hive-partitioned dataset that ``pyarrow.dataset`` and
``pandas.read_parquet`` read as it is; ``read_outputs`` gives back exactly ``compiled.run``'s frames.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from pydantic import BaseModel, ConfigDict

from .artifacts import row_json
from .atomic_files import write_atomically
from .key_runtime import rows_frame
from .results import assemble

MANIFEST = "_run.json"


class OutputLayout(BaseModel):
    """One output: its name, the instruments it runs for (None: it runs once, and ``writer``'s
    partition — every instrument computes the same rows — is the one that writes them), and whether
    its rows are an opaque function's (a ``row`` column of JSON) rather than numeric columns."""

    model_config = ConfigDict(frozen=True)
    name: str
    keys: list[str | None] | None
    writer: str | None = None
    opaque: bool = False
    whole: bool = False  # one file with the whole frame (nodes reading a tag query's group)


@dataclass(frozen=True)
class WholeFrames:
    """Finished output frames (from a step that evaluates whole outputs), each written as one file."""

    frames: dict[str, pd.DataFrame]


class RunManifest(BaseModel):
    """What a cluster run writes where; every process writes the same one, so it is written at once."""

    model_config = ConfigDict(frozen=True)
    strategy: str
    module_digest: str
    data: str
    batch_size: int
    outputs: list[OutputLayout]
    data_version: str = ""  # the data's files as listed when the run was planned (``data.version``)


class RunDirError(ValueError):
    """The output directory holds another run's outputs."""


def prepare(out: Path, manifest: RunManifest) -> None:
    """Create ``out`` and write ``manifest``; refuse a directory holding another run's outputs (its
    files would mix with this run's).  The same run again (a restart) may write over its own files."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / MANIFEST
    if path.exists():
        try:
            old = RunManifest.model_validate_json(path.read_text())
        except ValueError:
            raise RunDirError(f"{out}: {MANIFEST} is not a qmtl run manifest; use an empty directory") from None
        if old != manifest:
            raise RunDirError(f"{out} holds the outputs of another run ({differences(old, manifest)}); "
                              "use an empty directory")
        return
    if any(p.name != MANIFEST for p in out.iterdir()):
        raise RunDirError(f"{out} is not empty and holds no qmtl run manifest; use an empty directory")
    write_atomically(path, manifest.model_dump_json(indent=2).encode())


def differences(old: RunManifest, new: RunManifest) -> str:
    """What differs between two runs, for a refusal the user can act on."""
    said = {"strategy": "strategy", "module_digest": "compiled strategy (its code changed)", "data": "data",
            "batch_size": "batch size", "outputs": "outputs",
            "data_version": "data files (added, removed or rewritten since)"}
    changed = [f"{said[f]}: {getattr(old, f)!r} then" if f in ("strategy", "data", "batch_size") else said[f]
               for f in said if getattr(old, f) != getattr(new, f)]
    return "differs in " + "; ".join(changed)


def chunk_path(out: Path, output: str, key: str | None, start: int) -> Path:
    folder = out / output if key is None else out / output / f"symbol={quote(key, safe='')}"
    return folder / f"part-{start:012d}.parquet"


class WorkerReport(BaseModel):
    """What one Bytewax worker of a run says when the dataflow has finished on it: ``_workers/<i>.json``.
    A run's outputs are whole only when every worker reported, and without an error."""

    worker: int
    of: int
    error: str | None = None


class RunFailed(RuntimeError):
    """A run's outputs are not whole: a worker failed, or never finished (killed, not yet resumed)."""


class _ChunkPartition(StatelessSinkPartition):
    def __init__(self, out: Path, layouts: dict[str, OutputLayout], worker: int, workers: int) -> None:
        self.out, self.layouts = out, layouts
        self.report = WorkerReport(worker=worker, of=workers)
        _report_path(out, worker).unlink(missing_ok=True)  # an earlier attempt's verdict no longer holds

    def close(self) -> None:
        """The dataflow finished on this worker: say whether its part of the run is whole."""
        from .flow import first_failure
        error = first_failure()
        report = self.report.model_copy(update={"error": None if error is None else str(error)})
        path = _report_path(self.out, report.worker)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, report.model_dump_json().encode())

    def write_batch(self, items: list) -> None:
        for _part, (key, start, rows, _last) in items:
            if isinstance(rows, WholeFrames):
                for name, frame in rows.frames.items():
                    path = self.out / name / "whole.parquet"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    write_atomically(path, frame.to_parquet())
                continue
            for name, (ts, values) in rows.items():
                layout = self.layouts[name]
                if layout.keys is None and key != layout.writer:
                    continue  # the same rows as the writer's: written once
                if len(ts) == 0 and start > 0:
                    continue  # an empty first batch is written, so every instrument has a file
                path = chunk_path(self.out, name, None if layout.keys is None else key, start)
                path.parent.mkdir(parents=True, exist_ok=True)
                write_atomically(path, _chunk_bytes(name, ts, values))


class ChunkSink(DynamicSink):
    """Each batch's emitted rows, per output and instrument, as Parquet (see the module docstring)."""

    def __init__(self, out: Path, manifest: RunManifest) -> None:
        self.out = Path(out)
        self.layouts = {o.name: o for o in manifest.outputs}

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _ChunkPartition:
        return _ChunkPartition(self.out, self.layouts, worker_index, worker_count)


def _report_path(out: Path, worker: int) -> Path:
    return out / "_workers" / f"{worker}.json"


def run_status(out: Path) -> list[WorkerReport] | None:
    """Every worker's report once all have reported (None while some have not)."""
    reports = []
    for path in sorted((Path(out) / "_workers").glob("*.json")):
        try:
            reports.append(WorkerReport.model_validate_json(path.read_text()))
        except (OSError, ValueError):
            return None
    if not reports or len({r.worker for r in reports}) < reports[0].of:
        return None
    return reports


def check_finished(out: Path) -> None:
    """Raise ``RunFailed`` unless every worker of the run in ``out`` finished without an error."""
    reports = run_status(out)
    if reports is None:
        raise RunFailed(f"{out}: the run did not finish (a process was stopped or is still running); "
                        "run every process again with the same --recovery-dir to resume it")
    failed = [r for r in reports if r.error]
    if failed:
        raise RunFailed(f"{out}: the run failed on worker {failed[0].worker} of {failed[0].of}: {failed[0].error}")


def _chunk_bytes(name: str, ts: np.ndarray, values: dict) -> bytes:
    """One batch's rows as Parquet: numeric columns as the output frame has them (indexed by ``ts``),
    or an opaque function's rows as JSON text (exact, or ``NotStorable``)."""
    if None in values:
        table = pa.table({"ts": pa.array(ts, pa.int64()),
                          "row": pa.array([row_json(r) for r in values[None]], pa.string())})
    else:
        table = pa.Table.from_pandas(rows_frame(name, ts, values))
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def read_outputs(out: Path) -> dict[str, pd.DataFrame]:
    """A finished cluster run's outputs, as ``compiled.run(...).outputs`` gives them; ``RunFailed``
    when the run failed or has not finished (its files would be a part of the outputs)."""
    out = Path(out)
    if not (out / MANIFEST).is_file():
        raise RunFailed(f"{out}: not the output directory of a cluster run (no {MANIFEST}); a run on one "
                        "machine writes <output>.parquet files that pandas.read_parquet reads")
    check_finished(out)
    manifest = RunManifest.model_validate_json((out / MANIFEST).read_text())
    frames: dict[str, pd.DataFrame] = {}
    for o in manifest.outputs:
        if o.whole:
            frames[o.name] = pd.read_parquet(out / o.name / "whole.parquet")
        elif o.keys is None:
            frames[o.name] = assemble([(None, _key_frame(o, out / o.name))], False)
        else:
            frames[o.name] = assemble([(k, _key_frame(o, chunk_path(out, o.name, k, 0).parent)) for k in o.keys],
                                      len(o.keys) > 1)
    return frames


def _key_frame(output: OutputLayout, folder: Path) -> pd.DataFrame:
    """One instrument's rows of ``output``: its batches in order, as one frame."""
    parts = sorted(folder.glob("part-*.parquet"))
    if not parts:
        raise FileNotFoundError(f"{folder}: no rows written (the run did not finish)")
    if output.opaque:
        table = pa.concat_tables(pq.read_table(p) for p in parts)
        rows = [json.loads(r) for r in table.column("row").to_pylist()]
        return rows_frame(output.name, table.column("ts").to_numpy(), {None: rows})
    frames = [pd.read_parquet(p) for p in parts]
    return frames[0] if len(frames) == 1 else pd.concat(frames)

