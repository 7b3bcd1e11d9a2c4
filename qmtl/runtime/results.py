"""What a run produces: one DataFrame per non-source output, in one shape for every backend.

Each output frame is indexed by ``ts`` (int64 epoch seconds, index name ``"ts"``), carries a
``symbol`` column when the output ran for several symbols (rows ordered by ts, then symbol), and
holds the node's value columns: a frame output's columns, a series output as one column named after
the output, an opaque output whatever its last row held.  Because the reference interpreter and the
generated flow both build results through ``assemble``, comparing them is comparing like with like.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa


class NodeRuntimeError(RuntimeError):
    """A node failed while running (user code raised, or an op rejected the data it was given).

    Names the node, the tick and the symbol, so the user can find the bar that broke it; the
    original exception is chained as ``__cause__``.
    """

    def __init__(self, node: str, ts: int | None, symbol: str | None, problem: str):
        self.node, self.ts, self.symbol, self.problem = node, ts, symbol, problem
        where = "" if ts is None else f" at ts={ts}"
        where += "" if symbol is None else f" for symbol {symbol!r}"
        super().__init__(f"node {node!r} failed{where}: {problem}")

    def __reduce__(self):
        # rebuilt from its fields, so the error survives the trip back from a worker process
        return (type(self), (self.node, self.ts, self.symbol, self.problem))


@dataclass
class RunResult:
    outputs: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: what a run with an artifact store read and wrote (``engine.run(..., store=)``), else None
    sharing: "SharingReport | None" = None
    #: (compiled strategy, the data it ran on), set by ``CompiledStrategy.run``/``run_reference``:
    #: what ``performance()`` prices the outputs against
    origin: tuple[Any, Any] | None = field(default=None, repr=False, compare=False)

    def performance(self, calendar: Any = None):
        """What the run earned (``qmtl.runtime.performance.Performance``: returns, equity, drawdown,
        metrics, monthly returns, rolling Sharpe), annualised under ``calendar`` (``252x24h`` by
        default, ``24/7``, ``exchange`` or a ``Calendar``).  The data is read again to price
        ``signal``/``position`` outputs: the run itself never pays for it."""
        from .performance import datasets_of, strategy_performance
        if self.origin is None:
            raise ValueError("this result does not know the strategy and data it came from "
                             "(results of CompiledStrategy.run / run_reference do)")
        compiled, data = self.origin
        datasets = datasets_of(data)
        loaded = dict(datasets) if isinstance(data, Mapping) else datasets[0][1]
        perf, _ = strategy_performance(compiled, self.outputs, datasets, loaded, calendar)
        return perf

    def report(self, path: Any, title: str | None = None, calendar: Any = None):
        """Write the run's tear sheet (self-contained HTML: equity, drawdown, monthly returns,
        rolling Sharpe, metrics) to ``path``; returns the path."""
        return self.performance(calendar).report(path, title=title)

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.outputs[name]

    def frame(self, name: str, *, utc: bool = True, wide: bool = False) -> pd.DataFrame:
        """Output ``name`` for reading: indexed by UTC timestamps (``utc=True``: a ``DatetimeIndex``
        named ``ts``) instead of epoch seconds, and with ``wide=True`` one column per symbol (a
        ``(column, symbol)`` column index for several value columns).  ``outputs`` keeps the
        epoch-second form every backend produces and the comparisons use."""
        return timestamped(self.outputs[name], utc=utc, wide=wide)

    def frames(self, *, utc: bool = True, wide: bool = False) -> dict[str, pd.DataFrame]:
        """Every output as ``frame`` gives it."""
        return {name: self.frame(name, utc=utc, wide=wide) for name in self.outputs}

    def __repr__(self) -> str:
        shown = [f"{name} {_shape(df)}" for name, df in list(self.outputs.items())[:_SHOWN]]
        more = len(self.outputs) - _SHOWN
        text = ", ".join(shown) + (f", +{more} more" if more > 0 else "")
        sharing = ""
        if self.sharing is not None:
            sharing = (f"; store: {len(self.sharing.reused)} read, {len(self.sharing.written)} written, "
                       f"{len(self.sharing.not_stored)} not stored")
        return f"<RunResult {len(self.outputs)} output{'s' if len(self.outputs) != 1 else ''}: {text}{sharing}>"

    def _repr_html_(self) -> str:
        import html
        rows = []
        for name, df in list(self.outputs.items())[:_SHOWN_HTML]:
            span = _span(df)
            rows.append(f"<tr><td>{html.escape(name)}</td><td>{len(df)}</td>"
                        f"<td>{html.escape(', '.join(map(str, df.columns[:12])))}"
                        f"{' …' if len(df.columns) > 12 else ''}</td><td>{html.escape(span)}</td></tr>")
        more = len(self.outputs) - _SHOWN_HTML
        return (f"<div><b>RunResult</b>: {len(self.outputs)} outputs"
                "<table><thead><tr><th>output</th><th>rows</th><th>columns</th><th>UTC span</th></tr>"
                "</thead><tbody>" + "".join(rows) + "</tbody></table>"
                + (f"<p>+{more} more outputs</p>" if more > 0 else "") + "</div>")

    @classmethod
    def from_chunks(cls, chunks: Mapping[str, Iterable[tuple[str | None, pd.DataFrame]]],
                    multi_key: Mapping[str, bool] | None = None) -> "RunResult":
        """Build from per-output ``(key, chunk)`` pairs (chunks of one key in time order)."""
        multi_key = multi_key or {}
        return cls({name: assemble(pairs, multi_key.get(name)) for name, pairs in chunks.items()})


#: how many outputs a repr names (a 2,000-node strategy's result must not print 2,000 entries)
_SHOWN = 8
_SHOWN_HTML = 50


def _shape(df: pd.DataFrame) -> str:
    return f"{len(df)}×{len(df.columns)}"


def _span(df: pd.DataFrame) -> str:
    """First and last timestamp of a result frame, in UTC ('' when empty)."""
    if not len(df):
        return ""
    ts = df.index.get_level_values(0) if isinstance(df.index, pd.MultiIndex) else df.index
    first, last = (pd.Timestamp(int(ts.min()), unit="s", tz="UTC"), pd.Timestamp(int(ts.max()), unit="s", tz="UTC"))
    return f"{first:%Y-%m-%d %H:%M} – {last:%Y-%m-%d %H:%M}"


def timestamped(df: pd.DataFrame, *, utc: bool = True, wide: bool = False) -> pd.DataFrame:
    """A result frame (epoch-second ``ts`` index, maybe a ``symbol`` column) as users read it: a UTC
    ``DatetimeIndex`` and, with ``wide``, symbols as columns (rows: timestamps; a single value column
    becomes one column per symbol, several become a ``(column, symbol)`` index)."""
    out = df
    if wide and "symbol" in df.columns:
        if isinstance(df.index, pd.MultiIndex):
            raise ValueError("a matrix-per-tick output (indexed by ts and row label) has no wide form")
        values = [c for c in df.columns if c != "symbol"]
        out = df.pivot(columns="symbol", values=values)
        if len(values) == 1:
            out = out[values[0]]  # one value column: its symbols are the columns
    if utc:
        if isinstance(out.index, pd.MultiIndex):
            ts = pd.to_datetime(out.index.get_level_values(0).to_numpy(dtype=np.int64), unit="s", utc=True)
            rest = [out.index.get_level_values(i) for i in range(1, out.index.nlevels)]
            out = out.set_axis(pd.MultiIndex.from_arrays([ts, *rest], names=out.index.names), axis=0)
        else:
            out = out.set_axis(pd.DatetimeIndex(pd.to_datetime(out.index.to_numpy(dtype=np.int64), unit="s",
                                                               utc=True), name="ts"), axis=0)
    return out


@dataclass(frozen=True)
class SharingReport:
    """Per node: read from the artifact store (``reused``: node → artifact path), computed and
    written (``written``), or computed and not stored (``not_stored``: node → why)."""

    reused: dict[str, str]
    written: dict[str, str]
    not_stored: dict[str, str]
    #: NodeID → where its values came from: ``artifact <path>``, ``computed, stored <path>`` or
    #: ``computed (not stored: why)``; nodes that are not a node's value (inner ops) are absent
    sources: dict[str, str] = field(default_factory=dict)
    #: NodeID → fingerprint of the data its values depend on, for every node value of the run
    fingerprints: dict[str, str] = field(default_factory=dict)
    #: the artifacts this run wrote: node_id, fingerprint, location, bytes, rows, name, strategy
    written_artifacts: list[dict] = field(default_factory=list)


def assemble(chunks: Iterable[tuple[str | None, pd.DataFrame]], multi_key: bool | None = None) -> pd.DataFrame:
    """One output frame from per-key chunks.

    A chunk is a DataFrame whose index (or ``ts`` column) holds the timestamps.  ``multi_key`` says
    whether to add a ``symbol`` column; by default, when more than one distinct key is present.
    """
    pairs = [(key, _ts_indexed(df)) for key, df in chunks]
    keys = list(dict.fromkeys(k for k, _ in pairs))
    with_symbol = len(keys) > 1 if multi_key is None else multi_key
    if not pairs:
        return _empty(with_symbol)
    if any(isinstance(df.index, pd.MultiIndex) for _, df in pairs):
        return _stacked(pairs, with_symbol)
    if not with_symbol:
        if len(pairs) == 1:
            return pairs[0][1]  # already ts-indexed (the common case: one instrument)
        out = pd.concat([df for _, df in pairs])
        return out.set_axis(pd.Index(out.index.to_numpy(dtype=np.int64), name="ts", copy=False), axis=0)
    # rows ordered by ts, then symbol: concatenate in symbol order, then a stable sort by ts
    pairs.sort(key=lambda p: str(p[0]))
    if _same_numeric_columns([df for _, df in pairs]):
        return _interleave(pairs)
    frames = []
    for key, df in pairs:
        df = df.copy(deep=False)
        df.insert(0, "symbol", key)
        frames.append(df)
    out = pd.concat(frames) if len(frames) > 1 else frames[0]
    ts = out.index.to_numpy(dtype=np.int64)
    order = np.argsort(ts, kind="stable")
    out = out.iloc[order]
    return out.set_axis(pd.Index(ts[order], name="ts", copy=False), axis=0)


def _stacked(pairs: list[tuple[str | None, pd.DataFrame]], with_symbol: bool) -> pd.DataFrame:
    """Frames indexed by (``ts``, row label) — a matrix per tick — in ts order (then key)."""
    frames = []
    for key, df in sorted(pairs, key=lambda p: str(p[0])):
        if with_symbol:
            df = df.copy(deep=False)
            df.insert(0, "symbol", key)
        frames.append(df)
    out = pd.concat(frames) if len(frames) > 1 else frames[0]
    order = np.argsort(out.index.get_level_values(0).to_numpy(dtype=np.int64), kind="stable")
    return out.iloc[order]


def _same_numeric_columns(frames: list[pd.DataFrame]) -> bool:
    first = frames[0].dtypes
    return all(d.kind in "biuf" for d in first) and all(
        list(df.columns) == list(frames[0].columns) and (df.dtypes == first).all() for df in frames[1:])


def _interleave(pairs: list[tuple[str | None, pd.DataFrame]]) -> pd.DataFrame:
    """The keyed frame of ``pairs`` (sorted by key) built with one gather per column: what
    concat-then-sort gives, without pandas moving 10⁷ rows through its block machinery."""
    frames = [df for _, df in pairs]
    ts_parts = [df.index.to_numpy(dtype=np.int64) for df in frames]
    order = _ts_then_key_order(ts_parts)
    codes = np.repeat(np.arange(len(frames)), [len(t) for t in ts_parts])[order]
    symbol = pa.array([k for k, _ in pairs], type=pa.string()).take(pa.array(codes))
    columns = {"symbol": symbol.to_pandas(types_mapper=lambda _t: pd.StringDtype(na_value=np.nan)).array}
    for c in frames[0].columns:
        columns[c] = np.concatenate([df[c].to_numpy() for df in frames])[order]
    index = pd.Index(np.concatenate(ts_parts)[order], name="ts", copy=False)
    return pd.DataFrame(columns, index=index, copy=False)


def _ts_then_key_order(ts_parts: list[np.ndarray]) -> np.ndarray:
    """Row order by ts, ties by key (the part's position).  Keys sharing one timestamp grid — the
    usual replay — interleave without a sort."""
    first = ts_parts[0]
    if all(len(t) == len(first) and np.array_equal(t, first) for t in ts_parts[1:]):
        k, n = len(ts_parts), len(first)
        return np.arange(k * n, dtype=np.int64).reshape(k, n).T.ravel()
    return np.argsort(np.concatenate(ts_parts), kind="stable")


def _ts_indexed(df: pd.DataFrame) -> pd.DataFrame:
    if isinstance(df.index, pd.MultiIndex) and df.index.names[0] == "ts":
        return df  # a matrix per tick, indexed by (ts, row label)
    if "ts" in df.columns:
        df = df.set_index("ts")
    elif df.index.name == "ts" and df.index.dtype == np.int64:
        return df
    return df.set_axis(pd.Index(np.asarray(df.index, dtype=np.int64), name="ts", copy=False), axis=0)


def _empty(with_symbol: bool) -> pd.DataFrame:
    cols = {"symbol": pd.Series([], dtype=object)} if with_symbol else {}
    return pd.DataFrame(cols, index=pd.Index(np.array([], dtype=np.int64), name="ts"))


# --- comparison --------------------------------------------------------------------------------------


def result_differences(a: RunResult, b: RunResult, rtol: float = 1e-9, atol: float = 1e-12) -> list[str]:
    """Every way ``a`` and ``b`` differ (empty when equal); NaN equals NaN."""
    diffs: list[str] = []
    if set(a.outputs) != set(b.outputs):
        diffs.append(f"outputs differ: {sorted(a.outputs)} vs {sorted(b.outputs)}")
    for name in sorted(set(a.outputs) & set(b.outputs)):
        diffs.extend(f"{name}: {d}" for d in frame_differences(a.outputs[name], b.outputs[name], rtol, atol))
    return diffs


def frame_differences(x: pd.DataFrame, y: pd.DataFrame, rtol: float = 1e-9, atol: float = 1e-12) -> list[str]:
    if list(x.columns) != list(y.columns):
        return [f"columns {list(x.columns)} vs {list(y.columns)}"]
    if len(x) != len(y):
        return [f"{len(x)} rows vs {len(y)} rows (first ts {_first(x)} vs {_first(y)})"]
    if not np.array_equal(x.index.to_numpy(), y.index.to_numpy()):
        i = int(np.flatnonzero(x.index.to_numpy() != y.index.to_numpy())[0])
        return [f"ts differ first at row {i}: {x.index[i]} vs {y.index[i]}"]
    return [d for c in x.columns if (d := _column_difference(c, x[c], y[c], x.index, rtol, atol))]


def _first(df: pd.DataFrame):
    return df.index[0] if len(df) else None


def _column_difference(name, a: pd.Series, b: pd.Series, index: pd.Index, rtol: float, atol: float) -> str:
    av, bv = a.to_numpy(), b.to_numpy()
    if _numeric(av) and _numeric(bv):
        af, bf = av.astype(float), bv.astype(float)
        same = np.isclose(af, bf, rtol=rtol, atol=atol, equal_nan=True) | (af == bf)
    else:
        same = np.array([_same_object(p, q) for p, q in zip(av, bv)], dtype=bool)
    if same.all():
        return ""
    i = int(np.flatnonzero(~same)[0])
    return f"column {name!r} differs at {int((~same).sum())} rows, first at ts={index[i]}: {av[i]!r} vs {bv[i]!r}"


def _numeric(arr: np.ndarray) -> bool:
    if arr.dtype.kind in "biuf":
        return True
    try:
        arr.astype(float)
        return True
    except (TypeError, ValueError):
        return False


def _same_object(p, q) -> bool:
    if isinstance(p, float) and isinstance(q, float) and np.isnan(p) and np.isnan(q):
        return True
    try:
        return bool(p == q)
    except (TypeError, ValueError):
        return False


def assert_results_equal(a: RunResult, b: RunResult, rtol: float = 1e-9, atol: float = 1e-12) -> None:
    """Raise ``AssertionError`` listing every difference between two results (for tests)."""
    diffs = result_differences(a, b, rtol, atol)
    if diffs:
        raise AssertionError("results differ:\n  " + "\n  ".join(diffs))
