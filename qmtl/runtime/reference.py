"""The reference interpreter: the semantics of docs/design.md, evaluated slowly and obviously.

Every value of a module is one timestamp-indexed series per run key (instrument), computed once, the
way pandas computes it over the full history:

* a source is its bars, on its interval;
* an op over several operands ticks on the fastest operand clock (``qmtl.ir.clocks``): operands on
  that clock are joined on their timestamps (the union; a missing entry is NaN), slower operands are
  read as of their last *closed* bar (close time = ts + interval, ``merge_asof`` backwards);
* a windowed or recursive op (rolling, shift, ewm, cumsum, TA-Lib indicators) is its pandas/TA-Lib
  reference applied to the operand's whole history;
* ``py_call`` (an opaque compute function) is the one per-tick op: called at each tick where its
  operands on its clock are present and every operand has ``period`` closed entries, on a
  ``CacheView`` of their last ``period`` entries.

An SDK node (a module output) *emits* its value at the ticks where every declared input on the
node's clock emitted and every input has emitted ``period`` entries (warm-up): emission selects rows,
it never changes a value, so a NodeID's values are the same in every node that holds it.

This is the oracle the generated kernels are tested against.  ``full_history_python`` is a second,
independent oracle for traced nodes (the user's own compute function called once on the full
history); ``per_tick_python`` calls each node's function per tick on its window (the per-event
baseline of the benchmarks, and the definition of opaque nodes).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from qmtl.ir import ops as opreg
from qmtl.ir.clocks import clocks, node_clock, same_clock
from qmtl.ir.module import Module, Op
from qmtl.ir.regions import Region, regions_in_dependency_order
from qmtl.runtime.sdk.source_location import traceback_location

from .binding import Bindings, bind
from .data import Stream
from .results import NodeRuntimeError, RunResult

Key = str | None


# --- per-key value histories -------------------------------------------------------------------------


@dataclass(frozen=True)
class Track:
    """A value's history for one run key: bar-open ``ts`` on ``interval``, plus the data by kind.

    ``bars``/``frame``: dict of column arrays; ``series``: one array; ``opaque``: a list of whatever
    each tick's row was; ``scalar``: a constant (no ts); ``group``: a ``tag_query``'s streams
    (``dict[key, Track]``)."""

    ts: np.ndarray
    kind: str
    data: Any
    interval: int = 0

    @staticmethod
    def of_stream(stream: Stream, interval: int) -> "Track":
        return Track(stream.ts, "bars", {c: stream.columns[c] for c in stream.fields}, interval)

    @property
    def close(self) -> np.ndarray:
        return self.ts + self.interval

    def members(self) -> list["Track"]:
        return list(self.data.values()) if self.kind == "group" else [self]

    def closed_by(self, instants: np.ndarray) -> np.ndarray:
        """How many entries have closed at each instant (for a group: its least-filled member)."""
        counts = [np.searchsorted(m.close, instants, side="right") for m in self.members()]
        return np.minimum.reduce(counts) if counts else np.zeros(len(instants), np.int64)

    def slice(self, lo: int, hi: int) -> "Track":
        if self.kind in ("bars", "frame"):
            data = {c: v[lo:hi] for c, v in self.data.items()}
        else:
            data = self.data[lo:hi]
        return Track(self.ts[lo:hi], self.kind, data, self.interval)

    def take(self, index: np.ndarray) -> "Track":
        """Entries at ``index`` (-1: none yet, NaN)."""
        ok = index >= 0
        safe = np.where(ok, index, 0)

        def pick(v):
            if isinstance(v, list):
                return [v[i] if o else None for i, o in zip(safe, ok)]
            arr = np.asarray(v)
            out = arr[safe] if len(arr) else np.zeros(len(index), dtype=float)
            if not ok.all():
                out = out.astype(float)
                out[~ok] = np.nan
            return out
        data = {c: pick(v) for c, v in self.data.items()} if self.kind in ("bars", "frame") else pick(self.data)
        return Track(self.ts[safe] if len(self.ts) else index, self.kind, data, self.interval)

    def __len__(self) -> int:
        if self.kind == "group":
            return min((len(m) for m in self.data.values()), default=0)
        return len(self.ts)


def _union(ts_list: list[np.ndarray]) -> np.ndarray:
    out = ts_list[0]
    for ts in ts_list[1:]:
        out = np.union1d(out, ts)
    return np.asarray(out, dtype=np.int64)


def _intersection(ts_list: list[np.ndarray]) -> np.ndarray:
    if not ts_list:
        return np.array([], dtype=np.int64)
    out = ts_list[0]
    for ts in ts_list[1:]:
        out = np.intersect1d(out, ts, assume_unique=True)
    return np.asarray(out, dtype=np.int64)


def align(track: Track, ts: np.ndarray, interval: int) -> Track:
    """``track`` on the timeline ``ts`` (bar-open times on ``interval``): joined on timestamps when it
    ticks on that clock, as of its last closed bar when it ticks slower."""
    if track.kind == "scalar":
        return track
    if same_clock(track.interval, interval):
        pos = np.searchsorted(track.ts, ts)
        hit = (pos < len(track.ts)) & (track.ts[np.minimum(pos, max(len(track.ts) - 1, 0))] == ts) \
            if len(track.ts) else np.zeros(len(ts), bool)
        index = np.where(hit, pos, -1)
    else:
        index = np.searchsorted(track.close, ts + interval, side="right") - 1
    out = track.take(index)
    return Track(ts, out.kind, out.data, interval)


# --- entry points ------------------------------------------------------------------------------------


def run(compiled: Any, data: Any) -> RunResult:
    """Replay ``data`` through ``compiled`` (a ``CompiledStrategy``) with the reference interpreter."""
    return evaluate(compiled.module, compiled.functions, bind(compiled.module, data))


def evaluate(module: Module, functions: Mapping[str, Callable[..., Any]], bindings: Bindings) -> RunResult:
    """Evaluate every non-source output of ``module`` per key over bound data."""
    return Interpreter(module, functions, bindings).run()


def evaluate_nodes(module: Module, functions: Mapping[str, Callable[..., Any]], bindings: Bindings,
                   names: set[str], emitted: Mapping[str, Mapping[Key, np.ndarray]]) -> RunResult:
    """Evaluate only the outputs ``names``, exactly as ``evaluate`` would; ``emitted`` gives the
    emission ticks of the other nodes (value → key → ts, key ``None`` for a node that runs once),
    which the generated flow computed."""
    interp = Interpreter(module, functions, bindings)
    emitting = {r.value: r for r in regions_in_dependency_order(module)}
    for value, per_key in emitted.items():
        clock = interp.node_clock(emitting[value]) if value in emitting else interp.clock.get(value) or 0
        interp.emitted[value] = {k: np.asarray(ts, np.int64) + clock for k, ts in per_key.items()}
    return interp.run(only=names)


def per_tick_python(compiled: Any, data: Any) -> RunResult:
    """Call each SDK node's own ``compute_fn`` once per tick on a ``CacheView`` of its last P entries
    (the per-event execution this project replaces; for opaque nodes, their definition).  Nodes without
    a compute function (indicator helpers) are evaluated from the IR."""
    return _with_user_functions(compiled, data, whole_history=False)


def full_history_python(compiled: Any, data: Any) -> RunResult:
    """Call each traced SDK node's own ``compute_fn`` once on a ``CacheView`` holding the *full*
    history of its inputs and keep the rows at the node's emission ticks: what a traced node means.
    Opaque nodes keep their own definition (per tick on the window); a traced function that reduces
    to the current bar's value (``s.iloc[-1]``) is called per tick too."""
    return _with_user_functions(compiled, data, whole_history=True)


