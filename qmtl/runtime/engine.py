"""Run a compiled strategy through its generated Numba kernels inside a Bytewax dataflow.

``run(compiled, data, batch_size, workers)``: bind the data (bad data raises ``DataError``), load the
generated module from the build cache, feed each run key's bars to the flow in batches of
``batch_size`` ticks (a partitioned source: one partition per instrument), let the per-key stateful
step run the kernels, and assemble the emitted rows into the same ``RunResult`` shape as the
reference interpreter.  Batching never changes results: every kernel carries its state across
batches, and per-tick (Python) regions keep the window tail they need.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qmtl import codegen
from qmtl.ir.regions import node_regions

from .binding import Bindings, bind
from .flow import BatchSource, CollectSink, run_flow
from .key_runtime import KeyRuntime, chunk_frame, key_streams
from .results import RunResult, assemble


def run(compiled: Any, data: Any, batch_size: int = 10_000, workers: int = 1, **options: Any) -> RunResult:
    """Replay ``data`` through ``compiled`` (a ``CompiledStrategy``); see the module docstring."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
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
    source = BatchSource({_part(k): (k, len(next(iter(s.values())))) for k, s in streams.items()},
                         batch_size)
    sink = CollectSink()
    regions = node_regions(module)

    def runtime_for(item):
        key = item[0]
        return KeyRuntime(gen, module, regions, compiled.functions, streams[_unpart(key)], _unpart(key))

    run_flow(gen.build_flow(source, sink, runtime_for), workers)
    return _assemble(gen, sink.items, streams, bindings)


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


def _assemble(gen, items, streams, bindings) -> RunResult:
    parts: dict[str, dict[Any, list]] = {name: {} for name in gen.OUTPUTS}
    for name, key, part, _lo in sorted(items, key=lambda it: it[3]):
        parts[name].setdefault(key, []).append(part)
    multi = len(streams) > 1
    return RunResult({name: assemble([(k, chunk_frame(name, p)) for k, p in by_key.items()], multi)
                      for name, by_key in parts.items()})
