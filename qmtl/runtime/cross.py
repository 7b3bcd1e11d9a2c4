"""Cross-instrument ops (``total_cap``) in the engine: two passes of the kernels around one jitted
step over every instrument at once.

A kernel runs one run key (instrument) and never sees another (docs/design.md "Execution"), while
RiskControl's ``max_total_notional`` needs every instrument's target at each instant.  So a run
whose module holds a ``total_cap`` op goes:

1. **Pass 1** (``operands_module``): the kernels run every key up to the cap; each ``total_cap`` op
   is swapped for ``make_frame(target, close)``, which the kernels compute on the op's ticks by the
   clock rule (a slower price read as of its last close), and whose whole series the run records.
2. **The step** (``capped``): each cap op's operands of all keys, merged by (instant, key), go
   through ``qmtl.ir.ops.total_cap`` with its rule jitted (``total_cap_step`` compiled by Numba: the
   reference interpreter runs the same function in Python, and a live run the same jitted step one
   instant at a time on its held book, so the rule exists once).
3. **Pass 2** (``capped_module``): the module with each cap op swapped for a ``stored`` op — the
   mechanism that feeds artifact values into the flow — filled from the step's result placed on each
   key's timeline; ops only the cap read are dropped, and TimingGate, Execution and every other node
   run in the kernels per key as usual.

Both passes keep every source, so each key's timeline (and every node's emission) is a plain run's.
Nodes upstream of the cap that other nodes also read are computed in both passes.
"""

from __future__ import annotations

from typing import Any, Mapping

import numba
import numpy as np

from qmtl.codegen.generate import value_buffers
from qmtl.ir import ops as opreg
from qmtl.ir.module import Module, Op, make_attrs
from qmtl.ir.types import frame

from .artifacts import Series
from .reuse import StoredColumns, on_timeline, without_dead_ops

#: the columns of a cap's operands recorded in pass 1
OPERAND_COLUMNS = ("target", "close")

#: the rule (``qmtl.ir.ops.total_cap_step``) jitted: the engine's step and a live run's (``qmtl.live``)
jitted_step = numba.njit(cache=True, nogil=True)(opreg.total_cap_step)


def cross_ops(module: Module) -> list[Op]:
    """The module's cross-instrument ops (``total_cap``), in module order."""
    return [op for op in module.ops if opreg.REGISTRY[op.name].kind == "cross"]


def operands_module(module: Module, caps: list[Op]) -> Module:
    """Pass 1: the outputs holding a cap (and the sources), each cap op replaced by the frame of its
    operands, and only the ops they need."""
    values = {op.result for op in caps}
    swapped = tuple(
        Op(op.result, "make_frame", op.operands, make_attrs({"columns": OPERAND_COLUMNS}),
           frame(tuple((c, "f64") for c in OPERAND_COLUMNS)), op.loc, f"{op.node_id}#operands")
        if op.result in values else op for op in module.ops)
    kept = tuple(o for o in module.outputs if o.value in values or o.kind == "source")
    restricted = module.with_(ops=swapped, outputs=kept)
    return without_dead_ops(restricted, {})


def operand_record(first: Module, caps: list[Op], clock: Mapping[str, int | None]) -> dict[str, tuple[list[str], int]]:
    """Pass 1's record request (``KeyRuntime``'s ``record``): each cap's operand frame in
    ``first`` (``operands_module``) → (its buffers, its clock)."""
    values = {c.result for c in caps}
    return {op.result: ([b for b, _ in value_buffers(op)], int(clock.get(op.result) or 0))
            for op in first.ops if op.result in values}


