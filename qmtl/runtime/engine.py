"""Run a compiled strategy through its generated Numba kernels inside a Bytewax dataflow.

``run(compiled, data, batch_size=None, workers=1)``: bind the data (bad data raises
``DataError``), load the generated module from the build cache, feed each run key's bars to the flow
in batches of ``batch_size`` ticks (a partitioned source: one partition per instrument), let the
per-key stateful step run the kernels, and assemble what each key emitted into the same
``RunResult`` shape as the reference interpreter.  Batching never changes results: every kernel
carries its state across batches, and per-tick (Python) regions keep the window tail they need.

Per node, not per module: a single-stream input next to per-symbol ones is broadcast onto every
key's timeline (presence flags, ``key_runtime.key_streams``), sources fanning out over different
keys give each key what it has, and each output keeps the keys the reference runs it for
(``binding.node_keys``).  Only nodes reading a tag query's group — and nodes downstream of them —
leave the flow (``codegen.split``): the interpreter runs just those, after the flow, on the flow's
emitted values of the nodes they read (``reference.evaluate_nodes``).

``workers`` are Bytewax worker threads in this process.  Runs across processes and machines read
their data from a location instead of memory: ``qmtl.runtime.cluster``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from qmtl import codegen
from qmtl.ir.regions import regions_in_dependency_order

from qmtl.codegen.generate import value_buffers
from qmtl.ir.clocks import clocks

from .artifacts import ArtifactStore
from .progress import Progress
from .binding import Bindings, RunKeys, bind, node_keys
from .flow import BatchSource, CollectSink, part_key, part_name, range_logic, run_flow
from .key_runtime import KeyRuntime, key_streams, key_timeline, rows_frame
from .results import RunResult, SharingReport, assemble
from .reuse import ReusePlan, StaleArtifact, artifact_kind, on_timeline, plan_reuse, write_recorded
from .tagged_values import tagged_members
from . import cross


#: Replay batches (also ``qmtl.runtime.cluster``'s): big enough that Bytewax's per-item cost (~tens of µs) vanishes next to the
#: kernels, small enough that one batch's scratch buffers stay in cache (bigger got slower here).
AUTO_BATCH = 1 << 16


def run(compiled: Any, data: Any, batch_size: int | None = None, workers: int = 1,
        store: ArtifactStore | None = None, progress: Progress | None = None, **options: Any) -> RunResult:
    """Replay ``data`` through ``compiled`` (a ``CompiledStrategy``); see the module docstring.

    ``batch_size=None`` picks the replay batch from the data (``AUTO_BATCH`` ticks, or the longest
    instrument if shorter); any ``batch_size >= 1`` gives the same results.

    With ``store`` (an ``ArtifactStore``), node values already stored for this data are read instead
    of computed and the others are stored after the run (``qmtl.runtime.reuse``); the result's
    ``sharing`` says which; nodes reading a tag query's group (run by the interpreter after the flow)
    are neither read from nor written to the store.  A tag query's group also holds every stored node
    value tagged with its tags and computed on these bars (``qmtl.runtime.tagged_values``)."""
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if options:
        raise TypeError(f"unknown run options: {sorted(options)}")
    module = compiled.module
    # with a store, a tag query's group also holds other strategies' tagged node values for this data
    bindings = bind(module, data, tagged_members(store) if store is not None else None)
    parts = codegen.split(module)
    if parts.flow is None:
        # every computed node reads a tag query (directly or downstream): nothing for the kernels
        from .reference import evaluate
        return evaluate(module, compiled.functions, bindings)
    # the flow's nodes read and fill the store; nodes reading a tag query's group run on the
    # interpreter afterwards, from the flow's values (stored or computed)
    reuse = plan_reuse(parts.flow, bindings, store) if store is not None else None
    try:
        items = _run_capped(reuse.module if reuse else parts.flow, compiled.functions, bindings, batch_size,
                            workers, reuse, progress)
    except StaleArtifact:  # stored entries that are not this data's ticks: compute everything
        reuse = plan_reuse(parts.flow, bindings, store, read=False)
        items = _run_capped(parts.flow, compiled.functions, bindings, batch_size, workers, reuse, progress)
    by_value, by_name = node_keys(module, bindings)
    rows = _by_name(items, 1)
    frames = {name: _flow_frame(name, per_key, by_name[name]) for name, per_key in rows.items()}
    if parts.per_tick:
        from .reference import evaluate_nodes
        frames.update(evaluate_nodes(module, compiled.functions, bindings, set(parts.per_tick),
                                     emission_ticks(module, rows, by_value)).outputs)
    order = [r.name for r in regions_in_dependency_order(module)]
    sharing = None
    if reuse is not None and store is not None:
        written = write_recorded(reuse, store, _by_name(items, 2), compiled.name,
                                 getattr(compiled, "output_owners", None))
        names = {o.value: o.name for o in reversed(module.outputs)}
        ids = {v: op.node_id for v, op in module.op_map().items()}
        sources = {r.node_id: f"artifact {r.path}" for r in reuse.reused.values()}
        sources.update({ids[v]: f"computed, stored {p}" for v, p in written.items()})
        sources.update({ids[v]: f"computed (not stored: {why})" for v, why in reuse.skipped.items()
                        if ids[v] not in sources})
        sharing = SharingReport(
            reused={r.node: r.path for r in reuse.reused.values()},
            written={names[v]: p for v, p in written.items()},
            not_stored={names[v]: why for v, why in reuse.skipped.items()},
            sources=sources,
            fingerprints={ids[v]: fp for v, fp in reuse.fingerprints.items()},
            written_artifacts=list(reuse.written))
    return RunResult({name: frames[name] for name in order if name in frames}, sharing)


def _run_capped(module, functions, bindings: Bindings, batch_size: int | None, workers: int,
                reuse: ReusePlan | None = None, progress: Progress | None = None) -> list:
    """``_run_flow``, in two passes around the cross-instrument step when ``module`` holds a
    ``total_cap`` op (``qmtl.runtime.cross``): pass 1 records each cap's operands for every key, the
    jitted step caps them, pass 2 reads the capped values like stored ones."""
    caps = cross.cross_ops(module)
    if not caps:
        return _run_flow(module, functions, bindings, batch_size, workers, reuse, progress)
    clock = clocks(module)
    first = cross.operands_module(module, caps)
    record = cross.operand_record(first, caps, clock)
    # both passes keep every source (``cross``), so every key's timeline is the same in both
    timelines = _timelines(module, bindings)
    operands = _by_name(_run_flow(first, functions, bindings, batch_size, workers, reuse, record=record,
                                  timelines=timelines), 2)
    keys = node_keys(module, bindings)[0]
    series = cross.capped(caps, operands, keys, clock)
    second = cross.capped_module(module, caps, clock)
    capped = cross.on_timelines(series, keys, timelines, clock)
    return _run_flow(second, functions, bindings, batch_size, workers, reuse, progress, capped,
                     timelines=timelines)


def _timelines(module, bindings: Bindings) -> dict:
    """Each run key's timeline: the union of its sources' close instants."""
    intervals = {v: sb.interval for v, sb in bindings.sources.items()}
    return {k: key_timeline(s, {v: intervals[v] for v in s}) for k, s in key_streams(module, bindings).items()}


def _run_flow(module, functions, bindings: Bindings, batch_size: int | None, workers: int,
              reuse: ReusePlan | None = None, progress: Progress | None = None,
              extra_stored: dict | None = None, record: dict | None = None,
              timelines: dict | None = None) -> list:
    """Run ``module`` (every node of it one key can compute) in the generated Bytewax flow;
    returns ``(key, {output: (ts, values)}, {recorded value: (ts, values)})`` per run key.
    ``extra_stored``: run key → value → ``StoredColumns`` filled into ``stored`` ops besides the
    artifacts' (the capped values); ``record``: value → (buffers, clock) to record besides the
    store's; ``timelines``: each run key's timeline when the caller built it already."""
    timelines = _timelines(module, bindings) if timelines is None else timelines
    gen = codegen.load(module)
    stored, recorded, prefixes = _reuse_layout(module, gen, bindings, timelines, reuse)
    for key, values in (extra_stored or {}).items():
        stored.setdefault(key, {}).update(values)
    record = {**recorded, **(record or {})}
    lengths = {k: len(t.close) for k, t in timelines.items()}
    batch = batch_size or max(1, min(AUTO_BATCH, max(lengths.values(), default=1)))
    source = BatchSource({part_name(k): (k, n) for k, n in lengths.items()}, batch)
    if progress is not None:
        progress.start(sum(lengths.values()), len(lengths))

    def runtime_for(item):
        key = part_key(item[0])
        return KeyRuntime(gen, module, functions, timelines[key], key, stored.get(key), record,
                          prefixes.get(key), progress)

    sink = CollectSink()
    try:
        run_flow(gen.build_flow(source, sink, range_logic(runtime_for)), workers)
    finally:
        if progress is not None:
            progress.finish()
    # A Bytewax Dataflow is a web of reference cycles that holds the sink: hand the rows out of it,
    # so dropping the result frees them at once instead of at the next cyclic GC pass (a 20M-row
    # replay after another ran 4x slower while the previous run's rows waited for the collector).
    items = list(sink.items)
    sink.items.clear()
    return items


def _reuse_layout(module, gen, bindings: Bindings, timelines: dict, reuse: ReusePlan | None):
    """Per run key, each stored value on that key's timeline; and the buffers (and clock) of each
    value the run records for the store."""
    if reuse is None:
        return {}, {}, {}
    ops = module.op_map()
    prefixes: dict = {}
    clock = clocks(module)
    keys_of = node_keys(module, bindings)[0]
    stored: dict = {}
    for value, series in reuse.series.items():
        op = ops[value]
        kind = artifact_kind(op)
        dtypes = [d for _, d in value_buffers(op)]
        have = set(series.keys)
        for key, timeline in timelines.items():
            # a value no fanned-out input feeds is the same for every key: any key's entries are its
            fans_out = keys_of.get(value) is not None
            from_key = key if key in have or fans_out else next(iter(have), key)
            stored.setdefault(key, {})[value] = on_timeline(series, from_key, timeline.close,
                                                             int(clock.get(value) or 0), kind, dtypes)
    for value, (series, limits) in reuse.prefix.items():
        op = ops[value]
        for key, timeline in timelines.items():
            until = _prefix_end(bindings, limits, key)
            if until is not None:
                cols = on_timeline(series, key, timeline.close, int(clock.get(value) or 0), "opaque",
                                   ["object"], until)
                prefixes.setdefault(key, {})[value] = (cols, until)
    record = {}
    for value in reuse.to_write:  # (a capped run's first pass holds only what the caps read)
        if value not in ops:
            continue
        bufs = [b for b, _ in value_buffers(ops[value])]
        if all(b in gen.BUFFERS for b in bufs):
            record[value] = (bufs, int(clock.get(value) or 0))
    return stored, record, prefixes


def _prefix_end(bindings: Bindings, limits: dict, key) -> int | None:
    """The close time up to which a prefix artifact's data equals this run's for run key ``key``:
    the earliest, over its sources, of the last bar's close (None: the prefix has none of this key)."""
    ends = []
    for source, per_key in limits.items():
        sb = bindings.sources[source]
        last = per_key.get(key if sb.fan_out else sb.streams[0].key)
        if last is None:
            return None
        ends.append(last + sb.interval)
    return min(ends) if ends else None


