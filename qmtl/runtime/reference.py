"""The reference interpreter: the per-tick semantics of DESIGN.md, evaluated slowly and obviously.

For every SDK node (a ``Region`` of the module), per run key (symbol), at every tick t common to the
node's inputs: take the last P bars/values of each input ending at t, apply each op's whole-array
``OpDef.reference`` to those windows, and keep the last row.  Nothing is emitted until every input has
P values.  Recursive ops (``ema``, ``rsi``, ``atr``, ``macd``) are the exception: their definition is
over the operand's whole history, so they are evaluated over the operand's per-tick values from the
start of the stream.  (Those references are causal — the value at t depends only on values up to t —
so one evaluation over the full history, indexed at t, *is* the evaluation "over the history up to
t"; ``tests/runtime`` checks that property rather than paying O(n²) here.)

This is the oracle the generated Numba + Bytewax flow is tested against; it favours being plainly
right over being fast.  ``per_tick_python`` is the same loop but calls each SDK node's original
compute function on a ``CacheView`` per tick — the definition itself, and the "one call per event"
baseline of the benchmark.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from qmtl.ir import ops as opreg
from qmtl.ir.module import Module, Op
from qmtl.ir.nodeid import clocks
from qmtl.ir.regions import Region, regions_in_dependency_order
from qmtl.runtime.sdk.source_location import traceback_location

from .binding import Bindings, bind
from .data import Stream
from .results import NodeRuntimeError, RunResult

Key = str | None


# --- per-key value histories -------------------------------------------------------------------------


@dataclass(frozen=True)
class Track:
    """A value's history for one run key: ``ts`` plus the data, by kind.

    ``bars``/``frame``: dict of column arrays; ``series``: one array; ``opaque``: a list of whatever
    each tick's last row was; ``group``: a ``tag_query``'s streams (``dict[key, Track]``).
    """

    ts: np.ndarray
    kind: str
    data: Any

    @staticmethod
    def of_stream(stream: Stream) -> "Track":
        return Track(stream.ts, "bars", {c: stream.columns[c] for c in stream.fields})

    def count_until(self, t: int) -> int:
        """How many entries have ts ≤ t."""
        if self.kind == "group":
            return min(m.count_until(t) for m in self.data.values())
        return int(np.searchsorted(self.ts, t, side="right"))

    def window(self, end: int, length: int) -> "Track":
        """Entries ``[end - length, end)``."""
        lo = max(0, end - length)
        if self.kind in ("bars", "frame"):
            data = {c: v[lo:end] for c, v in self.data.items()}
        else:
            data = self.data[lo:end]
        return Track(self.ts[lo:end], self.kind, data)

    def window_at(self, t: int, length: int) -> "Track":
        if self.kind == "group":
            return Track(self.ts, "group", {k: m.window_at(t, length) for k, m in self.data.items()})
        return self.window(self.count_until(t), length)

    def __len__(self) -> int:
        if self.kind == "group":
            return min((len(m) for m in self.data.values()), default=0)
        return len(self.ts)


def _common_ts(tracks: list[Track]) -> np.ndarray:
    flat: list[np.ndarray] = []
    for tr in tracks:
        if tr.kind == "group":
            flat.extend(m.ts for m in tr.data.values())
        else:
            flat.append(tr.ts)
    if not flat:
        return np.array([], dtype=np.int64)
    common = flat[0]
    for ts in flat[1:]:
        common = np.intersect1d(common, ts, assume_unique=True)
    return common


# --- entry points ------------------------------------------------------------------------------------


def run(compiled: Any, data: Any) -> RunResult:
    """Replay ``data`` through ``compiled`` (a ``CompiledStrategy``) with the reference interpreter."""
    return evaluate(compiled.module, compiled.functions, bind(compiled.module, data))


def evaluate(module: Module, functions: Mapping[str, Callable[..., Any]], bindings: Bindings) -> RunResult:
    """Evaluate every non-source output of ``module`` per key and per tick over bound data."""
    return _Interpreter(module, functions, bindings, compute_fns={}).run()


def evaluate_nodes(module: Module, functions: Mapping[str, Callable[..., Any]], bindings: Bindings,
                   names: set[str], known: Mapping[str, Mapping[Key, Track]]) -> RunResult:
    """Evaluate only the outputs ``names``, exactly as ``evaluate`` would; every other node value
    they read is given in ``known`` (value → run key → its track; the single key ``None`` for a
    node that runs once).  The generated flow computes everything else and hands over what these
    nodes read, so the interpreter runs only the nodes that need it."""
    interp = _Interpreter(module, functions, bindings, compute_fns={})
    for value, per_key in known.items():
        interp.tracks[value] = dict(per_key)
        interp.fanned[value] = list(per_key) != [None]
    return interp.run(only=names)


def per_tick_python(compiled: Any, data: Any) -> RunResult:
    """Call each SDK node's own ``compute_fn`` once per tick on a ``CacheView`` of its last P bars.

    Nodes without a compute function (sources, indicator helpers) are evaluated from the IR as in
    ``evaluate``.  This is the definition the compiled kernels must reproduce.
    """
    fns = {name: node.compute_fn for name, node in compiled.sdk_nodes.items()
           if getattr(node, "compute_fn", None) is not None}
    bindings = bind(compiled.module, data)
    return _Interpreter(compiled.module, compiled.functions, bindings, compute_fns=fns).run()


# --- the interpreter ---------------------------------------------------------------------------------


class _Interpreter:
    def __init__(self, module: Module, functions: Mapping[str, Callable[..., Any]], bindings: Bindings,
                 compute_fns: Mapping[str, Callable[..., Any]]):
        self.module = module
        self.functions = functions
        self.bindings = bindings
        self.compute_fns = compute_fns
        self.ops = module.op_map()
        self.clock = clocks(module)
        # value name → key → Track, for sources and for every evaluated output
        self.tracks: dict[str, dict[Key, Track]] = {}
        self.fanned: dict[str, bool] = {}
        self._bind_sources()

    def _bind_sources(self) -> None:
        for value, sb in self.bindings.sources.items():
            if sb.op.name == "tag_query":
                group = {s.key: Track.of_stream(s) for s in sb.streams}
                self.tracks[value] = {None: Track(np.array([], np.int64), "group", group)}
                self.fanned[value] = False
            else:
                self.tracks[value] = {s.key if sb.fan_out else None: Track.of_stream(s) for s in sb.streams}
                self.fanned[value] = sb.fan_out

    def run(self, only: set[str] | None = None) -> RunResult:
        """Every output, or just those named in ``only`` (the values they read already tracked)."""
        chunks: dict[str, list[tuple[Key, pd.DataFrame]]] = {}
        multi: dict[str, bool] = {}
        for region in regions_in_dependency_order(self.module):
            if only is not None and region.name not in only:
                continue
            keys = self._region_keys(region)
            per_key = {k: self._evaluate_region(region, k) for k in keys}
            if region.value not in self.tracks:  # two outputs naming one value: the first defines it
                self.tracks[region.value] = per_key
                self.fanned[region.value] = keys != [None]
            chunks[region.name] = [(k, self._output_frame(region, tr)) for k, tr in per_key.items()]
            multi[region.name] = len(keys) > 1
        return RunResult.from_chunks(chunks, multi)

    def _region_keys(self, region: Region) -> list[Key]:
        keys: list[Key] | None = None
        for v in region.inputs:
            if not self.fanned.get(v, False):
                continue
            mine = list(self.tracks[v])
            keys = mine if keys is None else [k for k in keys if k in mine]
        return [None] if keys is None else keys

    def _input_track(self, value: str, key: Key) -> Track:
        per_key = self.tracks[value]
        if self.fanned.get(value, False):
            return per_key[key]
        return next(iter(per_key.values()))

    # -- one region, one key --------------------------------------------------------------------------

    def _evaluate_region(self, region: Region, key: Key) -> Track:
        inputs = {v: self._input_track(v, key) for v in region.inputs}
        ticks = _common_ts(list(inputs.values()))
        counts = {v: np.array([tr.count_until(int(t)) for t in ticks], dtype=np.int64)
                  for v, tr in inputs.items()}
        ready = np.ones(len(ticks), dtype=bool)
        for c in counts.values():
            ready &= c >= region.period
        ctx = _RegionContext(region, key, inputs, ticks, counts)
        fn = self.compute_fns.get(region.name)
        if fn is not None:
            rows = [self._call_user(region.name, fn, ctx, j) for j in np.flatnonzero(ready)]
        else:
            rows = self._evaluate_ops(ctx, ready)
        return _collect(region, self.ops.get(region.value), ticks[ready], rows)

    def _evaluate_ops(self, ctx: "_RegionContext", ready: np.ndarray) -> list[Any]:
        """Window values of every op at every tick needed; returns the output's last rows at ready
        ticks.  Recursive ops need their operand's value at *every* tick, so a region that holds one
        is evaluated at all ticks, not just the ready ones."""
        has_recursive = any(opreg.REGISTRY[op.name].kind == "recursive" for op in ctx.region.ops)
        needed = np.arange(len(ctx.ticks)) if has_recursive else np.flatnonzero(ready)
        windows: dict[str, dict[int, Any]] = {}
        for op in ctx.region.ops:
            opdef = opreg.REGISTRY[op.name]
            if opdef.kind == "recursive":
                windows[op.result] = self._recursive(op, ctx, windows, needed)
            else:
                windows[op.result] = {int(j): self._apply(op, ctx, windows, int(j)) for j in needed}
        out = windows.get(ctx.region.value, {})
        return [_last_row(out.get(int(j))) for j in np.flatnonzero(ready)]

    def _operand(self, name: str, ctx: "_RegionContext", windows: dict[str, dict[int, Any]], j: int) -> Any:
        if name in windows:
            return windows[name][j]
        return _as_reference_value(ctx.input_window(name, j))

    def _apply(self, op: Op, ctx: "_RegionContext", windows: dict[str, dict[int, Any]], j: int) -> Any:
        opdef = opreg.REGISTRY[op.name]
        if op.name == "py_call":  # its attrs describe the call (hash, period); the function takes a view
            fn = self.functions.get(str(op.attr("code_hash")))
            if fn is None:
                raise NodeRuntimeError(ctx.region.name, None, ctx.key,
                                       f"no function bound to code_hash {op.attr('code_hash')}")
            view = self._view(op.operands, ctx, j)
            return self._guarded(ctx, j, lambda: opdef.reference(fn, view))
        operands = [self._operand(v, ctx, windows, j) for v in op.operands]
        kwargs = _accepted(opdef.reference, {**opdef.defaults(), **op.attr_dict})
        return self._guarded(ctx, j, lambda: opdef.reference(*operands, **kwargs))

    def _recursive(self, op: Op, ctx: "_RegionContext", windows: dict[str, dict[int, Any]],
                   needed: np.ndarray) -> dict[int, Any]:
        """The op over its operands' per-tick histories from the first tick, sliced to each tick's
        window length."""
        opdef = opreg.REGISTRY[op.name]
        histories = [np.array([_scalar(_last_row(self._operand(v, ctx, windows, int(j)))) for j in needed],
                              dtype=float) for v in op.operands]
        kwargs = _accepted(opdef.reference, {**opdef.defaults(), **op.attr_dict})
        full = self._guarded(ctx, int(needed[-1]) if len(needed) else 0,
                             lambda: opdef.reference(*histories, **kwargs)) if len(needed) else None
        out: dict[int, Any] = {}
        for pos, j in enumerate(needed):
            length = ctx.window_length(int(j))
            lo = max(0, pos + 1 - length)
            out[int(j)] = ({c: v[lo:pos + 1] for c, v in full.items()} if isinstance(full, dict)
                           else full[lo:pos + 1])
        return out

    def _guarded(self, ctx: "_RegionContext", j: int, thunk: Callable[[], Any]) -> Any:
        try:
            return thunk()
        except NodeRuntimeError:
            raise
        except Exception as exc:  # user code and user data: report where, not a bare traceback
            ts = int(ctx.ticks[j]) if len(ctx.ticks) else None
            where = traceback_location(exc.__traceback__)  # the user's line, when their code raised
            at = f" (at {where.file}:{where.line})" if where is not None else ""
            raise NodeRuntimeError(ctx.region.name, ts, ctx.key, f"{type(exc).__name__}: {exc}{at}") from exc

    def _call_user(self, name: str, fn: Callable[..., Any], ctx: "_RegionContext", j: int) -> Any:
        view = self._view(ctx.region.inputs, ctx, j)
        return _last_row(self._guarded(ctx, j, lambda: fn(view)))

    # -- CacheView ------------------------------------------------------------------------------------

    def _view(self, values: tuple[str, ...], ctx: "_RegionContext", j: int) -> Any:
        from qmtl.runtime.sdk import CacheView
        windows: dict[str, dict[int, Any]] = {}
        names: dict[str, str] = {}
        for v in values:
            tr = ctx.input_window(v, j)
            interval = int(self.clock.get(v) or ctx.region.interval)
            if tr.kind == "group":
                for k, member in tr.data.items():
                    windows[str(k)] = {interval: _to_pandas(member, v)}
            else:
                node_id = self._node_id(v)
                windows[node_id] = {interval: _to_pandas(tr, self._series_name(v))}
                names[self._series_name(v)] = node_id
        return CacheView(windows, names=names)

    def _node_id(self, value: str) -> str:
        op = self.ops.get(value)
        return op.node_id if op is not None and op.node_id else value

    def _series_name(self, value: str) -> str:
        for out in self.module.outputs:
            if out.value == value:
                return out.name
        return value

    def _output_frame(self, region: Region, track: Track) -> pd.DataFrame:
        index = pd.Index(track.ts, name="ts")
        if track.kind == "series":
            return pd.DataFrame({region.name: track.data}, index=index)
        if track.kind == "frame":
            return pd.DataFrame(dict(track.data), index=index)
        return _opaque_frame(region.name, track.data, index)


@dataclass
class _RegionContext:
    """One region's evaluation for one key: its input tracks and the ticks it fires on."""

    region: Region
    key: Key
    inputs: dict[str, Track]
    ticks: np.ndarray
    counts: dict[str, np.ndarray]

    def window_length(self, j: int) -> int:
        """Entries every input window holds at tick ``j``: P once warm, fewer before (aligned from
        the end so element-wise ops line up)."""
        have = [int(c[j]) for c in self.counts.values()]
        return min([self.region.period] + have)

    def input_window(self, value: str, j: int) -> Track:
        tr = self.inputs[value]
        length = self.window_length(j)
        if tr.kind == "group":
            return tr.window_at(int(self.ticks[j]), length)
        return tr.window(int(self.counts[value][j]), length)


