"""Run a compiled strategy through its generated Numba kernels inside a Bytewax dataflow.

``run(compiled, data, batch_size=None, workers=1, processes=1)``: bind the data (bad data raises
``DataError``), load the generated module from the build cache, feed each run key's bars to the flow
in batches of ``batch_size`` ticks (a partitioned source: one partition per instrument), let the
per-key stateful step run the kernels, and assemble what each key emitted into the same
``RunResult`` shape as the reference interpreter.  Batching never changes results: every kernel
carries its state across batches, and per-tick (Python) regions keep the window tail they need.

``workers`` are Bytewax worker threads in one process; ``processes`` runs a Bytewax cluster of that
many forked processes on 127.0.0.1 (each with ``workers`` threads), instruments partitioned among them.
"""

from __future__ import annotations

from typing import Any


from qmtl import codegen
from qmtl.ir.regions import node_regions

from .binding import Bindings, bind
from .flow import BatchSource, CollectSink, run_cluster, run_flow
from .key_runtime import KeyRuntime, key_streams, key_timeline, rows_frame
from .results import RunResult, assemble


#: Replay batches: big enough that Bytewax's per-item cost (~tens of µs) vanishes next to the
#: kernels, small enough that one batch's scratch buffers stay in cache (bigger got slower here).
AUTO_BATCH = 1 << 16


def run(compiled: Any, data: Any, batch_size: int | None = None, workers: int = 1, processes: int = 1,
        **options: Any) -> RunResult:
    """Replay ``data`` through ``compiled`` (a ``CompiledStrategy``); see the module docstring.

    ``batch_size=None`` picks the replay batch from the data (``AUTO_BATCH`` ticks, or the longest
    instrument if shorter); any ``batch_size >= 1`` gives the same results."""
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    for name, value in (("workers", workers), ("processes", processes)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if options:
        raise TypeError(f"unknown run options: {sorted(options)}")
    module = compiled.module
    bindings = bind(module, data)
    why = _needs_reference(bindings)
    if why:
        # the whole module on the per-tick interpreter: see _needs_reference for what is left
        from .reference import evaluate
        return evaluate(module, compiled.functions, bindings)
    timelines = {k: key_timeline(s) for k, s in key_streams(module, bindings).items()}
    gens = {aligned: codegen.load(module, unaligned=not aligned)
            for aligned in {t.aligned for t in timelines.values()} or {True}}
    gen = gens[True] if True in gens else gens[False]
    lengths = {k: len(t.ts) for k, t in timelines.items()}
    batch = batch_size or max(1, min(AUTO_BATCH, max(lengths.values(), default=1)))
    source = BatchSource({_part(k): (k, n) for k, n in lengths.items()}, batch)
    regions = node_regions(module)

    def runtime_for(item):
        key = _unpart(item[0])
        timeline = timelines[key]
        return KeyRuntime(gens[timeline.aligned], module, regions, compiled.functions, timeline, key)

    if processes == 1:
        sink = CollectSink()
        run_flow(gen.build_flow(source, sink, runtime_for), workers)
        items = sink.items
    else:
        items = run_cluster(lambda sink: gen.build_flow(source, sink, runtime_for), processes, workers)
    return _assemble(gen, items, multi=len(timelines) > 1)


def _part(key) -> str:
    return "\x00" if key is None else str(key)


def _unpart(part: str):
    return None if part == "\x00" else part


def _needs_reference(bindings: Bindings) -> str:
    """Why the whole module must run on the per-tick interpreter, or "" if the flow can run it.

    Sources on several clocks and sources with different timestamps run in the flow (one union
    timeline per key, see ``key_runtime.KeyTimeline``).  Left on the interpreter: tag queries (a
    node reading a group of instruments at once), and sources that do not fan out over the same
    run keys (the reference runs such nodes once, or over the keys' intersection, not per key)."""
    sources = list(bindings.sources.values())
    if any(sb.op.name == "tag_query" for sb in sources):
        return "tag query"
    fanned = [sb for sb in sources if sb.fan_out]
    if fanned and (len(fanned) != len(sources)
                   or any(set(sb.by_key()) != set(fanned[0].by_key()) for sb in fanned)):
        return "sources fan out over different run keys"
    return ""


def _assemble(gen, items: list, multi: bool) -> RunResult:
    """One frame per output from each key's finished rows (a key that emitted nothing adds an empty
    frame with the output's columns, as the reference does)."""
    chunks: dict[str, list] = {name: [] for name in gen.OUTPUTS}
    for key, outputs in items:
        for name, (ts, values) in outputs.items():
            chunks[name].append((key, rows_frame(name, ts, values)))
    return RunResult({name: assemble(pairs, multi) for name, pairs in chunks.items()})
