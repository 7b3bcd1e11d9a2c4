"""The state of one run key (instrument) in the generated flow, and what a batch step does with it.

The generated ``process(rt, n)`` calls back into this object for everything that is not a kernel:
its buffers, the kernels' state arrays, the source columns of the current batch, error checks, and
the opaque ``py_call`` steps, the only per-tick Python: each calls the user's function on a
``CacheView`` built by the reference interpreter's own view builder, from the window tail this key
has kept, so the Python path and the oracle cannot drift apart.

Where the time goes matters here (docs/design.md "Performance model"): buffers are scratch that is
only valid during one batch, so one set per worker thread serves every key; emitted rows are appended
by a jitted compaction into arrays sized for the key's whole stream, and handed on once, when the
key's last batch has run — no pandas and no per-batch result objects inside the dataflow.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from functools import reduce
from typing import Any, Callable, Mapping

import numba
import numpy as np
import pandas as pd

from qmtl.codegen.generate import presence_buffer as _presence_buffer
from qmtl.codegen.generate import value_buffers as _value_buffers
from qmtl.codegen.lower import ident
from qmtl.ir.clocks import clocks
from qmtl.ir.module import Module

from .binding import Bindings
from .data import Stream
from .flow import failed, note_failure
from .instants import Everywhere, ShiftedInstants
from .reference import NO_VALUE, Interpreter, Track, guarded, last_row, opaque_frame, to_pandas
from .sdk.cache_view import CacheView
from .results import NodeRuntimeError


def key_streams(module: Module, bindings: Bindings) -> dict[Any, dict[str, Stream]]:
    """run key → source value → its stream, for the sources ``module`` reads.

    The run keys are every key some fanned-out source has (one key, ``None``, when none fans out).
    A single-stream source is broadcast: every key sees the same stream, joined onto its timeline
    with presence flags.  A fanned-out source that lacks a key gives that key an empty stream, so
    nodes reading it never fire there — the reference runs them only for the keys all their
    fanned-out inputs share (``binding.node_keys``), and results keep exactly those keys."""
    sources = {op.result: bindings.sources[op.result] for op in module.ops if op.result in bindings.sources}
    fanned = [sb for sb in sources.values() if sb.fan_out]
    keys = list(dict.fromkeys(k for sb in fanned for k in sb.by_key())) or [None]
    return {k: {v: _stream_for(sb, k) for v, sb in sources.items()} for k in keys}


def _stream_for(binding, key: Any) -> Stream:
    if not binding.fan_out:
        return binding.streams[0]
    stream = binding.by_key().get(key)
    if stream is not None:
        return stream
    like = binding.streams[0]
    return Stream({c: like.columns[c][:0] for c in like.columns}, like.symbol, like.tags)


@dataclass(frozen=True)
class KeyTimeline:
    """One run key's timeline: the close instants of its sources' bars (every clock, sorted, each
    once), each source's bars NaN-padded onto it, and where each source has a bar.  A bar of interval
    I opening at ts closes at ts + I: ordering by close time is what keeps a 5m bar from showing
    before it closed (docs/design.md "Clocks")."""

    close: np.ndarray | ShiftedInstants
    streams: dict[str, Stream]
    present: dict[str, np.ndarray | Everywhere]
    intervals: dict[str, int]


def key_timeline(streams: Mapping[str, Stream], intervals: Mapping[str, int]) -> KeyTimeline:
    """Put one key's sources on one timeline (see ``KeyTimeline``)."""
    if not streams:
        return KeyTimeline(np.array([], np.int64), {}, {}, dict(intervals))
    (v0, s0), *rest = streams.items()
    if all(intervals[v] == intervals[v0] and (s.ts is s0.ts or np.array_equal(s.ts, s0.ts)) for v, s in rest):
        # one set of bars on one clock: close instants and presence are derived, not written out
        everywhere = Everywhere(len(s0.ts))
        return KeyTimeline(ShiftedInstants(s0.ts, intervals[v0]), dict(streams), {v: everywhere for v in streams},
                           dict(intervals))
    closes = {v: s.ts + intervals[v] for v, s in streams.items()}
    close = reduce(np.union1d, closes.values()).astype(np.int64)
    padded, present = {}, {}
    for v, s in streams.items():
        pos = np.searchsorted(close, closes[v])
        mask = np.zeros(len(close), dtype=bool)
        mask[pos] = True
        cols: dict[str, np.ndarray] = {"ts": close - intervals[v]}
        for c in s.fields:  # entries where the source is absent are never read (``present`` is False)
            col = np.full(len(close), np.nan) if s.columns[c].dtype.kind == "f" else \
                np.zeros(len(close), dtype=s.columns[c].dtype)
            col[pos] = s.columns[c]
            cols[c] = col
        padded[v], present[v] = Stream(cols, s.symbol, s.tags), mask
    return KeyTimeline(close, padded, present, dict(intervals))


