"""A portfolio-total cap (``total_cap``) in a cluster run: the instruments' cap operands meet at one
key of the dataflow, and the capped values go back to each instrument's second pass.

The in-memory run does the cap in two passes around one step over the whole run
(``qmtl.runtime.cross``).  A cluster run computes each instrument in its own partition and no
process holds the whole run, so the same three stages are steps of the one Bytewax dataflow:

1. **Pass 1** (the flow's ``kernels`` step, ``OperandsLogic``): each instrument's window runs
   through ``cross.operands_module``'s kernels, which record each cap's operands (target, close) at
   its ticks.  The window goes on to the instrument's pass 2 (same key), its operands to ``CAP``.
2. **The cap step** (``CAP``, ``CapLogic``): Bytewax's keyed exchange brings every instrument's
   operands to the one worker that owns ``CAP``.  Its watermark is the earliest, over the instruments
   not finished, of the last close instant each has handed out; every instant up to it is complete
   (an instrument's windows come in time order), so the step decides the operands pending up to it
   with ``cross.capped`` — the jitted rule — on the held book it carries (each instrument's held
   capped target and last close), exactly as a live run steps its held book an instant at a time.
   Deciding the instants in stretches gives the whole run's step bit for bit: all entries of an
   instant are decided together, in the same instrument order (``PartitionPlan.value_keys``).
   Each instrument gets back its capped entries and how far they are decided.
3. **Pass 2** (``CappedLogic``, per instrument): keeps its windows until the capped values cover
   them, then runs each through ``cross.capped_module``'s compiled kernels (the cap read like a
   stored value, carried between windows: ``cross.on_window``) and hands its rows to the sink.

Memory: the cap step holds only the operands not yet decided — those after the watermark, i.e.
the lead of the fastest instrument over the slowest (Bytewax polls the partitions in turn, so a
few batches each) — and pass 2 holds the windows waiting for the cap (likewise).  An instrument
whose data starts much later than the others holds everyone's operands and windows until its first
batch arrives: at worst the whole run's operands (two floats per entry) and, per instrument, its
windows of bars.  All of it — the held book, the pending operands and windows, both passes' kernel
state — is in Bytewax's recovery snapshots, so a killed run resumes from the last one.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, Mapping

import numpy as np
from bytewax.operators import StatefulLogic

from . import cross
from .flow import note_failure, part_name
from .key_runtime import KeyRuntime, LazyRuntime

#: the routing key of the cap step
CAP = "\x00cap"


class OperandsLogic(StatefulLogic):
    """Pass 1 of one instrument: runs each window (a ``cluster.Window``) through the operands
    module and emits ``(window, {cap value: (ts, {0: targets, 1: closes})})``."""

    def __init__(self, make: Callable[[Any], KeyRuntime], resume: dict | None) -> None:
        self.runtime = LazyRuntime(make, resume)

    def on_item(self, window: Any) -> tuple[list, bool]:
        rt = self.runtime.of(window)
        rt.run_window(window.timeline)
        return [(window, rt.recorded_rows())], window.last

    def snapshot(self) -> dict | None:
        return self.runtime.snapshot()


class CapExchange:
    """The steps after pass 1 (``attach``), for a cluster flow whose module holds cap ops ``caps``.

    ``keys``: every run key of the plan; ``order``: cap value → its keys in the reference's order
    (None: the value is one series, the same in every key); ``clock``: value → its clock (s);
    ``make_second``: builds an instrument's pass-2 runtime from its first window."""

    def __init__(self, caps: list, keys: tuple, order: Mapping[str, Any], clock: Mapping[str, Any],
                 make_second: Callable[[Any], KeyRuntime]) -> None:
        self.caps, self.keys = list(caps), tuple(keys)
        self.order = {op.result: order.get(op.result) for op in caps}
        self.clock = {op.result: int(clock.get(op.result) or 0) for op in caps}
        self.make_second = make_second

    def attach(self, first: Any) -> Any:
        """Pass 1's stream → the rows pass 2 emits (``(key, start, rows, last)``, as the sink takes)."""
        import bytewax.operators as op
        operands = op.map("to_cap", first, lambda item: (CAP, _operands(item[1])))
        # the cap step's items are (CAP, (instrument, message)): routed on to each instrument
        decided = op.map("from_cap", op.stateful("cap", operands, lambda resume: CapLogic(self, resume)),
                         lambda item: item[1])
        windows = op.map("to_second", first, lambda item: (item[0], ("window", item[1][0])))
        both = op.merge("windows_and_capped", windows, decided)
        return op.stateful("capped_kernels", both, lambda resume: CappedLogic(self, resume))

    def sources(self, value: str) -> list:
        """The keys whose operands the step of cap ``value`` reads: each of its keys, or (a value
        that is one series, computed alike by every key) the first key's."""
        order = self.order[value]
        return list(self.keys[:1]) if order is None else list(order)


