"""Which instrument partitions a run over a data location has, and loading one partition's slice.

A cluster run (``qmtl.runtime.cluster``) must not make every process hold all the data.  So the plan
is made from a ``data.survey`` of the location (its columns and its symbols, no bars) bound to the
module exactly as a full load would be (same E504/E506 errors, same run keys, same fan-out rule:
``binding``), and each partition later reads only the symbols its run key needs: its own bars for
every source that fans out, plus the bars of each single-stream source every key sees (broadcast,
e.g. an index).  The slice is loaded, validated and bucketed by the same code as a full load, and put
on the key's timeline by ``key_runtime.key_timeline`` — the same timeline an in-memory run builds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from qmtl.ir.module import Module

from .binding import bind, bucket, fields_read, node_keys
from .data import DataError, Stream, load, opened, survey
from .key_runtime import KeyTimeline, key_streams, key_timeline


@dataclass(frozen=True)
class SourceSlice:
    """Where one source op takes its bars for one run key: a symbol's stream (None: the data has no
    symbol column), or nothing at all (``empty``: a fanned-out source this key is not among)."""

    symbol: str | None
    interval: int
    empty: bool = False


@dataclass(frozen=True)
class PartitionPlan:
    """The run keys of ``module`` over ``location`` and, per key, each source's slice."""

    location: Any  # a path or URI, or a ``data.Bars`` (one with a time range)
    fields: frozenset[str] | None
    keys: tuple[Any, ...]
    slices: Mapping[Any, Mapping[str, SourceSlice]]
    columns: Mapping[str, tuple[str, ...]]  # source value → the bar fields its (empty) stream has
    output_keys: Mapping[str, tuple[Any, ...] | None]  # output → the keys it runs for (None: once)
    #: value → the keys it runs for, in the reference's order (None: once); a cluster run's cap step
    #: merges the instruments of an instant in this order, as the in-memory run's step does
    value_keys: Mapping[str, tuple[Any, ...] | None] = field(default_factory=dict)

    def symbols(self, key: Any) -> frozenset[str]:
        """The symbols partition ``key`` reads."""
        return frozenset(s.symbol for s in self.slices[key].values() if s.symbol is not None and not s.empty)


def plan_partitions(module: Module, location: Any) -> PartitionPlan:
    """Plan the partitions of a run of ``module`` over ``location`` from a survey (see the module
    docstring).  A tag query reads every instrument at once and is not planned here."""
    if any(op.name == "tag_query" for op in module.ops):
        raise ValueError("a module with a tag query has no per-instrument partitions")
    fields = fields_read(module)
    location = opened(location)
    bindings = bind(module, survey(location))
    per_key = key_streams(module, bindings)
    slices: dict[Any, dict[str, SourceSlice]] = {}
    for key, streams in per_key.items():
        mine: dict[str, SourceSlice] = {}
        for value, stream in streams.items():
            sb = bindings.sources[value]
            missing = sb.fan_out and key not in sb.by_key()
            mine[value] = SourceSlice(stream.symbol, sb.interval, missing)
        slices[key] = mine
    columns = {v: sb.streams[0].fields for v, sb in bindings.sources.items()}
    by_value, by_name = node_keys(module, bindings)
    return PartitionPlan(location, frozenset(fields) if fields is not None else None, tuple(per_key),
                         slices, columns, by_name, by_value)


def load_partition(plan: PartitionPlan, key: Any) -> KeyTimeline:
    """Partition ``key``'s bars, read from the location alone (only its symbols, only the fields the
    strategy reads), validated, bucketed and put on the key's timeline."""
    wanted = plan.symbols(key)
    has_symbols = any(s.symbol is not None for s in plan.slices[key].values())
    if not wanted and has_symbols:  # every source of this key is one it is not among: no bars at all
        return empty_timeline(plan, key)
    dataset = load(plan.location, plan.fields, wanted if has_symbols else None, exact=True)
    found = {s.symbol: s for s in dataset.streams}
    streams: dict[str, Stream] = {}
    for value, where in plan.slices[key].items():
        if where.empty:
            streams[value] = empty_stream(plan, value)
            continue
        stream = found.get(where.symbol)
        if stream is None:  # the data changed between the plan and this read
            raise DataError("E504", plan.location, f"symbol {where.symbol!r} is no longer in the data")
        streams[value] = bucket(stream, where.interval)
    return key_timeline(streams, {v: s.interval for v, s in plan.slices[key].items()})


def empty_stream(plan: PartitionPlan, value: str) -> Stream:
    """No bars, with the fields source ``value``'s stream has (a fanned-out source this key lacks)."""
    return Stream({"ts": np.array([], np.int64), **{c: np.array([], np.float64) for c in plan.columns[value]}})


def empty_timeline(plan: PartitionPlan, key: Any) -> KeyTimeline:
    """Partition ``key``'s timeline when it has no bars."""
    return key_timeline({v: empty_stream(plan, v) for v in plan.slices[key]},
                        {v: s.interval for v, s in plan.slices[key].items()})
