"""The state of one run key (instrument) in the generated flow, and what a batch step does with it.

The generated ``process(rt, n)`` calls back into this object for everything that is not a kernel:
its buffers, the kernels' state arrays, the source columns of the current batch, error checks, and
per-tick Python regions (``py_call`` and ops without a kernel lowering).  Per-tick regions reuse the
reference interpreter's evaluation of one region over input windows, fed with the window tail this
key has kept, so the Python path and the oracle cannot drift apart.

Where the time goes matters here (see DESIGN.md "Performance model"): buffers are scratch that is
only valid during one batch, so one set per worker thread serves every key; emitted rows are appended
by a jitted compaction into arrays sized for the key's whole stream, and handed on once, when the
key's last batch has run — no pandas and no per-batch result objects inside the dataflow.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import reduce
from typing import Any, Mapping

import numba
import numpy as np
import pandas as pd

from qmtl.ir import ops as opreg
from qmtl.ir.module import Module

from .binding import Bindings
from .data import Stream
from .flow import note_failure
from .reference import Track, _collect, _common_ts, _Interpreter, _opaque_frame, _RegionContext
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
    """One run key's timeline: the union of its sources' timestamps (every clock), each source's
    bars NaN-padded onto it, and where each source is present.  ``aligned``: every source has the
    same timestamps (the union is each of them, nothing is padded)."""

    ts: np.ndarray
    streams: dict[str, Stream]
    present: dict[str, np.ndarray]
    aligned: bool


def key_timeline(streams: Mapping[str, Stream]) -> KeyTimeline:
    """Put one key's sources on one timeline (see ``KeyTimeline``)."""
    if not streams:
        return KeyTimeline(np.array([], np.int64), {}, {}, True)
    first = next(iter(streams.values())).ts
    if all(np.array_equal(s.ts, first) for s in streams.values()):
        everywhere = np.ones(len(first), dtype=bool)
        return KeyTimeline(first, dict(streams), {v: everywhere for v in streams}, True)
    ts = reduce(np.union1d, (s.ts for s in streams.values())).astype(np.int64)
    padded, present = {}, {}
    for v, s in streams.items():
        pos = np.searchsorted(ts, s.ts)
        mask = np.zeros(len(ts), dtype=bool)
        mask[pos] = True
        cols: dict[str, np.ndarray] = {"ts": ts}
        for c in s.fields:
            col = np.full(len(ts), np.nan)
            col[pos] = s.columns[c]
            cols[c] = col
        padded[v], present[v] = Stream(cols, s.symbol, s.tags), mask
    return KeyTimeline(ts, padded, present, False)