def _operands(item: tuple) -> tuple:
    """What the cap step needs of one pass-1 window: key, start, tick count, last close, operands."""
    window, recorded = item
    close = window.timeline.close
    n = len(close)
    return (window.key, window.start, n, int(close[n - 1]) if n else None, recorded, window.last)


class CapLogic(StatefulLogic):
    """The cap step (see the module docstring): the held book, the operands not yet decided, and how
    far each instrument has handed out its timeline."""

    def __init__(self, exchange: CapExchange, resume: dict | None) -> None:
        self.x = exchange
        if resume is not None:
            self.state = copy.deepcopy(resume)
            return
        self.state = {
            # cap value → (held capped targets, last closes), one entry per key of its step
            "books": {v: (np.zeros(len(exchange.sources(v))), np.full(len(exchange.sources(v)), np.nan))
                      for v in exchange.order},
            # cap value → key → (open ts, targets, closes) not yet decided
            "pending": {v: {} for v in exchange.order},
            "marks": {},      # key → last close instant handed out
            "next": {},       # key → the start of the window expected next
            "early": {},      # key → start → a window that came before the one expected
            "done": [],       # keys whose last window was taken
            "sent": {},       # key → how far its capped values were sent
            "decided": -math.inf,
        }

    def on_item(self, item: tuple) -> tuple[list, bool]:
        try:
            s = self.state
            key = item[0]
            s["early"].setdefault(key, {})[item[1]] = item
            while s["next"].get(key, 0) in s["early"][key]:
                self._take(s["early"][key].pop(s["next"].get(key, 0)))
            out = self._decide()
        except Exception as exc:  # noqa: BLE001 - raised by the runner once the flow stopped
            note_failure(exc)
            return [], True
        finished = len(s["done"]) == len(self.x.keys) and s["decided"] == math.inf
        return out, finished

    def _take(self, item: tuple) -> None:
        key, start, n, last_close, recorded, last = item
        s = self.state
        s["next"][key] = start + n
        if last_close is not None:
            s["marks"][key] = last_close
        if last:
            s["done"].append(key)
        for value in self.x.order:
            if key not in self.x.sources(value):
                continue
            ts, cols = recorded[value]
            had = s["pending"][value].get(key)
            new = (np.asarray(ts, np.int64), np.asarray(cols[0], np.float64), np.asarray(cols[1], np.float64))
            s["pending"][value][key] = new if had is None else tuple(np.concatenate(p) for p in zip(had, new))

    def _decide(self) -> list:
        """Decide every pending instant up to the watermark; per key, its newly capped entries and
        how far they are decided (sent when that moved)."""
        s = self.state
        waiting = [k for k in self.x.keys if k not in s["done"]]
        if any(k not in s["marks"] for k in waiting):
            return []  # an instrument that has not handed out a tick yet: nothing is complete
        watermark = min((s["marks"][k] for k in waiting), default=math.inf)
        if watermark <= s["decided"]:
            return []
        capped: dict[str, Any] = {}
        for op in self.x.caps:
            value = op.result
            interval = self.x.clock[value]
            now: dict[Any, tuple] = {}
            for key in self.x.sources(value):
                ts, target, close = s["pending"][value].get(key, _EMPTY)
                upto = int(np.searchsorted(ts + interval, watermark, side="right"))
                now[key] = (ts[:upto], {0: target[:upto], 1: close[:upto]})
                s["pending"][value][key] = (ts[upto:], target[upto:], close[upto:])
            capped[value] = cross.capped([op], {value: now}, self.x.order, self.x.clock,
                                         books=s["books"])[value]
        s["decided"] = watermark
        out = []
        for key in self.x.keys:
            if key not in s["marks"]:
                continue  # no ticks at all: its one (empty) window needs nothing from the cap
            upto = min(watermark, s["marks"][key])
            entries = {v: series.for_key(key if self.x.order[v] is not None else None)
                       for v, series in capped.items()}
            entries = {v: (ts, cols["value"]) for v, (ts, cols) in entries.items()}
            if upto > s["sent"].get(key, -math.inf) or any(len(ts) for ts, _ in entries.values()):
                s["sent"][key] = upto
                out.append((part_name(key), ("capped", upto, entries)))
        return out

    def snapshot(self) -> dict:
        return copy.deepcopy(self.state)


