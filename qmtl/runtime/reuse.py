"""Reuse at run time: which node values a run reads from the artifact store, and which it stores.

docs/design.md "Shared execution".  The unit is an SDK node's value (a module output's value), the
series every reader of that node sees.  For each such value the run computes a *dataset fingerprint*:
BLAKE3 over exactly the bound data its value depends on — for each source upstream of it, the bars'
timestamps and the fields read on the way (all fields when something reads whole bars).  Two runs with
the same NodeID and fingerprint compute the same series (docs/design.md "Identity"), so:

* a value whose ``(NodeID, fingerprint)`` is stored becomes a ``stored`` op (same name, type and
  NodeID): the flow fills its buffers from the artifact, and ops only it needed are dropped (an
  opaque function upstream is never called);
* every other storable value is recorded during the run (its full series, not the emitted rows) and
  written afterwards.

Sources stay in the module even when nothing reads them any more: each key's timeline (the union of
its sources' close times) and every node's emission gate are then exactly those of the run that wrote
the artifacts, which is what makes a run on reused values equal, bit for bit, to a run from scratch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
from blake3 import blake3

from qmtl.ir.clocks import clocks
from qmtl.ir.module import Module, Op, make_attrs
from qmtl.ir.regions import is_source_op

from .artifacts import ArtifactStore, NotStorable, Series
from .binding import Bindings


@dataclass(frozen=True)
class Reused:
    """A node value read from the store instead of computed."""

    value: str
    node: str          # the output (SDK node) name
    node_id: str
    fingerprint: str
    path: str


@dataclass
class ReusePlan:
    """The module to run (stored values substituted), what it reads and what it will write."""

    module: Module
    reused: dict[str, Reused] = field(default_factory=dict)            # value → where it came from
    series: dict[str, Series] = field(default_factory=dict)            # value → its stored entries
    to_write: dict[str, tuple[str, str]] = field(default_factory=dict)  # value → (node name, fingerprint)
    skipped: dict[str, str] = field(default_factory=dict)               # value → why not stored
    extents: dict[str, Extent] = field(default_factory=dict)            # value → where its data ends
    sources: dict[str, list[dict]] = field(default_factory=dict)        # value → ``source_specs``
    tags: dict[str, tuple[str, ...]] = field(default_factory=dict)      # value → its node's labels
    #: opaque value → (an artifact computed on a prefix of this data, source value → key → last bar
    #: ts of that prefix): its rows up to there are read, the function is called only after
    prefix: dict[str, tuple[Series, dict[str, dict[Any, int]]]] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)          # value → its data's fingerprint
    written: list[dict] = field(default_factory=list)  # what ``write_recorded`` wrote (for an index)


def storable(op: Op) -> bool:
    """Series and frames of numbers; opaque rows are checked row by row when written."""
    t = op.type
    if t.kind in ("series", "scalar"):
        return t.dtype in ("f64", "i64", "bool")
    if t.kind == "frame":
        return all(d in ("f64", "i64", "bool") for _, d in t.columns)
    return t.kind == "opaque" and op.name == "py_call"


def plan_reuse(module: Module, bindings: Bindings, store: ArtifactStore, read: bool = True) -> ReusePlan:
    """Substitute every node value the store holds for this data; list the rest to be written.
    ``read=False`` reads nothing (after a stale artifact: every value is computed and written)."""
    ops = module.op_map()
    candidates: dict[str, str] = {}  # value → output name (first output naming it)
    for out in module.outputs:
        op = ops.get(out.value)
        if op is not None and not is_source_op(op) and op.node_id and out.value not in candidates:
            candidates[out.value] = out.name
    cache: dict = {}
    reads = {v: upstream_reads(module, bindings, v) for v in candidates}
    prints = {v: fingerprint(module, bindings, reads[v], cache=cache) for v in candidates}
    plan = ReusePlan(module, fingerprints=prints,
                     extents={v: extent(module, bindings, reads[v]) for v in candidates},
                     sources={v: source_specs(module, reads[v]) for v in candidates},
                     tags={o.value: o.tags for o in reversed(module.outputs)})
    hits: dict[str, Op] = {}
    clock = clocks(module)
    unstable = _downstream_of_unstable(module)
    for value, name in candidates.items():
        op = ops[value]
        if not storable(op):
            plan.skipped[value] = f"values of type {op.type} are not stored"
            continue
        if value in unstable:  # its NodeID is this compile's alone: no other run could read it
            plan.skipped[value] = ("it depends on an opaque function whose identity is not stable "
                                   "(E111: it reads state that is not hashed)")
            continue
        fp = prints[value]
        if read and store.has(op.node_id, fp):
            try:
                plan.series[value] = store.read(op.node_id, fp)
            except Exception as exc:  # noqa: BLE001 - an unreadable artifact is recomputed, not fatal
                plan.skipped[value] = f"stored artifact unreadable ({type(exc).__name__}: {exc}); recomputed"
                plan.to_write[value] = (name, fp)
                continue
            plan.reused[value] = Reused(value, name, op.node_id, fp, str(store.path(op.node_id, fp)))
            hits[value] = Op(value, "stored", (), make_attrs({"node_id": op.node_id,
                                                              "interval": int(clock.get(value) or 0)}),
                             op.type, op.loc, op.node_id)
        else:
            plan.to_write[value] = (name, fp)
            if read and op.name == "py_call":
                found = _prefix_artifact(module, bindings, store, op, reads[value], cache)
                if found is not None:
                    plan.prefix[value] = found
    if hits:
        plan.module = without_dead_ops(module, hits)
    return plan


def _downstream_of_unstable(module: Module) -> set[str]:
    """Values computed from an opaque function marked ``deterministic = false``."""
    out: set[str] = set()
    for op in module.ops:
        if (op.name == "py_call" and op.attr("deterministic", True) is False) or any(s in out for s in op.operands):
            out.add(op.result)
    return out


def _prefix_artifact(module: Module, bindings: Bindings, store: ArtifactStore, op: Op, reads: Reads,
                     cache: dict) -> tuple[Series, dict[str, dict[Any, int]]] | None:
    """The artifact of ``op`` computed on the longest prefix of this run's data, if any: its data,
    cut where that artifact's data ended, has the artifact's fingerprint."""
    by_id = {module.op_map()[s].node_id: s for s in reads}
    best: tuple[int, Any, dict] | None = None
    for info in store.of_node(op.node_id):
        if set(info.extent) != set(by_id):
            continue
        limits = {by_id[sid]: {k: int(ts) for k, ts in pairs} for sid, pairs in info.extent.items()}
        if fingerprint(module, bindings, reads, limits, cache) != info.fingerprint:
            continue
        covered = sum(ts for per in limits.values() for ts in per.values())
        if best is None or covered > best[0]:
            best = (covered, info, limits)
    if best is None:
        return None
    try:
        return store.read(op.node_id, best[1].fingerprint), best[2]
    except Exception:  # noqa: BLE001 - unreadable: compute it all
        return None


def without_dead_ops(module: Module, hits: Mapping[str, Op]) -> Module:
    """``module`` with the stored values substituted and the ops nothing needs any more removed
    (sources are kept: see the module docstring)."""
    swapped = [hits.get(op.result, op) for op in module.ops]
    needed = {o.value for o in module.outputs} | {v for o in module.outputs for v in o.inputs}
    keep: list[Op] = []
    for op in reversed(swapped):
        if op.result in needed or is_source_op(op):
            keep.append(op)
            needed.update(op.operands)
    return Module(module.name, tuple(reversed(keep)), module.outputs)


Reads = dict[str, "set[str] | None"]   # source value → fields read (None: whole bars)
Extent = dict[str, list]               # source NodeID → [[key, last bar ts], ...]


def upstream_reads(module: Module, bindings: Bindings, value: str) -> Reads:
    """The sources upstream of ``value`` and the fields read on the way to it."""
    ops = module.op_map()
    reads: Reads = {}
    seen: set[str] = set()
    stack = [value]
    while stack:
        v = stack.pop()
        if v in seen or v not in ops:
            continue
        seen.add(v)
        for s in ops[v].operands:
            if s in bindings.sources:
                if not (ops[v].name == "column" and ops[v].attr("name") is not None):
                    reads[s] = None
                elif reads.get(s, set()) is not None:
                    reads.setdefault(s, set()).add(str(ops[v].attr("name")))
            stack.append(s)
    return reads


def fingerprint(module: Module, bindings: Bindings, reads: Reads,
                limits: Mapping[str, Mapping[Any, int]] | None = None,
                cache: dict | None = None) -> str:
    """BLAKE3 of the data ``reads`` names (see the module docstring); with ``limits`` (source value
    → key → last bar ts), of that data cut after those bars — what a shorter run saw."""
    ops = module.op_map()
    cache = {} if cache is None else cache
    h = blake3(b"qmtl.dataset/1\n")
    for s in sorted(reads, key=lambda s: ops[s].node_id or s):
        binding = bindings.sources[s]
        fields = sorted(reads[s]) if reads[s] is not None else \
            sorted({f for st in binding.streams for f in st.fields})
        limit = None if limits is None else limits.get(s, {})
        h.update(f"source {ops[s].node_id}\n".encode())
        for f in ["ts", *fields]:
            key = (s, f, None if limit is None else tuple(sorted(limit.items(), key=repr)))
            if key not in cache:
                cache[key] = _field_hash(binding.streams, f, limit)
            h.update(f"{f}={cache[key]}\n".encode())
    return "blake3:" + h.hexdigest()


def extent(module: Module, bindings: Bindings, reads: Reads) -> Extent:
    """Where the data of ``reads`` ends: per source NodeID, each key's last bar ts (artifact metadata,
    so a longer run over the same bars can find it)."""
    ops = module.op_map()
    return {ops[s].node_id: [[st.key, int(st.ts[-1])] for st in bindings.sources[s].streams if len(st)]
            for s in reads}


def source_specs(module: Module, reads: Reads) -> list[dict]:
    """What an artifact records of its sources so a run over other data can tell whether the artifact
    was computed on it (``qmtl.runtime.tagged_values``): each source op's NodeID, tags and interval,
    and the fields read (None: whole bars)."""
    ops = module.op_map()
    return [{"node_id": ops[s].node_id, "op": ops[s].name, "tags": list(ops[s].attr("tags") or ()),
             "interval": int(ops[s].attr("interval")), "fields": sorted(f) if f is not None else None}
            for s, f in sorted(reads.items(), key=lambda kv: ops[kv[0]].node_id or kv[0])]


def _field_hash(streams, name: str, limit: Mapping[Any, int] | None = None) -> str:
    h = blake3()
    for stream in streams:
        h.update(f"key:{stream.key}\n".encode())
        col = stream.columns.get(name)
        if col is None:
            h.update(b"absent\n")
            continue
        if limit is not None:
            last = limit.get(stream.key)
            col = col[:0] if last is None else col[:int(np.searchsorted(stream.ts, last, side="right"))]
        arr = np.ascontiguousarray(col)
        h.update(f"{arr.dtype.str}:{arr.size}\n".encode())
        h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


# --- per key: stored entries on a key's timeline, recorded entries into a Series -------------------


@dataclass(frozen=True)
class StoredColumns:
    """A stored value on one key's timeline: where it has an entry and its buffers' contents
    (the latest entry carried, as a kernel carries ``v_*``; NaN / 0 / False / None before the first)."""

    present: np.ndarray
    buffers: tuple[Any, ...]


class StaleArtifact(ValueError):
    """A stored series whose entries do not fall on this run's timeline (it cannot be this data's)."""


def on_timeline(series: Series, key: Any, close: np.ndarray, interval: int, kind: str,
                dtypes: list[str], until: int | None = None) -> StoredColumns:
    """Place one key's stored entries on its timeline (``close``: the key's tick close times); with
    ``until``, only the entries closing by then."""
    ts, cols = series.for_key(key)
    if until is not None:
        keep = ts + interval <= until
        ts = ts[keep]
        cols = {c: (v[keep] if isinstance(v, np.ndarray) else [r for r, k in zip(v, keep) if k])
                for c, v in cols.items()}
    pos = np.searchsorted(close, ts + interval)
    if len(pos) and (pos[-1] >= len(close) or not np.array_equal(close[np.minimum(pos, len(close) - 1)],
                                                                   ts + interval)):
        raise StaleArtifact(f"stored entries of key {key!r} are not ticks of this run")
    present = np.zeros(len(close), dtype=bool)
    present[pos] = True
    # index of the latest entry at or before each tick (-1 before the first)
    latest = np.maximum.accumulate(np.where(present, np.cumsum(present) - 1, -1)) if len(close) else \
        np.zeros(0, np.int64)
    buffers = []
    for values, dtype in zip(cols.values(), dtypes):
        if kind == "opaque":  # rows, and None before the first (index -1 reads the appended None)
            rows = np.empty(len(values) + 1, dtype=object)
            rows[:-1] = values
            buffers.append(rows[latest])
            continue
        values = np.asarray(values, dtype=dtype)
        fill = np.nan if dtype == "float64" else (False if dtype == "bool" else 0)
        out = np.full(len(close), fill, dtype=dtype)
        has = latest >= 0
        out[has] = values[latest[has]]
        buffers.append(out)
    return StoredColumns(present, tuple(buffers))


def recorded_series(per_key: Mapping[Any, tuple[np.ndarray, dict]], kind: str,
                    columns: list[str]) -> Series:
    """What a run recorded of one value (key → (ts, {buffer column: values})) as a ``Series``."""
    keys: list[Any] = []
    ts_parts: list[np.ndarray] = []
    parts: dict[str, list] = {c: [] for c in columns}
    for key, (ts, values) in per_key.items():
        keys.extend([key] * len(ts))
        ts_parts.append(np.asarray(ts, dtype=np.int64))
        for c, v in zip(columns, values.values()):
            parts[c].append(v)
    ts_all = np.concatenate(ts_parts) if ts_parts else np.zeros(0, np.int64)
    if kind == "opaque":
        cols: dict[str, Any] = {c: [r for p in parts[c] for r in p] for c in columns}
    else:
        cols = {c: (np.concatenate(parts[c]) if parts[c] else np.zeros(0)) for c in columns}
    return Series(np.array(keys, dtype=object), ts_all, cols)


def artifact_kind(op: Op) -> str:
    """How ``op``'s values are stored: ``frame``, ``opaque`` (rows) or ``series``."""
    return op.type.kind if op.type.kind in ("frame", "opaque") else "series"