def _by_name(items: list, part: int) -> dict[str, dict]:
    """What the keys handed on (``(key, emitted rows, recorded series)``), regrouped as name → run key
    → (ts, values), keys in flow order: ``part`` 1, each output's emitted rows; 2, the series of each
    value recorded for the artifact store."""
    out: dict[str, dict] = {}
    for item in items:
        for name, rows in item[part].items():
            out.setdefault(name, {})[item[0]] = rows
    return out


def _flow_frame(name: str, per_key: dict, keys: RunKeys) -> pd.DataFrame:
    """One output's frame from what each key emitted, over the keys the reference runs it for.

    A node that runs once (no fanned-out input) ran in every key's flow on the same broadcast
    streams, so any key's rows are its rows; a node of a subset of keys never fired elsewhere."""
    if keys is None:
        ts, values = next(iter(per_key.values()))
        return assemble([(None, rows_frame(name, ts, values))], False)
    return assemble([(k, rows_frame(name, *per_key[k])) for k in keys], len(keys) > 1)


def emission_ticks(module, rows: dict[str, dict], by_value: dict[str, RunKeys]) -> dict[str, dict]:
    """The flow nodes' emission ticks (value → key → ts), which gate the interpreted nodes."""
    out: dict[str, dict] = {}
    for o in module.outputs:
        if o.name not in rows or o.value in out:
            continue
        per_key, keys = rows[o.name], by_value.get(o.value)
        if keys is None:
            out[o.value] = {None: next(iter(per_key.values()))[0]}
        else:
            out[o.value] = {k: per_key[k][0] for k in keys if k in per_key}
    return out