# --- values between ops ------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _parameters(fn: Callable[..., Any]) -> tuple[frozenset[str], bool]:
    sig = inspect.signature(fn)
    names = frozenset(p.name for p in sig.parameters.values()
                      if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    return names, any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())


def _accepted(fn: Callable[..., Any], attrs: dict[str, Any]) -> dict[str, Any]:
    """The attributes a reference function takes (identity-only attrs such as an ``ewm_mean``'s
    ``period`` are not arguments of its definition)."""
    names, var_kw = _parameters(fn)
    return dict(attrs) if var_kw else {k: v for k, v in attrs.items() if k in names}


def _as_reference_value(tr: Track) -> Any:
    """What reference implementations take: arrays for series, column dicts for bars/frames, a
    DataFrame (or Series) for opaque values."""
    if tr.kind == "opaque":
        return _to_pandas(tr, "value")
    return tr.data


def _to_pandas(tr: Track, name: str) -> pd.DataFrame | pd.Series:
    index = pd.Index(tr.ts, name="ts")
    if tr.kind in ("bars", "frame"):
        return pd.DataFrame(dict(tr.data), index=index)
    if tr.kind == "series":
        return pd.Series(tr.data, index=index, name=name)
    return _opaque_window(tr.data, index, name)


def _opaque_window(rows: list[Any], index: pd.Index, name: str) -> pd.DataFrame | pd.Series:
    if rows and all(isinstance(r, dict) for r in rows):
        return pd.DataFrame(rows, index=index)
    return pd.Series(rows, index=index, name=name)


