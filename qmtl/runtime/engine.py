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

import numpy as np

from qmtl import codegen
from qmtl.ir.regions import node_regions

from .binding import Bindings, bind
from .flow import BatchSource, CollectSink, run_cluster, run_flow
from .key_runtime import KeyRuntime, key_streams, rows_frame
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
    if _needs_reference(module, bindings):
        # tag queries group streams across instruments, and sources on one clock with different
        # timestamps need the common-timestamp join: both run on the per-tick interpreter for now.
        from .reference import evaluate
        return evaluate(module, compiled.functions, bindings)
    gen = codegen.load(module)
    streams = key_streams(module, bindings)
    lengths = {k: len(next(iter(s.values()))) if s else 0 for k, s in streams.items()}
    batch = batch_size or max(1, min(AUTO_BATCH, max(lengths.values(), default=1)))
    source = BatchSource({_part(k): (k, n) for k, n in lengths.items()}, batch)
    regions = node_regions(module)

    def runtime_for(item):
        key = _unpart(item[0])
        return KeyRuntime(gen, module, regions, compiled.functions, streams[key], key)

    if processes == 1:
        sink = CollectSink()
        run_flow(gen.build_flow(source, sink, runtime_for), workers)
        items = sink.items
    else:
        items = run_cluster(lambda sink: gen.build_flow(source, sink, runtime_for), processes, workers)
    return _assemble(gen, items, multi=len(streams) > 1)


def _part(key) -> str:
    return "\x00" if key is None else str(key)


def _unpart(part: str):
    return None if part == "\x00" else part


def _needs_reference(module, bindings: Bindings) -> bool:
    sources = list(bindings.sources.values())
    if any(sb.op.name == "tag_query" for sb in sources) or len({sb.interval for sb in sources}) > 1:
        return True
    first = sources[0] if sources else None
    for sb in sources[1:]:  # several inputs on one clock: kernels need them on one timeline per key
        if sb.fan_out != first.fan_out or len(sb.streams) != len(first.streams):
            return True
        if any(not np.array_equal(a.ts, b.ts) for a, b in zip(first.streams, sb.streams)):
            return True
    return False


def _assemble(gen, items: list, multi: bool) -> RunResult:
    """One frame per output from each key's finished rows (keys that emitted nothing add nothing)."""
    chunks: dict[str, list] = {name: [] for name in gen.OUTPUTS}
    for key, outputs in items:
        for name, (ts, values) in outputs.items():
            if len(ts):
                chunks[name].append((key, rows_frame(name, ts, values)))
    return RunResult({name: assemble(pairs, multi) for name, pairs in chunks.items()})
