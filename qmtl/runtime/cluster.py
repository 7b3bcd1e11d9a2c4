"""A strategy run as a Bytewax cluster over data at a location every process reaches, with recovery.

Each process compiles the strategy itself (NodeIDs make the generated module the same everywhere),
plans the instrument partitions from a survey of the data (``partitions``), and runs the generated
flow under Bytewax's own runner (``bytewax.run.cli_main``: ``addresses``, ``process_id``, worker
threads, recovery).  Bytewax builds each source partition on the one worker that owns it; that
partition reads only its instrument's slice of the data, lazily at its first batch, and each batch
travels through the dataflow with its bars (``Window``), so the kernels' stateful step may run on any
worker of any process and no process holds the whole dataset.  Rows go to a ``row_sink.ChunkSink``
per batch, so memory does not grow with the rows emitted either.  Nodes reading a tag query's group
(``GroupStep``) and a portfolio-total cap (``cluster_cap``) get every instrument's values by a keyed
exchange to one step of the same dataflow.

Recovery: with a recovery directory, Bytewax snapshots, at the end of each epoch, every source
partition's position and every key's state (``KeyRuntime.snapshot``: kernel state, opaque windows,
latest rows) consistently; a restarted run resumes from the last snapshot, recomputes the batches
after it, and the sink rewrites their files with the same rows.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.operators import StatefulLogic

from qmtl import codegen
from qmtl.ir.diagnostics import CompileError, Diagnostic

from qmtl.ir.regions import regions_in_dependency_order

from qmtl.ir.clocks import clocks

from . import cross
from .cluster_cap import CapExchange, OperandsLogic
from .engine import AUTO_BATCH, emission_ticks
from .flow import failed, note_failure, part_key, part_name, raise_failure
from .key_runtime import KeyRuntime, KeyTimeline, LazyRuntime
from .partitions import PartitionPlan, empty_timeline, load_partition, plan_partitions
from .slice_reader import ChunkPosition, OutOfOrder, timeline_chunks
from .data import version
from .row_sink import ChunkSink, OutputLayout, RunManifest, WholeFrames, prepare


@dataclass(frozen=True)
class Window:
    """One batch of one instrument, with its bars: ticks ``start`` … ``start + len`` of its timeline."""

    key: Any
    start: int
    timeline: KeyTimeline
    last: bool


def _stretch(timeline: KeyTimeline, lo: int, hi: int) -> KeyTimeline:
    return KeyTimeline(timeline.close[lo:hi],
                       {v: type(s)({c: a[lo:hi] for c, a in s.columns.items()}, s.symbol, s.tags)
                        for v, s in timeline.streams.items()},
                       {v: p[lo:hi] for v, p in timeline.present.items()}, timeline.intervals)


class _LazyPartition(StatefulSourcePartition):
    """One instrument: reads its bars a stretch of about ``batch`` ticks at a time
    (``slice_reader``), one stretch ahead (to know which is the last), and hands each out as a
    ``Window``.  Its snapshot is where the next stretch starts (``ChunkPosition``)."""

    def __init__(self, plan: PartitionPlan, key: Any, batch: int, resume: ChunkPosition | None) -> None:
        self.plan, self.key, self.batch = plan, key, batch
        self.at = resume or ChunkPosition()
        self.chunks: Iterator[tuple[KeyTimeline, int | None]] | None = None
        self.ahead: tuple[KeyTimeline, int | None] | None = None
        self.done = False

    def next_batch(self) -> list:
        if failed() or self.done:
            raise StopIteration()
        try:
            if self.chunks is None:
                self.chunks = self._chunks(self.at)
                self.ahead = self._next()
            current, self.ahead = self.ahead, self._next()
        except Exception as exc:  # noqa: BLE001 - raised by the runner once the flow stopped
            note_failure(exc)
            raise StopIteration() from None
        self.done = self.ahead is None
        if current is None:  # an instrument with no bars still sends one (empty) window
            if self.at.pos:
                raise StopIteration()
            current = (empty_timeline(self.plan, self.key), None)
        timeline, limit = current
        window = Window(self.key, self.at.pos, timeline, self.done)
        self.at = ChunkPosition(self.at.pos + len(timeline.close), limit, self.at.whole or limit is None)
        return [(part_name(self.key), window)]

    def snapshot(self) -> ChunkPosition:
        return self.at

    def _next(self) -> tuple[KeyTimeline, int | None] | None:
        try:
            return next(self.chunks, None)
        except OutOfOrder:  # its files are not in time order: read the key whole, from where it is
            handed = self.at.pos + (len(self.ahead[0].close) if self.ahead is not None else 0)
            self.chunks = self._chunks(ChunkPosition(handed, None, True))
            return next(self.chunks, None)

    def _chunks(self, at: ChunkPosition) -> Iterator[tuple[KeyTimeline, int | None]]:
        if not at.whole:
            yield from timeline_chunks(self.plan, self.key, self.batch, at)
            return
        timeline = load_partition(self.plan, self.key)
        for lo in range(at.pos, len(timeline.close), self.batch):
            yield _stretch(timeline, lo, min(lo + self.batch, len(timeline.close))), None


class PartitionSource(FixedPartitionedSource):
    """One partition per instrument of the plan (Bytewax builds each on the worker that owns it)."""

    def __init__(self, plan: PartitionPlan, batch: int) -> None:
        self.plan, self.batch = plan, batch

    def list_parts(self) -> list[str]:
        return [part_name(k) for k in self.plan.keys]

    def build_part(self, step_id: str, for_part: str, resume_state: ChunkPosition | None) -> _LazyPartition:
        return _LazyPartition(self.plan, part_key(for_part), self.batch, resume_state)


class _WindowLogic(StatefulLogic):
    """One instrument's state in a cluster run: its ``KeyRuntime``, built at its first batch (from a
    snapshot when the run resumes)."""

    def __init__(self, make: Callable[[Window], KeyRuntime], resume: dict | None) -> None:
        self.runtime = LazyRuntime(make, resume)

    def on_item(self, window: Window) -> tuple[list, bool]:
        rows = self.runtime.of(window).run_window(window.timeline)
        return [(window.key, window.start, rows, window.last)], window.last

    def snapshot(self) -> dict | None:
        return self.runtime.snapshot()


@dataclass(frozen=True)
class ClusterRun:
    """A cluster run's flow and what it writes."""

    flow: Any
    manifest: RunManifest
    out: Path


