"""Which data feeds which source op, and at which clock.

``bind(module, data)`` resolves every ``stream_input`` and ``tag_query`` op of a module to streams of
bars, bucketed to the op's interval.  The rules (see the task contract in DESIGN.md "Semantics"):

* one single-symbol dataset feeds every ``stream_input``;
* a multi-symbol dataset is one stream per symbol, tagged with the symbol: an input with no tags
  selects every symbol (the nodes downstream then run once per symbol); an input with tags selects
  the symbols its tags name (case-insensitively), and one whose tags name no symbol in the data is an error — a tag that
  matches no stream never silently means "everything";
* a ``dict[tag, source]`` binds datasets to tags: an input selects the entries whose key is one of its
  tags (within an entry, the symbols its tags name, else all of them), or — when the input has no tags
  and there is exactly one entry — that entry;
* a ``tag_query`` selects every stream whose tags (symbol and dict key) match ``any``/``all`` of its
  query tags, as one group.

Nothing matching is E504, naming the input, its tags and the tags that were available.  A bar field
the strategy reads (``view[price][60]["close"]``, ``price.close``) that the bound data lacks is E506,
reported at the strategy line that reads it, before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numba
import numpy as np

from qmtl.ir.module import Module, Op
from qmtl.ir.regions import regions_in_dependency_order

from .abbrev import abbreviated
from .data import Dataset, DataError, Stream, load


@dataclass(frozen=True)
class SourceBinding:
    """The streams one source op reads, each keyed by its run key (symbol or tag; None if unnamed).

    ``fan_out`` says the op's consumers run once per stream (a ``stream_input`` that selected several
    instruments); otherwise every consumer sees all streams at once (a single stream, or a
    ``tag_query``'s group).
    """

    value: str
    op: Op
    interval: int
    streams: tuple[Stream, ...]
    fan_out: bool

    def by_key(self) -> dict[str | None, Stream]:
        return {s.key: s for s in self.streams}


@dataclass(frozen=True)
class Bindings:
    """Every source op of a module bound to bucketed streams (``sources[value name]``)."""

    sources: Mapping[str, SourceBinding]
    datasets: Mapping[str | None, Dataset]

    def __getitem__(self, value: str) -> SourceBinding:
        return self.sources[value]


#: extra members of a tag query's group for the data being bound: node values of other strategies
#: tagged with the query's tags (``qmtl.runtime.tagged_values``)
TaggedMembers = Callable[[Op, Mapping[str | None, Dataset]], tuple[Stream, ...]]


def bind(module: Module, data: Any, tagged: TaggedMembers | None = None) -> Bindings:
    """Bind ``data`` (a loadable source, a ``Dataset``, or ``dict[tag, source]``) to ``module``;
    ``tagged`` adds stored node values to each tag query's group."""
    if isinstance(data, Bindings):
        return data
    datasets = _datasets(data, fields_read(module), symbols_read(module))
    sources: dict[str, SourceBinding] = {}
    for op in module.ops:
        if op.name == "stream_input":
            sources[op.result] = bind_stream_input(op, datasets)
        elif op.name == "tag_query":
            streams = _select_tag_query(op, datasets, tagged(op, datasets) if tagged is not None else ())
            interval = int(op.attr("interval"))
            sources[op.result] = SourceBinding(op.result, op, interval,
                                               tuple(bucket(s, interval) for s in streams), False)
    _check_fields_read(module, sources, datasets_label(datasets))
    return Bindings(sources, datasets)


RunKeys = tuple[str | None, ...] | None


def node_keys(module: Module, bindings: Bindings) -> tuple[dict[str, RunKeys], dict[str, RunKeys]]:
    """The run keys each node runs for, or None for a node that runs once: (by value, by output name).

    The reference's rule (``reference._Interpreter._region_keys``): a source that fans out runs per
    stream; a node runs for the keys every fanned-out input has (their intersection, in the first
    such input's order), and once when no input fans out — a single stream, a tag query's group or
    a node that runs once is the same for every key (broadcast).  Two outputs naming one value: the
    first defines the value's keys."""
    by_value: dict[str, RunKeys] = {
        v: (tuple(sb.by_key()) if sb.fan_out else None) for v, sb in bindings.sources.items()}
    by_name: dict[str, RunKeys] = {}
    for region in regions_in_dependency_order(module):
        mine: RunKeys = None
        for v in region.gate_inputs:
            theirs = by_value.get(v)
            if theirs is not None:
                mine = theirs if mine is None else tuple(k for k in mine if k in theirs)
        by_name[region.name] = mine
        by_value.setdefault(region.value, mine)
    return by_value, by_name


def _check_fields_read(module: Module, sources: Mapping[str, SourceBinding], data: str) -> None:
    """Every ``column`` op reading a source's bars names a field each bound stream has."""
    for op in module.ops:
        if op.name != "column" or not op.operands or op.operands[0] not in sources:
            continue
        binding = sources[op.operands[0]]
        field = str(op.attr("name"))
        for stream in binding.streams:
            if field not in stream.columns or field == "ts":
                have = list(stream.fields)
                whose = f" of symbol {stream.key!r}" if stream.key is not None else ""
                raise DataError("E506", data,
                                f"reads bar field {field!r} of %{binding.value}, but the bound data"
                                f"{whose} has no such column (has: {', '.join(have) or 'none'})", op.loc)


def fields_read(module: Module) -> set[str] | None:
    """The bar fields ``module`` reads, when every reader of every source is a ``column`` op; None
    when something reads whole bars (an opaque function's window, a tag query's group)."""
    users = module.users()
    ops = module.op_map()
    read: set[str] = set()
    for op in module.ops:
        if op.name not in ("stream_input", "tag_query"):
            continue
        for user in users.get(op.result, []):
            if ops[user].name != "column":
                return None
            read.add(str(ops[user].attr("name")))
    return read


def _datasets(data: Any, fields: set[str] | None = None,
              symbols: list[frozenset[str]] | None = None) -> dict[str | None, Dataset]:
    if isinstance(data, Mapping):
        if not data:
            raise DataError("E504", "<bindings>", "no data given (empty dict)")
        out = {}
        for key, src in data.items():
            ds = load(src, fields)
            out[str(key)] = Dataset(ds.source, tuple(s.with_tags(_tags_for(s, str(key))) for s in ds.streams),
                                    ds.has_symbols, ds.fields)
        return out
    if symbols:
        scanned = load(data, fields, set().union(*symbols))
        named = {s.symbol.casefold() for s in scanned.streams if s.symbol is not None}
        if all(tags & named for tags in symbols):  # every input names a symbol it kept
            return {None: scanned}
    return {None: load(data, fields)}


def symbols_read(module: Module) -> list[frozenset[str]] | None:
    """Per ``stream_input``, the symbols its tags can select (casefolded): read from a file or
    directory, only those rows are scanned — unless an input's tags name none of the symbols kept,
    when the whole data is read so that binding says what it has (E504).  None when an input reads
    every symbol (no tags) or a tag query reads the group."""
    wanted: list[frozenset[str]] = []
    for op in module.ops:
        if op.name == "tag_query":
            return None
        if op.name == "stream_input":
            tags = frozenset(str(t).casefold() for t in (op.attr("tags") or ()))
            if not tags:
                return None
            wanted.append(tags)
    return wanted or None


def _tags_for(stream: Stream, key: str) -> tuple[str, ...]:
    return (key,) + ((stream.symbol,) if stream.symbol is not None and stream.symbol != key else ())


def _label(op: Op) -> str:
    where = f" ({op.loc})" if op.loc else ""
    return f"{op.name} %{op.result}{where} with tags {list(op.attr('tags') or ())}"


def select_stream_input(op: Op, datasets: dict[str | None, Dataset]) -> tuple[Stream, ...]:
    """The streams of ``datasets`` a ``stream_input`` op selects, as loaded (not bucketed to its
    interval): what a live run's feed bars continue (``qmtl.live.kernels``)."""
    tags = tuple(op.attr("tags") or ())
    if None in datasets:
        ds = datasets[None]
        streams = _select_symbols(ds, tags)
        if tags and ds.has_symbols and len(ds.streams) > 1 and streams is ds.streams:
            raise DataError("E504", ds.source,
                            f"{_label(op)} matches no stream: no symbol in the data is one of its tags; "
                            f"available symbols: {abbreviated((s.symbol for s in ds.streams), tags)}")
        return streams
    chosen = [k for k in datasets if k in tags]
    if not chosen and not tags and len(datasets) == 1:
        chosen = list(datasets)
    if not chosen:
        raise DataError("E504", datasets_label(datasets),
                        f"{_label(op)} matches no bound data; available tags: {abbreviated(datasets, tags)}")
    streams: list[Stream] = []
    for key in chosen:
        streams.extend(_select_symbols(datasets[key], tags))
    return tuple(streams)


def _select_symbols(ds: Dataset, tags: tuple[str, ...]) -> tuple[Stream, ...]:
    """Symbols named by ``tags`` if any are (ignoring case: a ``"btc"`` tag names symbol ``BTC``),
    else every stream of the dataset."""
    wanted = {t.casefold() for t in tags}
    named = [s for s in ds.streams if s.symbol is not None and s.symbol.casefold() in wanted]
    return tuple(named) if named else ds.streams


def _select_tag_query(op: Op, datasets: dict[str | None, Dataset],
                      stored: tuple[Stream, ...] = ()) -> tuple[Stream, ...]:
    query = set(op.attr("tags") or ())
    mode = op.attr("match_mode", "any")
    streams = [s for ds in datasets.values() for s in ds.streams]
    hit = [s for s in streams if (query <= set(s.tags) if mode == "all" else query & set(s.tags))]
    if not hit and not stored:
        available = abbreviated({t for s in streams for t in s.tags}, query)
        raise DataError("E504", datasets_label(datasets),
                        f"{_label(op)} (match_mode={mode}) matches no stream and no stored node value "
                        f"computed on this data; available tags: {available}")
    return tuple(hit) + tuple(stored)


def bind_stream_input(op: Op, datasets: Mapping[str | None, Dataset]) -> SourceBinding:
    """A ``stream_input`` op bound to the bucketed streams it selects (E504 when none): several
    streams fan out (its consumers run once per stream)."""
    interval = int(op.attr("interval"))
    streams = tuple(bucket(s, interval) for s in select_stream_input(op, dict(datasets)))
    return SourceBinding(op.result, op, interval, streams, len(streams) > 1)


def datasets_label(datasets: Mapping[str | None, Dataset]) -> str:
    return ", ".join(ds.source for ds in datasets.values())


# --- bucketing ---------------------------------------------------------------------------------------


def bucket(stream: Stream, interval: int) -> Stream:
    """Bars bucketed to ``interval`` seconds (bucket ts = floor(ts / I) * I): open first, high max,
    low min, close last, volume sum, any other field last.  Data already on that grid passes
    through unchanged (the same arrays, no copy)."""
    if interval <= 0:
        raise ValueError(f"interval must be positive, got {interval}")
    ts = stream.ts
    known = stream.on_grid_known(interval)  # the loader's pass over ts found the grid
    if known if known is not None else _on_grid(ts, interval):  # one bar per bucket already (ts strictly increase)
        return stream
    bts = (ts // interval) * interval
    starts = np.flatnonzero(np.r_[True, bts[1:] != bts[:-1]])
    ends = np.r_[starts[1:], len(ts)] - 1
    cols: dict[str, np.ndarray] = {"ts": bts[starts]}
    for name in stream.fields:
        cols[name] = _aggregate(name, stream.columns[name], starts, ends)
    return Stream(cols, stream.symbol, stream.tags)


@numba.njit(cache=True, nogil=True)
def _on_grid(ts: np.ndarray, interval: int) -> bool:
    """Every ts a multiple of ``interval``: the first is, and every step between bars is — divided
    only where a step is not exactly one interval (a gap), in one pass that allocates nothing, since
    dividing (or differencing into a new array) millions of timestamps costs more than the rest of a
    simple strategy's run."""
    if len(ts) == 0:
        return True
    if ts[0] % interval != 0:
        return False
    for i in range(1, len(ts)):
        step = ts[i] - ts[i - 1]
        if step != interval and step % interval != 0:
            return False
    return True


def _aggregate(name: str, col: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    if not len(starts):
        return col[:0].copy()
    if name == "open":
        return col[starts]
    if name == "high":
        return np.maximum.reduceat(col, starts)
    if name == "low":
        return np.minimum.reduceat(col, starts)
    if name == "volume":
        return np.add.reduceat(col, starts)
    return col[ends]