def _with_user_functions(compiled: Any, data: Any, whole_history: bool) -> RunResult:
    kinds = {o.name: o.kind for o in compiled.module.outputs}
    fns = {name: node.compute_fn for name, node in compiled.sdk_nodes.items()
           if getattr(node, "compute_fn", None) is not None
           and (not whole_history or kinds.get(name) == "traced")}
    interp = Interpreter(compiled.module, compiled.functions, bind(compiled.module, data))
    interp.user_functions = fns
    interp.whole_history = whole_history
    return interp.run()


# --- the interpreter ---------------------------------------------------------------------------------


class Interpreter:
    """Values per key (``values[value][key]``), each computed once, and node emissions."""

    def __init__(self, module: Module, functions: Mapping[str, Callable[..., Any]], bindings: Bindings):
        self.module = module
        self.functions = functions
        self.ops = module.op_map()
        self.clock = clocks(module)
        self.values: dict[str, dict[Key, Track]] = {}
        self.keys: dict[str, tuple[Key, ...] | None] = {}
        # node value → key → close instants of the rows its node emitted (emissions of nodes on
        # different clocks are compared by when they are known, never by their bar-open ts)
        self.emitted: dict[str, dict[Key, np.ndarray]] = {}
        self.user_functions: Mapping[str, Callable[..., Any]] = {}
        self.whole_history = False
        for value, sb in bindings.sources.items():
            if sb.op.name == "tag_query":
                group = {s.key: Track.of_stream(s, sb.interval) for s in sb.streams}
                self.values[value] = {None: Track(np.array([], np.int64), "group", group, sb.interval)}
                self.keys[value] = None
            else:
                self.values[value] = {(s.key if sb.fan_out else None): Track.of_stream(s, sb.interval)
                                      for s in sb.streams}
                self.keys[value] = tuple(s.key for s in sb.streams) if sb.fan_out else None
            self.emitted[value] = {k: _intersection([m.ts for m in tr.members()]) + sb.interval
                                   for k, tr in self.values[value].items()}

    def run(self, only: set[str] | None = None) -> RunResult:
        chunks: dict[str, list[tuple[Key, pd.DataFrame]]] = {}
        multi: dict[str, bool] = {}
        for region in regions_in_dependency_order(self.module):
            if only is not None and region.name not in only:
                continue
            keys = self.node_keys(region)
            rows = {}
            for k in keys:
                ts, track = self.emit(region, k)
                rows[k] = track
                self.emitted.setdefault(region.value, {})[k] = ts + self.node_clock(region)
            chunks[region.name] = [(k, _output_frame(region.name, tr)) for k, tr in rows.items()]
            multi[region.name] = len(keys) > 1
        return RunResult.from_chunks(chunks, multi)

    # -- keys -----------------------------------------------------------------------------------------

    def keys_of(self, value: str) -> tuple[Key, ...] | None:
        """The run keys a value exists for (None: once, the same for every key)."""
        if value not in self.keys:
            mine: tuple[Key, ...] | None = None
            for src in self.ops[value].operands:
                theirs = self.keys_of(src)
                if theirs is not None:
                    mine = theirs if mine is None else tuple(k for k in mine if k in theirs)
            self.keys[value] = mine
        return self.keys[value]

    def node_keys(self, region: Region) -> list[Key]:
        mine: tuple[Key, ...] | None = None
        for v in region.gate_inputs:
            theirs = self.keys_of(v)
            if theirs is not None:
                mine = theirs if mine is None else tuple(k for k in mine if k in theirs)
        return [None] if mine is None else list(mine)

    # -- values ---------------------------------------------------------------------------------------

    def value(self, name: str, key: Key) -> Track:
        per_key = self.values.setdefault(name, {})
        k = key if self.keys_of(name) is not None else None
        if k not in per_key:
            per_key[k] = self._compute(self.ops[name], key)
        return per_key[k]

    def _compute(self, op: Op, key: Key) -> Track:
        opdef = opreg.REGISTRY[op.name]
        interval = self.clock.get(op.result) or 0
        if op.name == "const":
            return Track(np.array([], np.int64), "scalar", op.attr("value"), 0)
        if op.name == "py_call":
            return self._py_call(op, key, interval)
        if opdef.kind == "cross":
            return self._cross(op, key, interval)
        ts, aligned = self._operands(op, key, interval)
        kwargs = _accepted(opdef.reference, {**opdef.defaults(), **op.attr_dict})
        if opdef.reads_time:
            kwargs["close"] = ts + interval
        args = [_reference_value(t) for t in aligned]
        try:
            with np.errstate(all="ignore"):
                out = opdef.reference(*args, **kwargs)
        except Exception as exc:  # user data an op rejects (astype of NaN to int): report where
            raise NodeRuntimeError(self.owner(op.result), None, key, f"{type(exc).__name__}: {exc}") from exc
        return _track_of(op, ts, out, interval)

    def _operands(self, op: Op, key: Key, interval: int) -> tuple[np.ndarray, list[Track]]:
        """The op's ticks (the union of its operands on its clock) and its operands on them: a
        slower operand as of its last closed bar (docs/design.md "Clocks and joins")."""
        operands = [self.value(v, key) for v in op.operands]
        ticking = [t for t in operands if t.kind != "scalar" and same_clock(t.interval, interval)]
        ts = _union([t.ts for t in ticking]) if ticking else np.array([], np.int64)
        return ts, [align(t, ts, interval) if len(ticking) > 1 or not same_clock(t.interval, interval)
                    else t for t in operands]

    def _cross(self, op: Op, key: Key, interval: int) -> Track:
        """A cross-instrument op (``total_cap``): its reference takes every run key's operands at
        once, in the keys' order, and gives every key's value; all are kept, ``key``'s returned."""
        keys = self.keys_of(op.result)
        keys = [None] if keys is None else list(keys)
        ticks, args = [], []
        for k in keys:
            ts, aligned = self._operands(op, k, interval)
            ticks.append(ts)
            args.append([_reference_value(t) for t in aligned])
        opdef = opreg.REGISTRY[op.name]
        kwargs = _accepted(opdef.reference, {**opdef.defaults(), **op.attr_dict})
        instants = [ts + interval for ts in ticks]
        with np.errstate(all="ignore"):
            outs = opdef.reference(instants, *[list(col) for col in zip(*args)], **kwargs)
        per_key = self.values.setdefault(op.result, {})
        for k, ts, out in zip(keys, ticks, outs):
            per_key[k] = _track_of(op, ts, out, interval)
        return per_key[key if keys != [None] else None]

    def owner(self, value: str) -> str:
        """The node whose ops compute ``value`` (for error messages)."""
        for region in regions_in_dependency_order(self.module):
            if any(o.result == value for o in region.ops):
                return region.name
        return value

    def _py_call(self, op: Op, key: Key, interval: int) -> Track:
        fn = self.functions.get(str(op.attr("code_hash")))
        owner = self.owner(op.result)
        if fn is None:
            raise NodeRuntimeError(owner, None, key, f"no function bound to code_hash {op.attr('code_hash')}")
        period = int(op.attr("period"))
        operands = {v: self.value(v, key) for v in op.operands}
        fast = [m.ts for t in operands.values() for m in t.members() if same_clock(m.interval, interval)]
        ticks = _intersection(fast)
        instants = ticks + interval
        counts = {v: t.closed_by(instants) for v, t in operands.items()}
        ready = np.ones(len(ticks), dtype=bool)
        for c in counts.values():
            ready &= c >= period
        rows, kept = [], []
        for j in np.flatnonzero(ready):
            windows = {v: _window(t, int(counts[v][j]), period, int(instants[j])) for v, t in operands.items()}
            view = self.view(windows)
            row = last_row(guarded(owner, int(ticks[j]), key, lambda: opreg.REGISTRY["py_call"].reference(fn, view)))
            if row is not NO_VALUE:
                rows.append(row)
                kept.append(j)
        return Track(ticks[kept], "opaque", rows, interval)

    def view(self, windows: Mapping[str, Track]) -> Any:
        from qmtl.runtime.sdk import CacheView
        frames: dict[str, dict[int, Any]] = {}
        names: dict[str, str] = {}
        for v, tr in windows.items():
            if tr.kind == "group":
                for k, member in tr.data.items():
                    frames[str(k)] = {member.interval: to_pandas(member, v)}
            else:
                node_id = self._node_id(v)
                frames[node_id] = {tr.interval: to_pandas(tr, self.series_name(v))}
                names[self.series_name(v)] = node_id
        return CacheView(frames, names=names)

    def _node_id(self, value: str) -> str:
        op = self.ops.get(value)
        return op.node_id if op is not None and op.node_id else value

    def series_name(self, value: str) -> str:
        """The name a window of ``value`` carries: its node's name, else the value's."""
        for out in self.module.outputs:
            if out.value == value:
                return out.name
        return value

    # -- emission -------------------------------------------------------------------------------------

    def emit(self, region: Region, key: Key) -> tuple[np.ndarray, Track]:
        """The node's emission ticks for ``key`` and its value there (see the module docstring)."""
        inputs = region.gate_inputs
        node_clock = self.node_clock(region)
        emitted = {v: self._emitted(v, key) for v in inputs}
        fast = [known for v, known in emitted.items() if (self.clock.get(v) or node_clock) == node_clock]
        instants = _intersection(fast)
        ready = np.ones(len(instants), dtype=bool)
        for known in emitted.values():
            ready &= np.searchsorted(known, instants, side="right") >= region.period
        ticks = instants[ready] - node_clock
        if region.name in self.user_functions:
            track = self._user_rows(region, key, ticks, node_clock)
        else:
            track = self._sample(self.value(region.value, key), ticks, node_clock)
        return track.ts, track

    def node_clock(self, region: Region) -> int:
        """The clock a node fires on (``qmtl.ir.clocks.node_clock``)."""
        return node_clock(region.gate_inputs, self.clock, region.interval)

    def _emitted(self, value: str, key: Key) -> np.ndarray:
        """Close instants at which ``value``'s node emitted (sorted)."""
        per_key = self.emitted.get(value)
        if per_key is None:  # a value some node emits but no node declared: its own timeline
            track = self.value(value, key)
            return track.close if track.kind != "scalar" else np.array([], np.int64)
        return per_key[key] if key in per_key else next(iter(per_key.values()))

    def _sample(self, track: Track, ticks: np.ndarray, interval: int) -> Track:
        """The value at each emission tick: its entry at that tick on the node's clock, or as of its
        last closed entry when it ticks slower; ticks with no entry emit nothing."""
        if track.kind == "scalar":
            return Track(ticks, "series", np.full(len(ticks), track.data), interval)
        if track.kind == "group":
            return Track(ticks[:0], "opaque", [], interval)
        if same_clock(track.interval, interval) or track.interval < interval:
            pos = np.searchsorted(track.ts, ticks)
            clipped = np.minimum(pos, max(len(track.ts) - 1, 0))
            hit = (pos < len(track.ts)) & (track.ts[clipped] == ticks) if len(track.ts) else \
                np.zeros(len(ticks), bool)
            index = pos[hit]
            ticks = ticks[hit]
        else:
            index = np.searchsorted(track.close, ticks + interval, side="right") - 1
            ticks = ticks[index >= 0]
            index = index[index >= 0]
        out = track.take(index)
        return Track(ticks, out.kind, out.data, interval)

    def _user_rows(self, region: Region, key: Key, ticks: np.ndarray, interval: int) -> Track:
        """The node's own compute function: once over the full history, or once per tick."""
        fn = self.user_functions[region.name]
        operands = {v: self.value(v, key) for v in region.gate_inputs}
        if self.whole_history:
            view = self.view(operands)
            whole = guarded(region.name, None, key, lambda: fn(view))
            if isinstance(whole, (pd.Series, pd.DataFrame)):
                return _rows_at(whole, ticks, interval, self.ops.get(region.value))
        rows, kept = [], []
        for j, t in enumerate(ticks):
            instant = int(t) + interval
            windows = {v: _window(tr, int(tr.closed_by(np.array([instant]))[0]), region.period, instant)
                       for v, tr in operands.items()}
            row = last_row(guarded(region.name, int(t), key, lambda: fn(self.view(windows))))
            if row is not NO_VALUE:
                rows.append(row)
                kept.append(j)
        return _collect(self.ops.get(region.value), ticks[kept], rows, interval)