def capped(caps: list[Op], recorded: Mapping[str, Mapping[Any, tuple]], keys: Mapping[str, Any],
           clock: Mapping[str, int | None], books: Mapping[str, tuple] | None = None) -> dict[str, Series]:
    """The step: each cap op's value for every key, from pass 1's recorded operands (value → run
    key → (bar-open ts, {0: targets, 1: closes})).  ``keys``: value → its run keys in the reference
    interpreter's order (None: the value is one series, the same in every key).  ``books``: value →
    the (held, mark) arrays its step continues from and leaves updated, one entry per key of
    ``recorded`` in that order (a live run's held book, ``qmtl.live.held``; None: a flat book)."""
    out: dict[str, Series] = {}
    for op in caps:
        per_key = recorded[op.result]
        order = keys.get(op.result)
        names = [next(iter(per_key))] if order is None else [k for k in order if k in per_key]
        interval = int(clock.get(op.result) or 0)
        ts = [np.asarray(per_key[k][0], dtype=np.int64) for k in names]
        cols = [list(per_key[k][1].values()) for k in names]
        result = opreg.total_cap([t + interval for t in ts], [c[0] for c in cols], [c[1] for c in cols],
                                 float(op.attr("max_total_notional")), step=jitted_step,
                                 book=None if books is None else books[op.result])
        labels = [None] if order is None else names
        out[op.result] = Series(
            np.array([k for k, t in zip(labels, ts) for _ in range(len(t))], dtype=object),
            np.concatenate(ts) if ts else np.zeros(0, np.int64),
            {"value": np.concatenate(result) if result else np.zeros(0)})
    return out


def capped_module(module: Module, caps: list[Op], clock: Mapping[str, int | None]) -> Module:
    """Pass 2: ``module`` with each cap op read like a stored value (same name, type and NodeID)."""
    hits = {op.result: Op(op.result, "stored", (), make_attrs({"node_id": op.node_id,
                                                                "interval": int(clock.get(op.result) or 0)}),
                          op.type, op.loc, op.node_id) for op in caps}
    return without_dead_ops(module, hits)


def on_timelines(series: Mapping[str, Series], keys: Mapping[str, Any], timelines: Mapping[Any, Any],
                 clock: Mapping[str, int | None]) -> dict[Any, dict[str, StoredColumns]]:
    """Per run key, each capped value placed on that key's timeline (a value that is one series is
    the same for every key)."""
    out: dict[Any, dict[str, StoredColumns]] = {}
    for value, s in series.items():
        for key, timeline in timelines.items():
            own = key if keys.get(value) is not None else None
            out.setdefault(key, {})[value] = on_timeline(s, own, timeline.close, int(clock.get(value) or 0),
                                                          "series", ["float64"])
    return out



def on_window(ts: np.ndarray, values: np.ndarray, close: Any, interval: int,
              carried: float) -> tuple[StoredColumns, float]:
    """One key's capped entries (bar-open ``ts`` on the cap's clock, ``values``) placed on a window
    of its timeline (``close``: the window's tick close times; entries outside it are ignored), with
    ``carried`` — the key's capped value as of its last tick before the window (NaN: none yet) —
    filling the ticks before the window's first entry, as a whole timeline carries it.  Returns the
    columns and the value carried on to the next window.  A run that meets its timeline a window at
    a time (a cluster run's capped pass) places the step's results with it, so its pass 2 reads on
    each tick exactly what the in-memory run's does."""
    closes = np.asarray(close, dtype=np.int64)
    ts = np.asarray(ts, dtype=np.int64)
    inside = (ts + interval >= closes[0]) & (ts + interval <= closes[-1]) if len(closes) else \
        np.zeros(len(ts), dtype=bool)
    series = Series(np.full(int(inside.sum()), None, dtype=object), ts[inside],
                    {"value": np.asarray(values, dtype=np.float64)[inside]})
    cols = on_timeline(series, None, closes, interval, "series", ["float64"])
    return cols, carry(cols, carried)


def carry(cols: StoredColumns, carried: float) -> float:
    """Fill the ticks of a window's capped ``cols`` before its first entry with ``carried`` (the
    value as of the key's previous tick, NaN: none yet), in place; returns the value as of the
    window's last tick, to carry on.  A live run's instants and a cluster run's windows both meet a
    key's timeline a stretch at a time."""
    first = int(np.argmax(cols.present)) if cols.present.any() else len(cols.present)
    cols.buffers[0][:first] = carried
    return float(cols.buffers[0][-1]) if len(cols.present) else carried