_EMPTY = (np.zeros(0, np.int64), np.zeros(0), np.zeros(0))


class CappedLogic(StatefulLogic):
    """Pass 2 of one instrument: its windows wait until the cap step has decided past their last
    tick, then run on the capped values (see the module docstring)."""

    def __init__(self, exchange: CapExchange, resume: dict | None) -> None:
        self.x = exchange
        self.state = copy.deepcopy(resume) if resume is not None else {
            "runtime": None,   # the pass-2 runtime's snapshot (kept in the runtime between snapshots)
            "windows": [],     # windows waiting for the cap, in timeline order
            "entries": {v: (np.zeros(0, np.int64), np.zeros(0)) for v in exchange.order},
            "carried": {v: math.nan for v in exchange.order},
            "decided": -math.inf,
        }
        self.runtime = LazyRuntime(exchange.make_second, self.state["runtime"])

    def on_item(self, item: tuple) -> tuple[list, bool]:
        try:
            return self._on_item(item)
        except Exception as exc:  # noqa: BLE001 - raised by the runner once the flow stopped
            note_failure(exc)
            return [], True

    def _on_item(self, item: tuple) -> tuple[list, bool]:
        s = self.state
        if item[0] == "window":
            s["windows"].append(item[1])
            s["windows"].sort(key=lambda w: w.start)
        else:
            _tag, upto, entries = item
            s["decided"] = max(s["decided"], upto)
            for value, (ts, values) in entries.items():
                had_ts, had_values = s["entries"][value]
                s["entries"][value] = (np.concatenate([had_ts, ts]), np.concatenate([had_values, values]))
        out = []
        while s["windows"] and _covered(s["windows"][0], s["decided"]):
            out.append(self._run(s["windows"].pop(0)))
        return out, bool(out) and out[-1][3]

    def _run(self, window: Any) -> tuple:
        s = self.state
        stored = {}
        close = window.timeline.close
        for value, (ts, values) in s["entries"].items():
            interval = self.x.clock[value]
            stored[value], s["carried"][value] = cross.on_window(ts, values, close, interval, s["carried"][value])
            if len(close):
                keep = ts + interval > int(close[len(close) - 1])
                s["entries"][value] = (ts[keep], values[keep])
        rows = self.runtime.of(window).run_window(window.timeline, stored)
        return (window.key, window.start, rows, window.last)

    def snapshot(self) -> dict:
        snap = copy.deepcopy(self.state)
        snap["runtime"] = self.runtime.snapshot()
        return snap


def _covered(window: Any, decided: float) -> bool:
    """Whether the cap has decided every tick of ``window`` (a window without ticks needs nothing)."""
    close = window.timeline.close
    return len(close) == 0 or int(close[len(close) - 1]) <= decided