def cluster_flow(compiled: Any, data: Any, out: str | Path, batch_size: int | None = None) -> ClusterRun:
    """The Bytewax dataflow running ``compiled`` over the data at ``data`` (a file, directory or
    object-store prefix every process reaches, or a ``data.Bars`` naming one with a time range) into
    ``out`` (``row_sink``'s layout).  Bad data or
    a strategy the data cannot serve raise ``DataError`` here, before anything runs."""
    module = compiled.module
    parts = codegen.split(module)
    if parts.flow is None:
        raise CompileError(Diagnostic(
            "E507", "every node of this strategy reads a tag query's group (all instruments at once), so "
            "nothing runs per instrument: run it on one machine (qmtl run without --addresses/"
            "--process-id/--recovery-dir)"))
    caps = cross.cross_ops(parts.flow)
    plan = plan_partitions(parts.flow, data)
    batch = batch_size or AUTO_BATCH
    clock = clocks(parts.flow)
    # with a portfolio-total cap: pass 1 (the cap's operands) in the kernels step, the cap step and
    # pass 2 after it (``cluster_cap``); ``gen`` is then pass 2's, whose outputs are the run's
    first = cross.operands_module(parts.flow, caps) if caps else None
    second = cross.capped_module(parts.flow, caps, clock) if caps else parts.flow
    gen = codegen.load(second)
    by_name = plan.output_keys
    layouts = {o.name: OutputLayout(name=o.name, keys=None if by_name[o.name] is None else list(by_name[o.name]),
                                    writer=None if by_name[o.name] is not None else plan.keys[0],
                                    opaque=bool(gen.OUTPUTS[o.name][0])
                                    and gen.BUFFERS[gen.OUTPUTS[o.name][0][0]] == "object")
               for o in parts.flow.outputs if o.name in gen.OUTPUTS}
    layouts.update({name: OutputLayout(name=name, keys=None, whole=True) for name in parts.per_tick})
    order = [r.name for r in regions_in_dependency_order(module)]
    first_gen = codegen.load(first) if caps else None
    digest = gen.DIGEST if first_gen is None else f"{gen.DIGEST}+{first_gen.DIGEST}"
    manifest = RunManifest(strategy=compiled.name, module_digest=digest, data=str(data), batch_size=batch,
                           outputs=[layouts[n] for n in order if n in layouts], data_version=version(plan.location))
    out = Path(out)
    prepare(out, manifest)

    def make(window: Window) -> KeyRuntime:
        return KeyRuntime(gen, second, compiled.functions, window.timeline, window.key)

    steps = []
    logic: Callable[[Any], StatefulLogic] = lambda resume: _WindowLogic(make, resume)
    kernels = gen
    if caps:
        record = cross.operand_record(first, caps, clock)

        def make_first(window: Window) -> KeyRuntime:
            return KeyRuntime(first_gen, first, compiled.functions, window.timeline, window.key, record=record)

        steps.append(CapExchange(caps, plan.keys, plan.value_keys, clock, make).attach)
        logic, kernels = (lambda resume: OperandsLogic(make_first, resume)), first_gen
    if parts.per_tick:
        steps.append(GroupStep(module, compiled.functions, data, set(parts.per_tick), plan.keys).attach)
    flow = kernels.build_flow(PartitionSource(plan, batch), ChunkSink(out, manifest), logic,
                              _chain(steps) if steps else None)
    return ClusterRun(flow, manifest, out)


