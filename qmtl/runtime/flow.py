"""Bytewax plumbing for in-memory runs (``engine.run``): a source partitioned by instrument over data
already bound, a sink collecting what the keys hand on, and running the flow in this process on
worker threads — plus what every run shares: partition names, atomic file writes, and turning a
failure inside the dataflow into the user's error.  Runs across processes are ``cluster``'s.

Items are ``(key, (part, lo, hi, last))``: a half-open range of one key's bars, and whether it is that
key's last batch.  The arrays themselves stay where binding put them (views of the loaded data); only
the range crosses the dataflow, so a batch costs Bytewax one item however many bars it holds.

What comes out is one item per key, after its last batch: ``(key, {output: (ts, columns)})``.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.operators import StatefulLogic
from bytewax.outputs import DynamicSink, StatelessSinkPartition


def part_name(key: Any) -> str:
    """A run key as a Bytewax partition (and routing) key, which must be a string."""
    return "\x00" if key is None else str(key)


def part_key(name: str) -> Any:
    """The run key a ``part_name`` stands for."""
    return None if name == "\x00" else name


class _RangePartition(StatefulSourcePartition):
    def __init__(self, part: str, length: int, batch_size: int, resume: int | None):
        self.part, self.length, self.batch_size = part, length, batch_size
        self.pos = resume or 0

    def next_batch(self):
        if self.pos >= self.length:
            raise StopIteration()
        lo, hi = self.pos, min(self.pos + self.batch_size, self.length)
        self.pos = hi
        return [(self.part, (self.part, lo, hi, hi == self.length))]

    def snapshot(self) -> int:
        return self.pos


class BatchSource(FixedPartitionedSource):
    """One partition per run key; each poll yields the next ``batch_size`` ticks of that key.

    Bytewax builds a partition only on the worker that owns it, so in a cluster each instrument is
    read by exactly one process."""

    def __init__(self, parts: dict[str, tuple[Any, int]], batch_size: int):
        self.parts = parts
        self.batch_size = batch_size

    def list_parts(self) -> list[str]:
        return list(self.parts)

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _RangePartition:
        return _RangePartition(for_part, self.parts[for_part][1], self.batch_size, resume_state)


class _RangeLogic(StatefulLogic):
    """One key's state in a run over data every process holds: its ``KeyRuntime``, built by
    ``runtime_for`` at the key's first batch and dropped after its last."""

    def __init__(self, runtime_for: Callable[[Any], Any]) -> None:
        self.runtime_for = runtime_for
        self.rt = None

    def on_item(self, item: Any) -> tuple[list, bool]:
        if self.rt is None:
            self.rt = self.runtime_for(item)
        emitted = self.rt.run_batch(item)
        return emitted, self.rt.done

    def snapshot(self) -> None:
        return None  # these runs have no recovery: their data is in memory, not at a location to resume from


def range_logic(runtime_for: Callable[[Any], Any]) -> Callable[[Any], StatefulLogic]:
    """The ``build_flow`` logic builder for ``BatchSource`` items (ranges of data already bound)."""
    return lambda _resume: _RangeLogic(runtime_for)


class _ListPartition(StatelessSinkPartition):
    def __init__(self, out: list, lock: threading.Lock):
        self.out, self.lock = out, lock

    def write_batch(self, items: list) -> None:
        with self.lock:
            self.out.extend(row for _key, row in items)


class CollectSink(DynamicSink):
    """Collects every worker's finished keys into one list (workers share this process)."""

    def __init__(self) -> None:
        self.items: list = []
        self._lock = threading.Lock()

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _ListPartition:
        return _ListPartition(self.items, self._lock)


# --- running -------------------------------------------------------------------------------------------

_FAILURES: list[BaseException] = []


def run_flow(flow, workers: int = 1) -> None:
    """Run in this process: ``run_main`` for one worker, ``cluster_main`` with N worker threads."""
    from bytewax.testing import cluster_main, run_main
    if workers == 1:
        raise_failure(lambda: run_main(flow))
    else:
        raise_failure(lambda: cluster_main(flow, [], 0, worker_count_per_proc=workers))


def raise_failure(run: Callable[[], None]) -> None:
    """Run a dataflow (``run()``), then raise the user's error if it met one: a step's noted failure
    or a qmtl error inside Bytewax's wrapper, in preference to the wrapper itself."""
    _FAILURES.clear()
    try:
        run()
    except BaseException as exc:
        user = _user_error(exc)
        if user is exc and _FAILURES:
            user = _FAILURES[0]
        if user is exc:
            raise
        raise user from None
    if _FAILURES:  # a step noted its failure and let the dataflow stop cleanly
        raise _FAILURES[0]


def note_failure(exc: BaseException) -> None:
    """Remember the first exception a step met in this process; the runner raises it when the
    dataflow has stopped (steps do not raise into Bytewax: it would print a Rust panic first)."""
    if not _FAILURES:
        _FAILURES.append(exc)


def first_failure() -> BaseException | None:
    """The first error a step of this process's current run noted, if any."""
    return _FAILURES[0] if _FAILURES else None


def failed() -> bool:
    """Has a step of this process's current run failed (so later batches need not run)?"""
    return bool(_FAILURES)


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
