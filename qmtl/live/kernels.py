"""A compiled strategy's kernels run one live bar at a time, after a warm-up from history.

Per instrument (run key) one ``KeyRuntime`` — the same object and the same generated ``process`` the
in-memory and cluster runs use — runs the history as one batch, then each live bar as a batch of its
own ticks (``KeyRuntime.run_window``).  Batching never changes results (docs/design.md "Batching"), so
the outputs are those of a backtest over history + live bars.  Instead of the warm-up, an
instrument's state may be restored from a snapshot (``LiveKernels.snapshot``) taken after a bar.

**One feed serves every source of an instrument.**  The feed's bars are of one interval F: the
history's (the smallest step between its bars; the finest source interval when it has fewer than two
bars).  Every ``StreamInput`` of the instrument whose interval I is a whole multiple of
F is served from them, bucketed by binding's rule (``qmtl.runtime.binding.bucket``: bucket
``[b, b+I)``, open first, high max, low min, close last, volume sum):

* a source of interval F takes each feed bar as its bar, at the tick ``ts + F``;
* a coarser source collects the feed bars of its open bucket; the bucket becomes a bar at its close
  ``b+I`` — on the tick of the feed bar that closes exactly there (one tick, both sources present),
  or, when the feed skipped that instant (a gap), as soon as a feed bar opening at or after ``b+I``
  arrives: the bucket's own tick ``b+I`` runs first (only the coarse source present), then the new
  bar's.  A tick where no source has a bar (a 5m-only strategy between buckets) does not exist.

This is binding's bucketing and ``key_timeline``'s union of close instants, one bar at a time.  The
warm-up does not run a bucket the history ends inside: that bucket's bar (the last of its source, and
the only tick at or after its close) is held back and its feed bars seed the live bucket, so history
+ live is the backtest.  The open buckets are part of an instrument's snapshot.

**A portfolio-total cap** (RiskControl ``max_total_notional``, op ``total_cap``) needs every
instrument's target of an instant, so such a strategy runs as the backtest does (``qmtl.runtime.cross``)
but one instant at a time: ``step_instant`` takes the feed bars of every instrument at one bar time,
runs each instrument's kernels up to the cap (pass 1, recording the cap's operands), caps all their
targets in one step on the held book (``held.HeldBook``: each instrument's held capped target and
last close, carried between instants), and runs each instrument's kernels after the cap (pass 2)
on the capped values.  The warm-up is one such instant over the whole history.  The held book and
each instrument's capped value carried to its next tick are part of the snapshot.  One case differs
from the backtest: a coarser source's bucket whose close a gap of the instrument's feed skipped is
closed by its next feed bar, so a cap on that coarser clock counts it at that later instant.

What one feed cannot serve is E601 at the source's line: a tag query (a group of instruments), two
sources of one run key reading different instruments (a pairs strategy), a source interval that is
not a multiple of the feed's, and history off the feed's grid.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from qmtl import codegen
from qmtl.ir.clocks import clocks
from qmtl.ir.diagnostics import CompileError, Diagnostic
from qmtl.runtime.binding import bind, bucket, node_keys, select_stream_input
from qmtl.ir import ops as opreg
from qmtl.runtime.data import Stream
from qmtl.runtime.flow import raise_failure
from qmtl.runtime.key_runtime import KeyRuntime, KeyTimeline, key_streams, key_timeline

from .bars import Bar

#: an output's rows of one run: (ts, {column: values})
Rows = dict[str, tuple[np.ndarray, dict]]
#: a source's open bucket: its feed bars' columns (``ts`` and the fields)
Pending = dict[str, dict[str, np.ndarray]]
#: the layout of ``LiveKernels.snapshot`` (2: the runtime's state and the open buckets; 3: and, with a
#: portfolio-total cap, the first pass's state, the capped values carried and the held book), part of
#: the digest a stored state must match, so a state stored in another layout is warmed up over, not read
SNAPSHOT_LAYOUT = 3


class LiveError(CompileError):
    """A strategy (or history) a live run cannot serve; E601 with the location to fix."""

    def __init__(self, message: str, loc: Any = None, code: str = "E601") -> None:
        super().__init__(Diagnostic(code, message, loc))


class LiveKernels:
    """The generated kernels of ``compiled`` per instrument of ``history`` (any source the data
    loader reads), fed bars of the history's interval."""

    def __init__(self, compiled: Any, history: Any) -> None:
        module = compiled.module
        sources = [op for op in module.ops if op.name in ("stream_input", "tag_query")]
        queries = [op for op in sources if op.name == "tag_query"]
        if queries:
            raise LiveError("a live run feeds StreamInputs of one instrument per run key; a TagQueryNode reads "
                            "a group of instruments at once", queries[0].loc)
        bindings = bind(module, history)
        self.flow = codegen.split(module).flow
        self.functions = compiled.functions
        clock = clocks(self.flow)
        # through the op registry: the cross-instrument machinery is imported only when a cap needs it
        caps = [op for op in self.flow.ops if opreg.REGISTRY[op.name].kind == "cross"]
        #: the module the per-instrument runtimes run (with a cap: pass 2, reading the capped values)
        self.module = self.flow
        #: with a cap: its held book (None without)
        self.book = None
        if caps:
            from qmtl.runtime import cross
            from .held import HeldBook
            self.first = cross.operands_module(self.flow, caps)
            self.first_gen = codegen.load(self.first)
            self.record = cross.operand_record(self.first, caps, clock)
            self.module = cross.capped_module(self.flow, caps, clock)
            self.book = HeldBook(caps, node_keys(module, bindings)[0], clock)
        self.gen = codegen.load(self.module)
        #: source value → its bar interval (s)
        self.intervals = {op.result: int(op.attr("interval")) for op in sources}
        loaded = {op.result: select_stream_input(op, bindings.datasets) for op in sources}
        #: the feed's bar interval (s): every source's is a whole multiple of it
        self.interval = _data_interval(loaded) or min(self.intervals.values())
        for op in sources:
            if self.intervals[op.result] % self.interval:
                raise LiveError(f"%{op.result} has interval {self.intervals[op.result]}s, not a whole multiple of "
                                f"the feed's {self.interval}s bars (the history's interval): one feed serves "
                                f"sources whose bars it can bucket", op.loc)
        streams = key_streams(self.flow, bindings)
        #: run key → its history's feed bars (the loaded stream its sources bucket)
        self.feeds = {k: _feed_of(s, bindings, loaded, sources) for k, s in streams.items()}
        for feed in self.feeds.values():
            if np.any(feed.ts % self.interval):
                raise LiveError(f"the history's bars{_of(feed)} are not all on the feed's {self.interval}s grid",
                                sources[0].loc)
        like = next(iter(self.feeds.values()))
        self.fields = {f: like.columns[f].dtype for f in like.fields}
        #: run key → source value → (symbol, tags) of its bars, as the history's
        self.names = {k: {v: (st.symbol, st.tags) for v, st in s.items()} for k, s in streams.items()}
        #: run key → the instrument its history is of (None: history without a symbol column)
        self.symbols = {k: f.symbol for k, f in self.feeds.items()}
        self.history, self._seeds = {}, {}
        for k, s in streams.items():
            kept, self._seeds[k] = self._held_back(self.feeds[k], s)
            self.history[k] = key_timeline(kept, self.intervals)
        self.runtimes: dict[Any, KeyRuntime] = {}
        #: with a cap: run key → its first pass's runtime
        self.operands: dict[Any, KeyRuntime] = {}
        #: with a cap: run key → cap value → its capped value as of the key's last tick (carried
        #: onto the next window's ticks before its first entry, as a whole run's timeline carries it)
        self.carried: dict[Any, dict[str, float]] = {}
        #: run key → its sources' open buckets
        self.pending: dict[Any, Pending] = {}
        ops = self.flow.op_map()
        #: output name → its op, for the outputs that are Execution books
        self.executions = {o.name: ops[o.value] for o in self.flow.outputs
                           if o.value in ops and ops[o.value].name == "execution"}
        #: Execution output name → its clock (s): its rows' ts are the opens of bars of that interval
        self.clocks = {name: int(clock[op.result]) for name, op in self.executions.items()}

    def _held_back(self, feed: Stream, streams: dict[str, Stream]) -> tuple[dict[str, Stream], Pending]:
        """The warm-up's streams of one key without the buckets its history ends inside, and those
        buckets' feed bars (the live buckets' seeds)."""
        if not len(feed):
            return dict(streams), {}
        last = int(feed.ts[-1])
        kept, seeds = dict(streams), {}
        for v, interval in self.intervals.items():
            start = last // interval * interval
            if interval == self.interval or last + self.interval >= start + interval:
                continue  # the history holds the bucket's close: it runs in the warm-up
            s = streams[v]
            kept[v] = Stream({c: a[:-1] for c, a in s.columns.items()}, s.symbol, s.tags)
            inside = feed.ts >= start
            seeds[v] = {c: feed.columns[c][inside] for c in ("ts", *self.fields)}
        return kept, seeds

    @property
    def capped(self) -> bool:
        """Whether the strategy holds a portfolio-total cap: its instruments then run an instant at a
        time, together (``warm_up_all``, ``step_instant``), never one bar alone."""
        return self.book is not None

    @property
    def digest(self) -> str:
        """The generated modules' digests and the snapshot layout: a state snapshot belongs to exactly
        these kernels."""
        first = f"+{self.first_gen.DIGEST}" if self.capped else ""
        return f"{self.gen.DIGEST}{first}/{SNAPSHOT_LAYOUT}"

    def name_unnamed(self, symbol: str | None, loc: Any = None) -> None:
        """Give history without a ``symbol`` column the instrument the feed names (its subject's last
        token): otherwise a bar of any symbol would feed that history's state (E601 when the feed
        subject is a wildcard and so names none)."""
        unnamed = [k for k, s in self.symbols.items() if s is None]
        if not unnamed:
            return
        if symbol is None:
            raise LiveError("the history has no 'symbol' column, so the feed subject must name its one "
                            "instrument (e.g. bars.BTC), not a wildcard", loc)
        for key in unnamed:
            self.symbols[key] = symbol

    def key_for(self, symbol: str) -> Any:
        """The run key a bar of ``symbol`` feeds: the key whose history has that symbol (matched
        case-insensitively, as bindings match tags; history without a symbol column is the feed's
        instrument, ``name_unnamed``); KeyError when this strategy does not read ``symbol``."""
        for key, stream_symbol in self.symbols.items():
            if stream_symbol is not None and stream_symbol.lower() == symbol.lower():
                return key
        raise KeyError(symbol)

    def history_end(self, key: Any) -> int | None:
        """The ts of the last history feed bar of ``key`` (None: no history for it)."""
        ts = self.feeds[key].ts
        return int(ts[-1]) if len(ts) else None

    def warm_up(self, key: Any) -> Rows:
        """Run ``key``'s history (but the buckets it ends inside); the rows every output emitted over it."""
        if self.capped:
            raise RuntimeError("a capped strategy warms up every instrument at once: warm_up_all")
        self._start_key(key)
        return self._run(self.runtimes[key], self.history[key])

    def warm_up_all(self) -> dict[Any, Rows]:
        """Run every instrument's history (``warm_up``); with a cap, as one instant of all of them,
        so the held book ends where the backtest's step is at the history's end."""
        if not self.capped:
            return {key: self.warm_up(key) for key in self.history}
        for key in self.history:
            self._start_key(key)
        return self._run_instant(dict(self.history))

    def _start_key(self, key: Any) -> None:
        timeline = self.history[key]
        self.runtimes[key] = KeyRuntime(self.gen, self.module, self.functions, timeline, key)
        if self.capped:
            self.operands[key] = KeyRuntime(self.first_gen, self.first, self.functions, timeline, key,
                                            record=self.record)
            self.carried[key] = {}
        self.pending[key] = {v: dict(cols) for v, cols in self._seeds[key].items()}

    def restore(self, key: Any, snapshot: dict) -> None:
        """Continue ``key`` from a snapshot taken after a bar (instead of the warm-up); with a cap,
        the held book is restored once for all keys (``restore_book``)."""
        self._start_key(key)
        self.runtimes[key].restore(snapshot["runtime"])
        self.pending[key] = {v: dict(cols) for v, cols in snapshot["pending"].items()}
        if self.capped:
            self.operands[key].restore(snapshot["operands"])
            self.carried[key] = dict(snapshot["carried"])

    def snapshot(self, key: Any) -> dict:
        """Everything ``key`` carries to its next bar: the runtime's state and the open buckets
        (with a cap also the first pass's state and the capped values carried)."""
        out = {"runtime": self.runtimes[key].snapshot(),
               "pending": {v: {c: a.copy() for c, a in cols.items()} for v, cols in self.pending[key].items()}}
        if self.capped:
            out.update(operands=self.operands[key].snapshot(), carried=dict(self.carried[key]))
        return out

    def snapshot_book(self) -> dict:
        """The held book (with a cap): what the cap's step carries to the next instant."""
        return self.book.snapshot()

    def restore_book(self, snapshot: dict) -> None:
        self.book.restore(snapshot)

    def missing_field(self, bar: Bar) -> str | None:
        """A field the history has (and the kernels may read) that ``bar`` lacks."""
        return next((f for f in self.fields if not bar.has(f)), None)

    def step(self, key: Any, bar: Bar) -> Rows:
        """Run one feed bar of ``key`` through the kernels: the ticks it completes (a bucket a gap
        skipped the close of, then the bar's own), and the rows each output emitted at them.  A
        node's error at this bar is raised (``NodeRuntimeError``), as a backtest would."""
        if self.capped:
            raise RuntimeError("a capped strategy runs every instrument's bar of an instant at once: step_instant")
        return self._run(self.runtimes[key], self._window(key, bar))

    def step_instant(self, bars: Mapping[Any, Bar]) -> dict[Any, Rows]:
        """With a cap: the feed bars of one bar time (run key → its bar; an instrument without a bar
        there is absent) through both passes and the cap's step between them; per key, the rows
        each output emitted at its bar's ticks."""
        return self._run_instant({key: self._window(key, bar) for key, bar in bars.items()})

    def _run_instant(self, timelines: dict[Any, KeyTimeline]) -> dict[Any, Rows]:
        """Pass 1 for each key's window, the held book's step over all their entries, pass 2."""
        from qmtl.runtime import cross
        recorded: dict[str, dict[Any, tuple]] = {v: {} for v in self.record}
        for key, timeline in timelines.items():
            rt = self.operands[key]
            raise_failure(lambda: rt.run_window(timeline))
            for v, rows in rt.recorded_rows().items():
                recorded[v][key] = rows
        for v, (bufs, _clock) in self.record.items():  # instruments without a bar: no entries
            for key in self.history:
                recorded[v].setdefault(key, (np.zeros(0, np.int64), {i: np.zeros(0) for i in range(len(bufs))}))
        stored = self.book.on_windows(recorded, timelines)
        out = {}
        for key, timeline in timelines.items():
            mine = stored.get(key, {})
            for v, cols in mine.items():  # before the window's first entry: the value carried
                self.carried[key][v] = cross.carry(cols, self.carried[key].get(v, np.nan))
            out[key] = self._run(self.runtimes[key], timeline, mine)
        return out

    def _window(self, key: Any, bar: Bar) -> KeyTimeline:
        """The ticks one feed bar of ``key`` completes (a bucket a gap skipped the close of, then the
        bar's own) as a stretch of its timeline; the open buckets move on."""
        row = {"ts": np.array([bar.ts], dtype=np.int64)}
        row.update({f: np.array([bar.field(f)], dtype=dtype) for f, dtype in self.fields.items()})
        pending = self.pending[key]
        closed: dict[str, list[Stream]] = {v: [] for v in self.intervals}
        for v, cols in list(pending.items()):  # buckets the feed skipped the close of
            if int(cols["ts"][0]) // self.intervals[v] * self.intervals[v] + self.intervals[v] <= bar.ts:
                closed[v].append(self._bar(key, v, pending.pop(v)))
        for v, interval in self.intervals.items():
            if interval == self.interval:
                closed[v].append(self._bar(key, v, row))
                continue
            cols = pending.get(v)
            pending[v] = row if cols is None else {c: np.concatenate([cols[c], row[c]]) for c in row}
            if (bar.ts + self.interval) % interval == 0:
                closed[v].append(self._bar(key, v, pending.pop(v)))
        streams = {v: _concat(bars, self._bar(key, v, {c: a[:0] for c, a in row.items()}))
                   for v, bars in closed.items()}
        return key_timeline(streams, self.intervals)

    @staticmethod
    def _run(rt: KeyRuntime, timeline: KeyTimeline, stored: Mapping[str, Any] | None = None) -> Rows:
        rows: Rows = {}
        # a node's failure is noted inside the runtime (never raised into a dataflow); raise_failure
        # turns it back into the user's error here
        raise_failure(lambda: rows.update(rt.run_window(timeline, stored)))
        return rows

    def _bar(self, key: Any, v: str, cols: dict[str, np.ndarray]) -> Stream:
        """Feed bars ``cols`` as source ``v``'s bars: bucketed to its interval by binding's rule."""
        symbol, tags = self.names[key][v]
        return bucket(Stream(cols, symbol, tags), self.intervals[v])