def _window(track: Track, count: int, length: int, instant: int) -> Track:
    """The last ``length`` entries of ``track`` among the first ``count`` (those closed by ``instant``)."""
    if track.kind == "group":
        members = {k: _window(m, int(m.closed_by(np.array([instant]))[0]), length, instant)
                   for k, m in track.data.items()}
        return Track(track.ts, "group", members, track.interval)
    return track.slice(max(0, count - length), count)


def guarded(node: str, ts: int | None, key: Key, thunk: Callable[[], Any]) -> Any:
    try:
        return thunk()
    except NodeRuntimeError:
        raise
    except Exception as exc:  # user code and user data: report where, not a bare traceback
        where = traceback_location(exc.__traceback__)  # the user's line, when their code raised
        at = f" (at {where.file}:{where.line})" if where is not None else ""
        raise NodeRuntimeError(node, ts, key, f"{type(exc).__name__}: {exc}{at}") from exc


# --- values between ops ------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _parameters(fn: Callable[..., Any]) -> tuple[frozenset[str], bool]:
    sig = inspect.signature(fn)
    names = frozenset(p.name for p in sig.parameters.values()
                      if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    return names, any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())


def _accepted(fn: Callable[..., Any], attrs: dict[str, Any]) -> dict[str, Any]:
    """The attributes a reference function takes (identity-only attributes are not arguments)."""
    names, var_kw = _parameters(fn)
    return dict(attrs) if var_kw else {k: v for k, v in attrs.items() if k in names}