class LazyRuntime:
    """A key's ``KeyRuntime`` inside a cluster step: Bytewax builds a step's logic (with the key's
    resume snapshot) before any item arrives, but the runtime needs the key's first window, so it is
    built then and restored from the snapshot; until then the snapshot stands for it."""

    def __init__(self, make: Callable[[Any], "KeyRuntime"], resume: Mapping[str, Any] | None) -> None:
        self.make, self.resume = make, resume
        self.rt: KeyRuntime | None = None

    def of(self, window: Any) -> "KeyRuntime":
        if self.rt is None:
            self.rt = self.make(window)
            if self.resume is not None:
                self.rt.restore(self.resume)
        return self.rt

    def snapshot(self) -> Any:
        return self.rt.snapshot() if self.rt is not None else self.resume


@dataclass
class _Tail:
    """The last entries of one py_call operand (enough for its window) and how many came before."""

    ts: np.ndarray
    kind: str
    data: Any
    before: int = 0


class KeyRuntime:
    """One run key's state in the flow: kernel state, batch buffers, py_call tails, emitted rows."""

    def __init__(self, gen, module: Module, functions, timeline: KeyTimeline, key: Any,
                 stored: Mapping[str, Any] | None = None,
                 record: Mapping[str, tuple[list[str], int]] | None = None,
                 prefix: Mapping[str, tuple[Any, int]] | None = None, progress: Any = None):
        """``stored``: value → its ``reuse.StoredColumns`` on this key's timeline (filled, not
        computed); ``record``: value → (its buffers, its clock) for each value whose whole series
        this run records for the artifact store; ``prefix``: opaque value → (its stored rows on this
        key's timeline, the close time they cover): up to there its function is not called;
        ``progress``: a ``qmtl.runtime.progress.Progress`` told of every batch run."""
        self.gen, self.module, self.key = gen, module, key
        self._stored = dict(stored or {})
        self._record = dict(record or {})
        self._prefix = dict(prefix or {})
        self._progress = progress
        self.recorded = {v: _Rows(timeline, clock, {i: gen.BUFFERS[b] for i, b in enumerate(bufs)}
                                  if gen.BUFFERS[bufs[0]] != "object" else {None: "object"})
                         for v, (bufs, clock) in self._record.items()}
        self.functions = functions
        self.timeline = timeline
        self.streams = timeline.streams
        self.close = timeline.close
        self._state = {k: (np.array(f, dtype=np.float64), np.array(i if i else [0], dtype=np.int64))
                       for k, (f, i) in gen.STATE.items()}
        self._bufs = _scratch(gen.DIGEST)
        self.rows = {name: _Rows(timeline, clock, _output_dtypes(gen, bufs, cols or [name]))
                     for name, (bufs, _emit, cols, clock, _value) in gen.OUTPUTS.items()}
        self.lo = self.hi = 0
        self.done = False  # set by the key's last batch: its rows are handed on, its state dropped
        self._interp = Interpreter(module, functions, Bindings({}, {}))
        self._clock = clocks(module)
        self._ops = module.op_map()
        self._tails: dict[str, dict[str, _Tail]] = {}   # py_call value → operand → kept entries
        self._last: dict[str, Any] = {}                  # py_call value → its latest row (carried)

    def snapshot(self) -> dict:
        """Everything this key carries from one batch to the next, copied (a recovery snapshot must
        not change when the next batch runs): the kernels' state, each opaque function's window
        tail and latest row.  Emitted rows are not state: a windowed run hands them on per batch."""
        return copy.deepcopy({"state": self._state, "tails": self._tails, "last": self._last})

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Continue from a ``snapshot`` of this key taken at the end of an earlier batch."""
        snapshot = copy.deepcopy(dict(snapshot))
        self._state, self._tails, self._last = snapshot["state"], snapshot["tails"], snapshot["last"]

    # --- called by the generated process() -------------------------------------------------------

    def buf(self, name: str) -> np.ndarray:
        n = self.hi - self.lo
        arr = self._bufs.get(name)
        if arr is None or len(arr) < n:
            arr = np.zeros(max(n, 1), dtype=self.gen.BUFFERS[name])
            self._bufs[name] = arr
        return arr

    def state(self, k: int):
        return self._state[k]

    def col(self, source: str, field: str) -> np.ndarray:
        stream = self.streams[source]
        if field not in stream.columns:
            from .data import DataError
            raise DataError("E503", str(self.key), f"source {source} has no field {field!r} "
                            f"(have {list(stream.fields)})")
        return np.ascontiguousarray(stream.columns[field][self.lo:self.hi], dtype=np.float64)

    def close_instants(self) -> np.ndarray:
        """This batch's close instants (epoch seconds): the time kernels of session rules read."""
        return np.ascontiguousarray(self.close[self.lo:self.hi], dtype=np.int64)

    def present(self, source: str) -> np.ndarray:
        """Where ``source`` has a bar in this batch."""
        return np.ascontiguousarray(self.timeline.present[source][self.lo:self.hi])

    def check(self, k: int, ret) -> None:
        t, code = ret
        if code:
            value = self.gen.ERRORS[k][code]
            loc = self._ops[value].loc
            where = f"at {loc}" if loc else f"{value} = astype i64"
            raise NodeRuntimeError(self._interp.owner(value), self._ts_at(value, t), self.key,
                                   f"ValueError: cannot convert NaN to integer (astype int, {where})")

    def py_call(self, value: str, n: int) -> None:
        """Evaluate one opaque function at every tick of this batch where its operands on its clock
        have an entry and every operand has ``period`` entries, on the last ``period`` of each."""
        op = self._ops[value]
        interval = self._clock.get(value) or 0
        period = int(op.attr("period"))
        fn = self.functions.get(str(op.attr("code_hash")))
        node = self._interp.owner(value)
        if fn is None:
            raise NodeRuntimeError(node, None, self.key, f"no function bound to code_hash {op.attr('code_hash')}")
        tails = self._tails.setdefault(value, {})
        counts, ready = {}, np.ones(n, dtype=bool)
        for v in op.operands:
            mask = self._presence(v, n)
            new = self._entries(v, mask, n)
            tails[v] = new if v not in tails else _append(tails[v], new)
            counts[v] = tails[v].before + (len(tails[v].ts) - len(new.ts)) + np.cumsum(mask)
            if (self._clock.get(v) or interval) == interval:
                ready &= mask
        for c in counts.values():
            ready &= c >= period
        # one pandas object per operand and batch; each call's window is a slice of it (a new frame
        # per call would cost ~10x the framework's budget, docs/design.md "Opaque functions")
        whole = {v: self._pandas(v, tails[v]) for v in op.operands}
        # where each entry's rows start: one row per entry, except a matrix per entry (ts, row label)
        starts = {v: _entry_starts(whole[v]) for v in op.operands}
        keys = {v: (self._node_id(v), self._clock.get(v) or interval) for v in op.operands}
        names = {self._interp.series_name(v): keys[v][0] for v in op.operands}
        ts_of = self.close[self.lo:self.hi] - interval
        rows = self.buf(_object_buffer(value))
        present = self.buf(_presence_buffer(value))
        present[:n] = False
        last = self._last.get(value)
        stored, until = self._prefix.get(value, (None, None))
        covered = 0 if stored is None else int(np.searchsorted(self.close[self.lo:self.hi], until, side="right"))
        for t in range(covered):  # rows an earlier run over the same bars computed: read, not called
            if stored.present[self.lo + t]:
                last = stored.buffers[0][self.lo + t]
                present[t] = True
            rows[t] = last
        for t in range(covered, n):
            if ready[t]:
                windows = {}
                for v in op.operands:
                    hi = int(counts[v][t]) - tails[v].before
                    first, end = starts[v][max(0, hi - period)], starts[v][hi]
                    windows[keys[v][0]] = {keys[v][1]: whole[v].iloc[first:end]}
                view = CacheView(windows, names=names)
                row = last_row(guarded(node, int(ts_of[t]), self.key, lambda: fn(view)))
                if row is not NO_VALUE:
                    last = row
                    present[t] = True
            rows[t] = last  # carried: a slower reader sees the last row as of its tick
        self._last[value] = last
        for tail in tails.values():
            _trim(tail, period)
        for column, name in self.gen.PY_STEPS.get(value, []):
            self._column_of(value, column, name, n)

    def stored(self, value: str, n: int) -> None:
        """Fill a stored value's buffers for this batch from the artifact (see ``reuse``)."""
        cols = self._stored[value]
        self.buf(_presence_buffer(value))[:n] = cols.present[self.lo:self.hi]
        for (name, _dtype), data in zip(_value_buffers(self._ops[value]), cols.buffers):
            self.buf(name)[:n] = data[self.lo:self.hi]
        for column, name in self.gen.PY_STEPS.get(value, []):
            self._column_of(value, column, name, n)

    def _node_id(self, value: str) -> str:
        op = self._ops.get(value)
        return op.node_id if op is not None and op.node_id else value

    def _pandas(self, value: str, tail: "_Tail"):
        """The kept entries of an operand as the pandas object a compute function reads."""
        track = Track(tail.ts, tail.kind, tail.data, self._clock.get(value) or 0)
        return to_pandas(track, self._interp.series_name(value))

    # --- one batch --------------------------------------------------------------------------------

    def run_batch(self, item) -> list:
        """Run one batch; after the key's last batch, hand on everything it emitted (once).

        A failure (a node's error at some bar) is not raised into Bytewax, which would print a Rust
        panic (a backtrace, under RUST_BACKTRACE) before the user's error: it is noted, every later
        batch is skipped, and the flow's runner raises it once the dataflow has stopped."""
        _part, lo, hi, last = item
        self.lo, self.hi, self.done = lo, hi, last
        if failed():
            return []
        if hi > lo:
            try:
                self.gen.process(self, hi - lo)
            except Exception as exc:  # noqa: BLE001 - raised again by the runner (flow.run_flow)
                note_failure(exc)
                return []
            self._append_emitted()
        if self._progress is not None:
            self._progress.advance(hi - lo, last)
        return [(self.key, self.finished(), {v: r.view() for v, r in self.recorded.items()})] if last else []

    def run_window(self, timeline: KeyTimeline, stored: Mapping[str, Any] | None = None
                   ) -> dict[str, tuple[np.ndarray, dict]]:
        """Run this key's next batch, given as its own stretch of the timeline (a cluster run ships
        each batch's bars with it, so no process holds a key's whole history), and return the rows
        it emitted: output name → (ts, {column: values}), copies (the arrays are reused).
        ``stored``: value → its ``StoredColumns`` on this window (a live run's capped values, known
        only once every instrument's first pass ran), replacing those given before; what the
        window recorded is ``recorded_rows()``."""
        self.timeline, self.streams, self.close = timeline, timeline.streams, timeline.close
        self._stored.update(stored or {})
        n = len(timeline.close)
        self.lo, self.hi = 0, n
        for rows in (*self.rows.values(), *self.recorded.values()):
            rows.clear(timeline)
        if n and not failed():
            try:
                self.gen.process(self, n)
                self._append_emitted()
            except Exception as exc:  # noqa: BLE001 - raised again by the runner, see ``run_batch``
                note_failure(exc)
        return {name: rows.copy() for name, rows in self.rows.items()}

    def recorded_rows(self) -> dict[str, tuple[np.ndarray, dict]]:
        """recorded value → (ts, {buffer index: values}) of the last window (``run_window``), copies."""
        return {value: rows.copy() for value, rows in self.recorded.items()}

    def _append_emitted(self) -> None:
        n = self.hi - self.lo
        for name, (bufs, emit, _cols, _clock, _value) in self.gen.OUTPUTS.items():
            if not bufs:
                continue
            self.rows[name].append(self.buf(emit)[:n], self.lo, [self.buf(b)[:n] for b in bufs])
        for value, (bufs, _clock) in self._record.items():
            self.recorded[value].append(self.buf(_presence_buffer(value))[:n], self.lo,
                                        [self.buf(b)[:n] for b in bufs])

    def finished(self) -> dict[str, tuple[np.ndarray, dict]]:
        """output name → (ts, {column: values}) of every row this key emitted so far (views)."""
        return {name: rows.view() for name, rows in self.rows.items()}

    # --- py_call helpers -----------------------------------------------------------------------------

    def _ts_at(self, value: str, t: int) -> int:
        return int(self.close[self.lo + t] - (self._clock.get(value) or 0))

    def _presence(self, value: str, n: int) -> np.ndarray:
        if value in self.streams:
            return self.present(value)[:n].copy()
        return self.buf(_presence_buffer(value))[:n].copy()

    def _entries(self, value: str, mask: np.ndarray, n: int) -> _Tail:
        """This batch's entries of an operand (where it is present), on its own ts."""
        interval = self._clock.get(value) or 0
        ts = (self.close[self.lo:self.hi] - interval)[mask]
        if value in self.streams:
            s = self.streams[value]
            return _Tail(ts, "bars", {c: s.columns[c][self.lo:self.hi][mask] for c in s.fields})
        op = self._ops[value]
        if op.type.kind == "frame":
            bufs = [b for b, _ in _value_buffers(op)]
            return _Tail(ts, "frame", {c: self.buf(b)[:n][mask].copy()
                                       for (c, _), b in zip(op.type.columns, bufs)})
        if op.type.kind in ("series", "scalar"):
            return _Tail(ts, "series", self.buf(_value_buffers(op)[0][0])[:n][mask].copy())
        return _Tail(ts, "opaque", list(self.buf(_object_buffer(value))[:n][mask]))

    def _column_of(self, value: str, column: str, name: str, n: int) -> None:
        """A column of an opaque value's rows, as numbers a kernel can read."""
        rows = self.buf(_object_buffer(value))[:n]
        out = self.buf(_value_buffers(self._ops[column])[0][0])
        for t in range(n):
            row = rows[t]
            if isinstance(row, dict):  # a named column, or (value_of) the one column there is
                row = row.get(name) if name is not None else (next(iter(row.values())) if len(row) == 1 else None)
            out[t] = np.nan if row is None else row
        self.buf(_presence_buffer(column))[:n] = self.buf(_presence_buffer(value))[:n]


