"""Bytewax plumbing for the generated flow: a source partitioned by instrument, sinks, and running it
in this process (worker threads) or in several processes (a Bytewax cluster on 127.0.0.1).

Items are ``(key, (part, lo, hi, last))``: a half-open range of one key's bars, and whether it is that
key's last batch.  The arrays themselves stay where binding put them (views of the loaded data); only
the range crosses the dataflow, so a batch costs Bytewax one item however many bars it holds — and
moving an item to another process costs a few bytes, since every process holds the same data.

What comes out is one item per key, after its last batch: ``(key, {output: (ts, columns)})``.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import pickle
import socket
import tempfile
import threading
import traceback
from contextlib import closing
from pathlib import Path
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


class _FilePartition(StatelessSinkPartition):
    def __init__(self, directory: Path):
        self.directory = directory

    def write_batch(self, items: list) -> None:
        for _key, row in items:  # (key, outputs, recorded series)
            write_atomically(self.directory / _key_file(row[0]), pickle.dumps(
                row, protocol=pickle.HIGHEST_PROTOCOL))


class FileSink(DynamicSink):
    """Each finished key as one file in ``directory``, named by the key and replaced atomically:
    Bytewax is at-least-once, and writing a key again writes the same file again (idempotent)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _FilePartition:
        return _FilePartition(self.directory)


def read_file_sink(directory: Path) -> list:
    """What a ``FileSink`` wrote: ``(key, outputs, recorded)`` per finished key."""
    return [pickle.loads(p.read_bytes()) for p in sorted(Path(directory).glob("key-*.pkl"))]


def _key_file(key: Any) -> str:
    return "key-" + hashlib.blake2b(repr(key).encode(), digest_size=12).hexdigest() + ".pkl"


def write_atomically(path: Path, data: bytes) -> None:
    """``path`` holds ``data`` whole or not at all (a temp file named for this process and thread,
    then a rename): a reader never sees half a file, and a writer killed midway leaves only a temp."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


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


def run_cluster(build: Callable[[FileSink], Any], processes: int, workers: int = 1) -> list:
    """Run the flow ``build(sink)`` as a Bytewax cluster of ``processes`` processes on 127.0.0.1,
    each with ``workers`` worker threads, and return what the sink received (``(key, outputs)``).

    The processes are forked from this one, so they already hold the loaded data, the compiled
    strategy (user functions included, which need not be picklable) and the imported kernels; each
    writes the keys it owns into a shared temporary directory that this process reads back.  A failure
    in any process (a node error, say) is raised here, and the remaining processes are stopped.
    """
    if "fork" not in multiprocessing.get_all_start_methods():
        raise RuntimeError("processes > 1 needs the 'fork' start method (POSIX); use workers instead")
    ctx = multiprocessing.get_context("fork")
    addresses = [f"127.0.0.1:{port}" for port in _free_ports(processes)]
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None  # results cross in memory, not via disk
    with tempfile.TemporaryDirectory(prefix="qmtl-cluster-", dir=shm) as tmp:
        out = Path(tmp)
        flow = build(FileSink(out))
        procs = [ctx.Process(target=_cluster_process, args=(flow, addresses, i, workers, out),
                             name=f"qmtl-bytewax-{i}", daemon=True) for i in range(processes)]
        for p in procs:
            p.start()
        _wait_all(procs, out)
        return read_file_sink(out)


def note_failure(exc: BaseException) -> None:
    """Remember the first exception a step met in this process; the runner raises it when the
    dataflow has stopped (steps do not raise into Bytewax: it would print a Rust panic first)."""
    if not _FAILURES:
        _FAILURES.append(exc)


def failed() -> bool:
    """Has a step of this process's current run failed (so later batches need not run)?"""
    return bool(_FAILURES)


def _cluster_process(flow, addresses: list[str], proc_id: int, workers: int, out: Path) -> None:
    from bytewax.errors import BytewaxRuntimeError
    from bytewax.testing import cluster_main
    _FAILURES.clear()
    try:
        cluster_main(flow, addresses, proc_id, worker_count_per_proc=workers)
        if _FAILURES:  # a step noted its failure and let the dataflow stop cleanly
            raise _FAILURES[0]
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the parent
        error = _user_error(exc) if isinstance(exc, BytewaxRuntimeError) else exc
        if _FAILURES and error is exc:
            error = _FAILURES[0]
        write_atomically(out / f"error-{proc_id}.pkl", _pickled_error(error))
        os._exit(1)


def _pickled_error(error: BaseException) -> bytes:
    try:
        data = pickle.dumps(error)
        pickle.loads(data)
        return data
    except Exception:  # noqa: BLE001 - an unpicklable error still reaches the parent as text
        text = "".join(traceback.format_exception_only(type(error), error)).strip()
        return pickle.dumps(RuntimeError(text))


def _wait_all(procs: list, out: Path, grace: float = 5.0) -> None:
    """Join every process.  When one fails, the others soon fail too (their peer is gone), so give
    them ``grace`` seconds to report, stop any still running, and raise the most telling error: the
    user's (a node failure) rather than a peer's lost connection."""
    pending = list(procs)
    while pending:
        for p in list(pending):
            p.join(timeout=0.05)
            if p.exitcode is None:
                continue
            pending.remove(p)
            if p.exitcode != 0:
                _stop(pending, grace)
                raise _cluster_error(out, procs)


def _stop(procs: list, grace: float) -> None:
    for p in procs:
        p.join(timeout=grace)
    for p in procs:
        if p.exitcode is None:
            p.terminate()
            p.join()


def _cluster_error(out: Path, procs: list) -> BaseException:
    from qmtl.ir.diagnostics import CompileError
    from .results import NodeRuntimeError
    errors = []
    for i, p in enumerate(procs):
        path = out / f"error-{i}.pkl"
        if path.exists():
            errors.append(pickle.loads(path.read_bytes()))
        elif p.exitcode not in (0, None):
            errors.append(RuntimeError(f"Bytewax process {i} exited with code {p.exitcode} "
                                       "and reported no error"))
    user = [e for e in errors if isinstance(e, (NodeRuntimeError, CompileError))]
    return (user or errors)[0]


def _free_ports(count: int) -> list[int]:
    """Ports the OS calls free right now on 127.0.0.1 (held open together, so they are distinct)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            with closing(s):
                pass


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
