"""Bytewax plumbing for the generated flow: a source partitioned by instrument, a collecting sink.

Items are ``(key, (lo, hi))``: a half-open range of one key's bars.  The arrays themselves stay where
binding put them (views of the loaded data); only the range crosses the dataflow, so a batch costs
Bytewax one item however many bars it holds.
"""

from __future__ import annotations

import threading
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition


class _RangePartition(StatefulSourcePartition):
    def __init__(self, part: str, length: int, batch_size: int, resume: int | None):
        self.part, self.length, self.batch_size = part, length, batch_size
        self.pos = resume or 0

    def next_batch(self):
        if self.pos >= self.length:
            raise StopIteration()
        lo, hi = self.pos, min(self.pos + self.batch_size, self.length)
        self.pos = hi
        return [(self.part, (self.part, lo, hi))]

    def snapshot(self) -> int:
        return self.pos


class BatchSource(FixedPartitionedSource):
    """One partition per run key; each poll yields the next ``batch_size`` ticks of that key."""

    def __init__(self, parts: dict[str, tuple[Any, int]], batch_size: int):
        self.parts = parts
        self.batch_size = batch_size

    def list_parts(self) -> list[str]:
        return list(self.parts)

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _RangePartition:
        return _RangePartition(for_part, self.parts[for_part][1], self.batch_size, resume_state)


class _ListPartition(StatelessSinkPartition):
    def __init__(self, out: list, lock: threading.Lock):
        self.out, self.lock = out, lock

    def write_batch(self, items: list) -> None:
        with self.lock:
            for _key, rows in items:
                self.out.extend(rows)


class CollectSink(DynamicSink):
    """Collects every worker's emitted chunks into one list (workers share this process)."""

    def __init__(self) -> None:
        self.items: list = []
        self._lock = threading.Lock()

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _ListPartition:
        return _ListPartition(self.items, self._lock)


def run_flow(flow, workers: int = 1) -> None:
    """Run in this process: ``run_main`` for one worker, ``cluster_main`` with N worker threads."""
    from bytewax.errors import BytewaxRuntimeError
    from bytewax.testing import cluster_main, run_main
    try:
        if workers == 1:
            run_main(flow)
        else:
            cluster_main(flow, [], 0, worker_count_per_proc=workers)
    except BytewaxRuntimeError as exc:
        user = _user_error(exc)
        if user is exc:
            raise
        raise user from None


def _user_error(exc: BaseException) -> BaseException:
    """The qmtl error inside Bytewax's wrapper (a node failure, bad data), else the wrapper itself:
    the user should see which node broke at which bar, not the dataflow's internals."""
    from qmtl.ir.diagnostics import CompileError
    from .results import NodeRuntimeError
    seen = exc
    while seen is not None:
        if isinstance(seen, (NodeRuntimeError, CompileError)):
            return seen
        seen = seen.__cause__ or seen.__context__
    return exc