def _reference_value(tr: Track) -> Any:
    """What reference implementations take: arrays for series, column dicts for bars/frames, a
    DataFrame (or Series) for opaque values, the number for a constant."""
    if tr.kind == "opaque":
        return to_pandas(tr, "value")
    return tr.data


def _track_of(op: Op, ts: np.ndarray, out: Any, interval: int) -> Track:
    kind = op.type.kind
    if kind in ("bars", "frame"):
        if isinstance(out, pd.DataFrame):
            out = {str(c): out[c].to_numpy() for c in out.columns}
        return Track(ts, kind, {c: np.asarray(v) for c, v in out.items()}, interval)
    if kind in ("series", "scalar"):
        arr = np.asarray(out)
        if arr.ndim == 0:
            arr = np.full(len(ts), arr[()])
        if op.type.dtype == "f64" and arr.dtype.kind in "iu":  # an integer field read by traced code
            arr = arr.astype(np.float64)
        return Track(ts, "series", arr, interval)
    if isinstance(out, (pd.Series, pd.DataFrame)):  # a column of an opaque value
        return Track(ts, "opaque", list(out), interval)
    return Track(ts, "opaque", list(out) if isinstance(out, (list, np.ndarray)) else [out] * len(ts), interval)


def to_pandas(tr: Track, name: str) -> pd.DataFrame | pd.Series:
    index = pd.Index(tr.ts, name="ts")
    if tr.kind in ("bars", "frame"):
        return pd.DataFrame(dict(tr.data), index=index)
    if tr.kind == "series":
        return pd.Series(tr.data, index=index, name=name)
    return opaque_window(tr.data, index, name)