def _entry_starts(frame: Any) -> np.ndarray:
    """Row offset where each entry of a window object starts, plus its length (entries are rows,
    or blocks of rows sharing a ``ts`` when each entry is a matrix)."""
    if isinstance(frame.index, pd.MultiIndex):
        ts = frame.index.get_level_values(0).to_numpy()
        return np.r_[np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]]), len(ts)] if len(ts) else np.zeros(1, np.int64)
    return np.arange(len(frame) + 1)


def _object_buffer(value: str) -> str:
    """The buffer of a py_call's rows (one object per tick)."""
    return "b" + ident(value)[1:]


def _append(tail: _Tail, new: _Tail) -> _Tail:
    ts = np.concatenate([tail.ts, new.ts])
    if tail.kind in ("bars", "frame"):
        data = {c: np.concatenate([tail.data[c], new.data[c]]) for c in tail.data}
    elif tail.kind == "series":
        data = np.concatenate([tail.data, new.data])
    else:
        data = list(tail.data) + list(new.data)
    return _Tail(ts, tail.kind, data, tail.before)


def _trim(tail: _Tail, keep: int) -> None:
    drop = max(0, len(tail.ts) - keep)
    if not drop:
        return
    tail.ts = tail.ts[drop:]
    if tail.kind in ("bars", "frame"):
        tail.data = {c: v[drop:] for c, v in tail.data.items()}
    else:
        tail.data = tail.data[drop:]
    tail.before += drop


