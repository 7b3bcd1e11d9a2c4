"""Tag queries over the values of other strategies' nodes (docs/design.md "Shared execution").

A ``TagQueryNode(query_tags=[...], interval=I)`` selects, besides the bound data's streams whose tags
match, every *node value* tagged so (``Node(..., tags=[...])`` in any strategy) that the artifact
store holds **for the data of this run**: the artifact records the sources its data came from (their
tags, interval and the fields read), so those sources are bound to this run's data and fingerprinted
exactly as the run that stored it did; only an artifact whose fingerprint matches was computed on
these bars.  Each such value joins the query's group as one stream per run key, named after its node
(``rsi``; ``rsi.BTC`` when it has several keys; a NodeID prefix is added when two nodes share a
name), its one column named like the stream (a frame's columns as ``rsi.<column>``), so a matrix
over the group (``corr()``) has one row and one column per node.

The tag query's NodeID is its spec alone; nodes tagged later are picked up by the next run.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from qmtl.ir.module import Module, Op, make_attrs
from qmtl.ir.types import BARS

from .artifacts import ArtifactInfo, ArtifactStore
from .binding import Bindings, bind_stream_input
from .data import DataError, Dataset, Stream
from .reuse import fingerprint


def tagged_members(store: ArtifactStore):
    """A ``binding.TaggedMembers`` resolver reading ``store``."""
    def members(op: Op, datasets: Mapping[str | None, Dataset]) -> tuple[Stream, ...]:
        return stored_members(store, op, datasets)
    return members


def stored_members(store: ArtifactStore, query: Op, datasets: Mapping[str | None, Dataset]) -> tuple[Stream, ...]:
    tags = set(query.attr("tags") or ())
    every = query.attr("match_mode", "any") == "all"
    interval = int(query.attr("interval"))
    found: list[tuple[ArtifactInfo, list[tuple[Any, np.ndarray, dict[str, np.ndarray]]]]] = []
    for info in store.ls():
        labels = set(info.tags)
        if info.interval != interval or info.kind == "damaged" or not (tags <= labels if every else tags & labels):
            continue
        if not _computed_on(info, datasets):
            continue
        series = store.read(info.node_id, info.fingerprint)
        keys = list(dict.fromkeys(series.keys))
        found.append((info, [(k, *series.for_key(k)) for k in keys]))
    names = [info.name or info.node_id for info, _ in found]
    out: list[Stream] = []
    for (info, per_key), name in zip(found, names):
        label = name if names.count(name) == 1 else f"{name}#{info.node_id.removeprefix('blake3:')[:8]}"
        for key, ts, cols in per_key:
            member = label if len(per_key) == 1 else f"{label}.{key}"
            columns: dict[str, np.ndarray] = {"ts": np.asarray(ts, dtype=np.int64)}
            for col, values in _numeric_columns(cols).items():
                columns[member if col == "value" else f"{member}.{col}"] = values
            out.append(Stream(columns, member, tuple(sorted(set(info.tags) | {member}))))
    return tuple(out)


def _numeric_columns(cols: dict[str, Any]) -> dict[str, np.ndarray]:
    """An artifact's values as numeric columns: a series as ``value``, a frame's columns by name, an
    opaque node's rows as ``value`` (numbers) or one column per key (dict rows; missing → NaN)."""
    if "row" not in cols:
        return {c.removeprefix("c:"): np.asarray(v) for c, v in cols.items()}
    rows = cols["row"]
    if all(isinstance(r, dict) for r in rows):
        keys = list(dict.fromkeys(k for r in rows for k in r))
        return {k: np.array([_number(r.get(k)) for r in rows], dtype=np.float64) for k in keys}
    return {"value": np.array([_number(r) for r in rows], dtype=np.float64)}


def _number(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) else np.nan  # bool is an int: 1.0 / 0.0


def _computed_on(info: ArtifactInfo, datasets: Mapping[str | None, Dataset]) -> bool:
    """Whether ``info`` holds its node's values over these datasets: its sources, bound to them, have
    the fingerprint it was stored under."""
    if not info.sources:
        return False
    ops, bindings, reads = [], {}, {}
    for i, spec in enumerate(info.sources):
        if spec.get("op") != "stream_input":
            return False
        op = Op(f"s{i}", "stream_input", (), make_attrs({"tags": tuple(spec.get("tags") or ()),
                                                         "interval": int(spec["interval"])}),
                BARS, None, spec["node_id"])
        try:
            bindings[op.result] = bind_stream_input(op, datasets)
        except DataError:
            return False  # these data have nothing this source selects
        ops.append(op)
        reads[op.result] = set(spec["fields"]) if spec.get("fields") is not None else None
    module = Module("sources", tuple(ops), ())
    return fingerprint(module, Bindings(bindings, dict(datasets)), reads) == info.fingerprint