def opaque_window(rows: list[Any], index: pd.Index, name: str) -> pd.DataFrame | pd.Series:
    if rows and all(isinstance(r, Matrix) for r in rows):
        return _stacked(rows, index)
    if rows and all(isinstance(r, dict) for r in rows):
        return pd.DataFrame(rows, index=index)
    return pd.Series(rows, index=index, name=name)


def _stacked(rows: list["Matrix"], index: pd.Index) -> pd.DataFrame:
    """Matrices, one per tick, as one frame indexed by (``ts``, the matrix's row label)."""
    return pd.concat([r.frame for r in rows], keys=list(index), names=["ts", "row"])


@dataclass(frozen=True, eq=False)
class Matrix:
    """A compute function's value at one tick that is a matrix — a DataFrame whose rows are labelled
    like its columns (``corr()``, ``cov()``) — kept whole: its last row is not its value."""

    frame: pd.DataFrame


def opaque_frame(name: str, rows: list[Any], index: pd.Index) -> pd.DataFrame:
    """The output frame of an opaque node's rows: one row per tick, or, for matrices, the matrix at
    each tick (rows indexed by ``ts`` and the matrix's row label, as ``pd.concat(keys=ts)`` gives)."""
    if rows and all(isinstance(r, Matrix) for r in rows):
        return _stacked(rows, index)
    if rows and all(isinstance(r, dict) for r in rows):
        return pd.DataFrame(rows, index=index)
    return pd.DataFrame({name: pd.Series(rows, index=index, dtype=_infer_dtype(rows))}, index=index)