def _chain(steps: list[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    """The steps after the kernels, one after another (each takes and returns a stream)."""
    def then(stream: Any) -> Any:
        for step in steps:
            stream = step(stream)
        return stream
    return then


#: the routing key of the step that evaluates the nodes reading a tag query's group
GROUP = "\x00group"


class GroupStep:
    """Nodes that read a tag query's group (every instrument at once) inside the dataflow: each
    instrument's batches send the emission ticks of the outputs to one key (``GROUP``; Bytewax's
    keyed exchange brings them to the worker that owns it, in whatever process), and when every
    instrument has sent its last batch, that worker reads the group's data and evaluates those nodes
    on the reference interpreter — as an in-memory run does after its flow (``engine.run``)."""

    def __init__(self, module: Any, functions: Any, data: Any, names: set[str], keys: tuple) -> None:
        self.module, self.functions, self.data, self.names = module, functions, data, names
        self.keys = frozenset(keys)

    def attach(self, results: Any) -> Any:
        import bytewax.operators as op
        to_group = op.map("to_group", results, lambda item: (GROUP, item[1]))
        evaluated = op.stateful("group", to_group, lambda resume: _GroupLogic(self, resume))
        return op.merge("rows_and_group", results, evaluated)

    def evaluate(self, ticks: dict[str, dict[Any, list]]) -> dict[str, Any]:
        from .binding import bind, node_keys
        from .reference import evaluate_nodes
        bindings = bind(self.module, self.data)
        rows = {name: {k: (np.concatenate([ts for _, ts in sorted(chunks, key=lambda c: c[0])]), None)
                       for k, chunks in per_key.items()} for name, per_key in ticks.items()}
        emitted = emission_ticks(self.module, rows, node_keys(self.module, bindings)[0])
        return evaluate_nodes(self.module, self.functions, bindings, self.names, emitted).outputs


class _GroupLogic(StatefulLogic):
    """Collects every instrument's emission ticks; evaluates once all have finished (``GroupStep``)."""

    def __init__(self, step: GroupStep, resume: dict | None) -> None:
        self.step = step
        self.ticks: dict[str, dict[Any, list]] = resume["ticks"] if resume else {}
        self.done: set = set(resume["done"]) if resume else set()

    def on_item(self, item: tuple) -> tuple[list, bool]:
        key, start, rows, last = item
        for name, (ts, _values) in rows.items():
            self.ticks.setdefault(name, {}).setdefault(key, []).append((start, ts))
        if last:
            self.done.add(key)
        if self.done < self.step.keys:
            return [], False
        try:
            frames = self.step.evaluate(self.ticks)
        except Exception as exc:  # noqa: BLE001 - raised by the runner once the flow stopped
            note_failure(exc)
            return [], True
        return [(GROUP, 0, WholeFrames(frames), True)], True

    def snapshot(self) -> dict:
        return copy.deepcopy({"ticks": self.ticks, "done": sorted(self.done, key=str)})



def run_process(flow: Any, *, addresses: list[str] | None = None, process_id: int | None = None,
                workers: int = 1, recovery_dir: Path | None = None,
                snapshot_interval: float = 2.0) -> None:
    """Run this process's part of the cluster with Bytewax's own runner (what ``python -m bytewax.run``
    calls); a node's or the data's error is raised here once the dataflow stopped."""
    from bytewax.recovery import RecoveryConfig
    from bytewax.run import cli_main
    recovery = None
    if recovery_dir is not None:
        recovery = RecoveryConfig(str(recovery_dir))
    raise_failure(lambda: cli_main(flow, workers_per_process=workers, process_id=process_id,
                                   addresses=addresses, epoch_interval=timedelta(seconds=snapshot_interval),
                                   recovery_config=recovery))