class KeyRuntime:
    def __init__(self, gen, module: Module, regions: Mapping[str, Any], functions, timeline: KeyTimeline,
                 key: Any):
        self.gen, self.module, self.regions, self.key = gen, module, regions, key
        self.timeline = timeline
        self.streams = timeline.streams
        self.ts = timeline.ts
        self.gates = np.zeros(max(gen.GATE_SLOTS, 1), dtype=np.int64)
        self._state = {k: (np.array(f, dtype=np.float64), np.array(i if i else [0], dtype=np.int64))
                       for k, (f, i) in gen.STATE.items()}
        self._bufs = _scratch(gen.DIGEST)
        self.rows = {name: _Rows(len(self.ts), _output_dtypes(gen, bufs, cols or [name]))
                     for name, (bufs, _emit, cols) in gen.OUTPUTS.items()}
        self.lo = self.hi = 0
        self.done = False  # set by the key's last batch: its rows are handed on, its state dropped
        self._interp = _Interpreter(module, functions, Bindings({}, {}), compute_fns={})
        self._tails: dict[str, dict[str, Track]] = {}  # region → input value → kept history
        self._seen: dict[str, dict[str, int]] = {}     # region → input value → entries before tail

    def __getstate__(self) -> dict:
        """What a Bytewax snapshot holds: the numeric state of this key (kernels, gates, position).
        Per-tick tails are not snapshotted yet, so resuming a flow with Python regions is unsupported."""
        return {"key": self.key, "hi": self.hi, "gates": self.gates, "state": self._state,
                "rows": self.rows}

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

    def present(self, source: str) -> np.ndarray:
        """Where ``source`` has a bar in this batch (the gates' and windows' presence flags)."""
        return np.ascontiguousarray(self.timeline.present[source][self.lo:self.hi])

    def check(self, k: int, ret) -> None:
        t, code = ret
        if code:
            value = self.gen.ERRORS[k][code]
            node = next((r.name for r in self.regions.values() if any(o.result == value for o in r.ops)),
                        value)
            raise NodeRuntimeError(node, int(self.ts[self.lo + t]), self.key,
                                   f"ValueError: cannot convert NaN to integer ({value} = astype i64)")

    def per_tick(self, region_name: str, n: int) -> None:
        region = self.regions[region_name]
        tracks, seen = self._advance_tails(region, n)
        ticks = _common_ts(list(tracks.values()))
        local = {v: np.searchsorted(tr.ts, ticks, side="right").astype(np.int64) for v, tr in tracks.items()}
        batch_ts = self.ts[self.lo:self.hi]
        ready = ticks >= (batch_ts[0] if n else np.iinfo(np.int64).max)
        for v, c in local.items():
            ready &= (c + seen[v]) >= region.period
        ctx = _RegionContext(region, self.key, tracks, ticks, local)
        rows = self._interp._evaluate_ops(ctx, ready)
        track = _collect(region, self.module.op_map().get(region.value), ticks[ready], rows)
        self._trim_tails(region)
        pos = np.searchsorted(batch_ts, track.ts)
        emit = self.buf(f"emit_{self._region_index(region_name)}")
        emit[:n] = False
        emit[pos] = True
        self._store(region, track, pos)

    # --- one batch --------------------------------------------------------------------------------

    def run_batch(self, item, process=None) -> list:
        """Run one batch; after the key's last batch, hand on everything it emitted (once).

        The steps are this key's generated module's (``self.gen``): keys whose sources are unaligned
        run the unaligned variant inside the same flow, so ``process`` is ignored."""
        _part, lo, hi, last = item
        self.lo, self.hi, self.done = lo, hi, last
        if hi > lo:
            try:
                self.gen.process(self, hi - lo)
            except Exception as exc:
                note_failure(exc)
                raise
            self._append_emitted()
        return [(self.key, self.finished())] if last else []

    def _append_emitted(self) -> None:
        n = self.hi - self.lo
        ts = self.ts[self.lo:self.hi]
        for name, (bufs, emit, cols) in self.gen.OUTPUTS.items():
            self.rows[name].append(self.buf(emit)[:n], ts,
                                   [self.buf(b)[:n] for b in bufs])

    def finished(self) -> dict[str, tuple[np.ndarray, dict]]:
        """output name → (ts, {column: values}) of every row this key emitted so far (views)."""
        return {name: rows.view() for name, rows in self.rows.items()}

    # --- per-tick helpers ----------------------------------------------------------------------------

    def _region_index(self, name: str) -> int:
        return self.gen.REGIONS[name]

    def _advance_tails(self, region, n: int):
        """Append this batch's entries to each input's kept tail (trimmed after evaluation)."""
        tails = self._tails.setdefault(region.name, {})
        seen = self._seen.setdefault(region.name, {})
        for v in region.inputs:
            new = self._new_entries(v, n)
            old = tails.get(v)
            tails[v] = new if old is None else _concat(old, new)
            seen.setdefault(v, 0)
        return tails, seen

    def _trim_tails(self, region) -> None:
        """Keep the last ``period`` entries of each input: all a later tick's window can reach
        (everything, if the region holds a recursive op, whose history starts at the first tick)."""
        if any(opreg.REGISTRY[op.name].kind == "recursive" for op in region.ops):
            return
        tails, seen = self._tails[region.name], self._seen[region.name]
        for v, tr in tails.items():
            drop = max(0, len(tr) - region.period)
            if drop:
                seen[v] += drop
                tails[v] = tr.window(len(tr), len(tr) - drop)

    def _new_entries(self, value: str, n: int) -> Track:
        if value in self.streams:
            s = self.streams[value]
            if self.timeline.aligned:
                return Track(s.ts[self.lo:self.hi], "bars",
                             {c: s.columns[c][self.lo:self.hi] for c in s.fields})
            mask = self.timeline.present[value][self.lo:self.hi]
            return Track(s.ts[self.lo:self.hi][mask], "bars",
                         {c: s.columns[c][self.lo:self.hi][mask] for c in s.fields})
        owner = next(r for r in self.regions.values() if r.value == value)
        mask = self.buf(f"emit_{self._region_index(owner.name)}")[:n].copy()
        ts = self.ts[self.lo:self.hi][mask]
        op = self.module.op_map()[value]
        bufs, _, cols = self.gen.OUTPUTS[owner.name]
        if op.type.kind == "frame":
            return Track(ts, "frame", {c: self.buf(b)[:n][mask].copy() for c, b in zip(cols, bufs)})
        if op.type.kind in ("series", "scalar"):
            return Track(ts, "series", self.buf(bufs[0])[:n][mask].copy())
        return Track(ts, "opaque", list(self.buf(bufs[0])[:n][mask]))

    def _store(self, region, track: Track, pos: np.ndarray) -> None:
        bufs, _, cols = self.gen.OUTPUTS[region.name]
        if track.kind == "frame":
            for c, b in zip(cols, bufs):
                self.buf(b)[pos] = track.data[c]
        elif track.kind == "series":
            self.buf(bufs[0])[pos] = track.data
        else:
            arr = self.buf(bufs[0])
            for p, row in zip(pos, track.data):
                arr[p] = row