def _infer_dtype(rows: list[Any]) -> Any:
    if rows and all(isinstance(r, (int, float, np.integer, np.floating, bool, np.bool_)) for r in rows):
        return None
    return object


def _output_frame(name: str, track: Track) -> pd.DataFrame:
    index = pd.Index(track.ts, name="ts")
    if track.kind == "series":
        return pd.DataFrame({name: track.data}, index=index)
    if track.kind == "frame":
        return pd.DataFrame(dict(track.data), index=index)
    return opaque_frame(name, track.data, index)


NO_VALUE = object()


def last_row(value: Any) -> Any:
    """A window's value at its last tick: the last element/row, or ``NO_VALUE`` if it is empty."""
    if value is None:
        return NO_VALUE
    if isinstance(value, pd.DataFrame):
        if value.empty:
            return NO_VALUE
        if len(value) > 1 and list(value.index) == list(value.columns):
            return Matrix(value.copy())
        if value.columns.is_unique:  # column by column: cheaper than building a row Series
            return {str(c): _py(value[c].to_numpy()[-1]) for c in value.columns}
        return {str(c): _py(v) for c, v in value.iloc[-1].items()}
    if isinstance(value, pd.Series):
        return NO_VALUE if value.empty else _py(value.iloc[-1])
    if isinstance(value, dict):
        return {c: last_row(v) for c, v in value.items()}
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return _py(value[()])
        return NO_VALUE if len(value) == 0 else _py(value[-1])
    return value


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _rows_at(whole: Any, ticks: np.ndarray, interval: int, op: Op | None) -> Track:
    """A full-history result (Series/DataFrame indexed by ts) at the emission ticks."""
    if isinstance(whole, pd.Series):
        whole = whole.to_frame()
    if not isinstance(whole, pd.DataFrame):
        return _collect(op, ticks, [last_row(whole)] * len(ticks), interval)
    frame = whole.reindex(pd.Index(ticks))
    rows = [{str(c): _py(v) for c, v in row.items()} for _, row in frame.iterrows()]
    if op is not None and op.type.kind in ("series", "scalar"):
        rows = [next(iter(r.values())) for r in rows]
    return _collect(op, ticks, rows, interval)


def _collect(op: Op | None, ts: np.ndarray, rows: list[Any], interval: int) -> Track:
    """Rows at ticks → a track of the value's kind."""
    typ = op.type if op is not None else None
    if typ is not None and typ.kind in ("series", "scalar"):
        vals = [np.nan if r is None or r is NO_VALUE else r for r in rows]
        arr = np.array(vals, dtype=float) if vals else np.array([], dtype=float)
        if typ.dtype != "f64" and not np.isnan(arr).any():
            arr = arr.astype({"i64": np.int64, "bool": np.bool_}[typ.dtype])
        return Track(ts, "series", arr, interval)
    if typ is not None and typ.kind == "frame":
        cols = {c: np.array([r[c] for r in rows], dtype=float) if rows else np.array([], dtype=float)
                for c, _ in typ.columns}
        return Track(ts, "frame", cols, interval)
    return Track(ts, "opaque", rows, interval)