# --- emitted rows ---------------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _compact(mask, src, dst, k):
    """Append ``src[mask]`` to ``dst`` at ``k``; returns the new length (one pass, no temporaries)."""
    for t in range(len(mask)):
        if mask[t]:
            dst[k] = src[t]
            k += 1
    return k


_SCRATCH = threading.local()


def _scratch(digest: str) -> dict[str, np.ndarray]:
    """This thread's batch buffers for one generated module (a Bytewax worker runs one key's batch
    at a time, and nothing in a buffer outlives its batch, so every key can share them)."""
    pools = getattr(_SCRATCH, "pools", None)
    if pools is None:
        pools = _SCRATCH.pools = {}
    return pools.setdefault(digest, {})


def _output_dtypes(gen, bufs: list[str], cols: list) -> dict[Any, str]:
    if gen.BUFFERS[bufs[0]] == "object":
        return {None: "object"}
    return {c: gen.BUFFERS[b] for c, b in zip(cols, bufs)}


class _Rows:
    """One output's (or recorded value's) emitted rows for one key, appended batch by batch into
    arrays sized for the key's timeline (at most one row per tick), so nothing is concatenated at
    the end.  ``np.empty`` leaves untouched pages unallocated, so the unused tail costs address
    space, not memory.

    Row timestamps are ``close − clock`` at the emitting ticks.  When the timeline already holds
    that array (a source on the same clock: its ``ts``) and the rows are one run of consecutive
    ticks — the usual case once the warm-up is over — the rows' ``ts`` is a view of it and is never
    written: for a simple strategy on millions of bars, writing (and first touching) a second copy
    of the timestamps cost as much as its kernels.  The first batch that breaks the run copies the
    run's timestamps once and appends as usual from then on."""

    def __init__(self, timeline: KeyTimeline, clock: int | None, dtypes: dict[Any, str]):
        self.clock = int(clock or 0)
        capacity = len(timeline.close)
        self.objects: list | None = [] if None in dtypes else None
        self.cols = {} if self.objects is not None else {
            c: np.empty(capacity, dtype=d) for c, d in dtypes.items()}
        self.clear(timeline)

    def clear(self, timeline: KeyTimeline) -> None:
        """Empty, for the ticks of ``timeline`` (a windowed run starts each batch empty)."""
        self.close = timeline.close
        capacity = len(self.close)
        self.ticks_ts = next((s.ts for v, s in timeline.streams.items()
                              if timeline.intervals.get(v) == self.clock and len(s.ts) == capacity), None)
        self.count = 0
        self.span: tuple[int, int] | None = None  # rows = ticks [a, b) of ``ticks_ts``, not copied
        self.ts = np.empty(0, dtype=np.int64)
        if self.objects is not None:
            self.objects = []
        elif any(len(a) < capacity for a in self.cols.values()):
            self.cols = {c: np.empty(capacity, dtype=a.dtype) for c, a in self.cols.items()}

    def append(self, mask: np.ndarray, lo: int, values: list[np.ndarray]) -> None:
        """The rows where ``mask`` is set, of a batch starting at tick ``lo``."""
        k = self.count
        full = bool(mask.all())  # every tick emitted (the usual batch once warmed up): plain copies
        if not full and not mask.any():
            return
        if self.objects is not None:
            self.objects.extend(values[0][mask])
        else:
            for dst, src in zip(self.cols.values(), values):
                if full:
                    dst[k:k + len(src)] = src
                else:
                    _compact(mask, src, dst, k)
        first = 0 if full else _first_of_suffix(mask)
        if self.ticks_ts is not None and first >= 0 and (
                (self.span is None and k == 0) or (self.span is not None and first == 0 and self.span[1] == lo)):
            self.span = (lo + first if self.span is None else self.span[0], lo + len(mask))
            self.count = k + len(mask) - first
            return
        span, self.span = self.span, None
        if len(self.ts) < len(self.close):
            self.ts = np.empty(len(self.close), dtype=np.int64)
        if span is not None:  # the run of consecutive ticks ends here: its timestamps, copied once
            self.ts[:k] = self.ticks_ts[span[0]:span[1]]
        ts = self.close[lo:lo + len(mask)] - self.clock
        if full:
            self.ts[k:k + len(ts)] = ts
            self.count = k + len(ts)
        else:
            self.count = _compact(mask, ts, self.ts, k)

    def copy(self) -> tuple[np.ndarray, dict]:
        """``view()`` as copies that outlive the next ``clear``."""
        ts, values = self.view()
        return ts.copy(), {c: (list(v) if c is None else v.copy()) for c, v in values.items()}

    def view(self) -> tuple[np.ndarray, dict]:
        k = self.count
        ts = self.ts[:k] if self.span is None else self.ticks_ts[self.span[0]:self.span[1]]
        if self.objects is not None:
            return ts, {None: self.objects}
        return ts, {c: a[:k] for c, a in self.cols.items()}


def _first_of_suffix(mask: np.ndarray) -> int:
    """Where the set entries of ``mask`` (some are) start when they run to its end, else −1."""
    first = int(np.argmax(mask))
    return first if mask[first:].all() else -1


def rows_frame(name: str, ts: np.ndarray, values: dict) -> pd.DataFrame:
    """One key's emitted rows → its output frame, indexed by ``ts``; numeric columns are not copied."""
    index = pd.Index(ts, name="ts", copy=False)
    if None in values:  # opaque rows
        return opaque_frame(name, list(values[None]), index)
    return pd.DataFrame(values, index=index, copy=False)