def column_names(op: Op) -> list[str]:
    """The artifact's value columns for ``op``'s type."""
    if op.type.kind == "frame":
        return [f"c:{c}" for c, _ in op.type.columns]
    return ["row"] if op.type.kind == "opaque" else ["value"]


def write_recorded(plan: ReusePlan, store: ArtifactStore, recorded: Mapping[str, Mapping[Any, tuple]],
                   strategy: str, owners: Mapping[str, tuple[str, str]] | None = None) -> dict[str, str]:
    """Write what the run recorded for ``plan.to_write``; returns value → path (and notes skips).
    ``owners`` maps an output name to the (strategy, node name) it stands for (a replay's union
    names outputs ``<strategy>.<node>``): an artifact records the node's own name, whoever ran it."""
    ops = plan.module.op_map()
    clock = clocks(plan.module)
    written: dict[str, str] = {}
    for value, (output, fp) in plan.to_write.items():
        if value not in recorded:
            continue
        owner, name = (owners or {}).get(output, (strategy, output))
        op = ops[value]
        kind = artifact_kind(op)
        series = recorded_series(recorded[value], kind, column_names(op))
        try:
            path = store.write(op.node_id, fp, series, kind=kind, type_=str(op.type),
                               interval=int(clock.get(value) or 0), name=name, strategy=owner,
                               extent=plan.extents.get(value), tags=plan.tags.get(value, ()),
                               sources=plan.sources.get(value))
        except NotStorable as exc:
            plan.skipped[value] = str(exc)
            continue
        written[value] = str(path)
        plan.skipped.pop(value, None)  # e.g. "unreadable; recomputed": it is stored again now
        plan.written.append({"node_id": op.node_id, "fingerprint": fp, "location": str(path),
                             "bytes": store.size(op.node_id, fp), "rows": len(series.ts), "name": name,
                             "strategy": owner})
    return written