def _concat(bars: list[Stream], empty: Stream) -> Stream:
    if not bars:
        return empty
    if len(bars) == 1:
        return bars[0]
    return Stream({c: np.concatenate([b.columns[c] for b in bars]) for c in bars[0].columns},
                  bars[0].symbol, bars[0].tags)


def _data_interval(loaded: dict[str, tuple[Stream, ...]]) -> int | None:
    """The history's bar interval: the smallest step between consecutive bars of any stream (None
    when no stream has two bars)."""
    steps = [int(np.diff(s.ts).min()) for streams in loaded.values() for s in streams if len(s) > 1]
    return min(steps) if steps else None


def _of(stream: Stream) -> str:
    return f" of {stream.symbol}" if stream.symbol is not None else ""


def _feed_of(streams: dict[str, Stream], bindings: Any, loaded: dict[str, tuple[Stream, ...]],
             sources: list) -> Stream:
    """The loaded stream every source of a run key (its bound ``streams``) buckets: one instrument per
    run key, else E601 at the source that reads another."""
    feed, first = None, None
    for op in sources:
        binding = bindings[op.result]
        mine = streams[op.result]
        # a bound stream is a loaded one bucketed: same symbol and tags (a fanned-out source that lacks
        # ``key`` has an empty stream named like its first, which then reads another instrument)
        found = next(s for s in loaded[op.result] if s.key == mine.key) if binding.fan_out else loaded[op.result][0]
        if feed is not None and found is not feed:
            raise LiveError(f"%{op.result} reads {found.symbol or 'other data'} where %{first.result} reads "
                            f"{feed.symbol or 'its data'} in one run key: a live run feeds one instrument per run "
                            f"key from one feed (a strategy reading several instruments at once is not served)",
                            op.loc)
        feed, first = found, first or op
    return feed