def _opaque_frame(name: str, rows: list[Any], index: pd.Index) -> pd.DataFrame:
    if rows and all(isinstance(r, dict) for r in rows):
        return pd.DataFrame(rows, index=index)
    return pd.DataFrame({name: pd.Series(rows, index=index, dtype=_infer_dtype(rows))}, index=index)


def _infer_dtype(rows: list[Any]) -> Any:
    if rows and all(isinstance(r, (int, float, np.integer, np.floating, bool, np.bool_)) for r in rows):
        return None
    return object


_NO_VALUE = object()


def _last_row(value: Any) -> Any:
    """A window's value at its last tick: the last element/row, or ``_NO_VALUE`` if it is empty."""
    if value is None:
        return _NO_VALUE
    if isinstance(value, pd.DataFrame):
        return _NO_VALUE if value.empty else {str(c): _py(v) for c, v in value.iloc[-1].items()}
    if isinstance(value, pd.Series):
        return _NO_VALUE if value.empty else _py(value.iloc[-1])
    if isinstance(value, dict):
        return {c: _last_row(v) for c, v in value.items()}
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return _py(value[()])
        return _NO_VALUE if len(value) == 0 else _py(value[-1])
    return value


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _scalar(v: Any) -> float:
    return np.nan if v is _NO_VALUE or v is None else float(v)


def _collect(region: Region, op: Op | None, ts: np.ndarray, rows: list[Any]) -> Track:
    """Last rows at the ready ticks → the node's track (ticks whose value is empty are dropped)."""
    keep = [i for i, r in enumerate(rows) if r is not _NO_VALUE]
    ts, rows = ts[keep], [rows[i] for i in keep]
    typ = op.type if op is not None else None
    if typ is not None and typ.kind in ("series", "scalar"):
        dtype = {"f64": np.float64, "i64": np.int64, "bool": np.bool_}[typ.dtype]
        return Track(ts, "series", np.array([_scalar_or_nan(r) for r in rows], dtype=dtype)
                     if rows else np.array([], dtype=dtype))
    if typ is not None and typ.kind == "frame":
        cols = {c: np.array([r[c] for r in rows], dtype=float if d == "f64" else None)
                if rows else np.array([], dtype=float) for c, d in typ.columns}
        return Track(ts, "frame", cols)
    return Track(ts, "opaque", rows)


def _scalar_or_nan(r: Any) -> Any:
    return np.nan if r is None else r