def _concat(a: Track, b: Track) -> Track:
    ts = np.concatenate([a.ts, b.ts])
    if a.kind in ("bars", "frame"):
        return Track(ts, a.kind, {c: np.concatenate([a.data[c], b.data[c]]) for c in a.data})
    if a.kind == "series":
        return Track(ts, "series", np.concatenate([a.data, b.data]))
    return Track(ts, a.kind, list(a.data) + list(b.data))


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
    """One output's emitted rows for one key, appended batch by batch into arrays sized for the
    key's whole stream (at most one row per tick), so nothing is concatenated at the end.  ``np.empty``
    leaves untouched pages unallocated, so the unused tail costs address space, not memory."""

    def __init__(self, capacity: int, dtypes: dict[Any, str]):
        self.count = 0
        self.ts = np.empty(capacity, dtype=np.int64)
        self.objects: list | None = [] if None in dtypes else None
        self.cols = {} if self.objects is not None else {
            c: np.empty(capacity, dtype=d) for c, d in dtypes.items()}

    def append(self, mask: np.ndarray, ts: np.ndarray, values: list[np.ndarray]) -> None:
        k = self.count
        if self.objects is not None:
            self.objects.extend(values[0][mask])
        else:
            for dst, src in zip(self.cols.values(), values):
                _compact(mask, src, dst, k)
        self.count = _compact(mask, ts, self.ts, k)

    def __getstate__(self) -> dict:
        # a snapshot (Bytewax deep-copies state at each epoch) holds the rows emitted so far, not the
        # never-touched tail of the arrays
        ts, values = self.view()
        return {"capacity": len(self.ts), "ts": ts, "values": values}

    def __setstate__(self, state: dict) -> None:
        ts, values = state["ts"], state["values"]
        dtypes = {c: ("object" if c is None else v.dtype) for c, v in values.items()}
        self.__init__(state["capacity"], dtypes)
        self.count = len(ts)
        self.ts[:self.count] = ts
        if self.objects is not None:
            self.objects.extend(values[None])
        for c, v in self.cols.items():
            v[:self.count] = values[c]

    def view(self) -> tuple[np.ndarray, dict]:
        k = self.count
        if self.objects is not None:
            return self.ts[:k], {None: self.objects}
        return self.ts[:k], {c: a[:k] for c, a in self.cols.items()}


def rows_frame(name: str, ts: np.ndarray, values: dict) -> pd.DataFrame:
    """One key's emitted rows → its output frame, indexed by ``ts``; numeric columns are not copied."""
    index = pd.Index(ts, name="ts", copy=False)
    if None in values:  # opaque rows
        return _opaque_frame(name, list(values[None]), index)
    return pd.DataFrame(values, index=index, copy=False)
