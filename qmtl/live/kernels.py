"""A compiled strategy's kernels run one live bar at a time, after a warm-up from history.

Per instrument (run key) one ``KeyRuntime`` — the same object and the same generated ``process`` the
in-memory and cluster runs use — runs the history as one batch, then each live bar as a batch of one
tick (``KeyRuntime.run_window``).  Batching never changes results (docs/design.md "Batching"), so
the outputs are those of a backtest over history + live bars.  Instead of the warm-up, an
instrument's state may be restored from a snapshot (``KeyRuntime.snapshot``) taken after a bar.

What runs live is what one feed can serve: one ``StreamInput`` (fanning out over the instruments its
tags select), no tag query; anything else is E601 at the source's line.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qmtl import codegen
from qmtl.ir.diagnostics import CompileError, Diagnostic
from qmtl.runtime.binding import bind
from qmtl.runtime.data import Stream
from qmtl.runtime.flow import raise_failure
from qmtl.runtime.key_runtime import KeyRuntime, KeyTimeline, key_streams, key_timeline

from .bars import Bar

#: an output's rows of one run: (ts, {column: values})
Rows = dict[str, tuple[np.ndarray, dict]]


class LiveError(CompileError):
    """A strategy (or history) a live run cannot serve; E601 with the location to fix."""

    def __init__(self, message: str, loc: Any = None) -> None:
        super().__init__(Diagnostic("E601", message, loc))


class LiveKernels:
    """The generated kernels of ``compiled`` per instrument of ``history`` (any source the data
    loader reads)."""

    def __init__(self, compiled: Any, history: Any) -> None:
        module = compiled.module
        sources = [op for op in module.ops if op.name in ("stream_input", "tag_query")]
        queries = [op for op in sources if op.name == "tag_query"]
        if queries:
            raise LiveError("a live run feeds one StreamInput; a TagQueryNode reads a group of instruments "
                            "at once", queries[0].loc)
        if len(sources) != 1:
            raise LiveError(f"a live run feeds one StreamInput from one feed; this strategy has {len(sources)}",
                            sources[1].loc if len(sources) > 1 else None)
        self.source = sources[0]
        self.interval = int(self.source.attr("interval"))
        bindings = bind(module, history)
        self.flow = codegen.split(module).flow
        self.gen = codegen.load(self.flow)
        self.functions = compiled.functions
        streams = key_streams(self.flow, bindings)
        self.history: dict[Any, KeyTimeline] = {
            k: key_timeline(s, {self.source.result: self.interval}) for k, s in streams.items()}
        like = next(iter(streams.values()))[self.source.result]
        self.fields = {f: like.columns[f].dtype for f in like.fields}
        self.tags = {k: s[self.source.result].tags for k, s in streams.items()}
        #: run key → the instrument its history is of (None: history without a symbol column)
        self.symbols = {k: s[self.source.result].symbol for k, s in streams.items()}
        self.runtimes: dict[Any, KeyRuntime] = {}
        ops = self.flow.op_map()
        #: output name → its op, for the outputs that are Execution books
        self.executions = {o.name: ops[o.value] for o in self.flow.outputs
                           if o.value in ops and ops[o.value].name == "execution"}

    @property
    def digest(self) -> str:
        """The generated module's digest: a state snapshot belongs to exactly these kernels."""
        return self.gen.DIGEST

    def key_for(self, symbol: str) -> Any:
        """The run key a bar of ``symbol`` feeds: the key whose history has that symbol (matched
        case-insensitively, as bindings match tags), or the one key of history without a symbol
        column; KeyError when this strategy does not read ``symbol``."""
        for key, stream_symbol in self.symbols.items():
            if stream_symbol is None or stream_symbol.lower() == symbol.lower():
                return key
        raise KeyError(symbol)

    def history_end(self, key: Any) -> int | None:
        """The ts of the last history bar of ``key`` (None: no history for it)."""
        close = self.history[key].close
        return int(close[-1]) - self.interval if len(close) else None

    def warm_up(self, key: Any) -> Rows:
        """Run ``key``'s history; the rows every output emitted over it."""
        timeline = self.history[key]
        rt = self.runtimes[key] = KeyRuntime(self.gen, self.flow, self.functions, timeline, key)
        return self._run(rt, timeline)

    def restore(self, key: Any, snapshot: dict) -> None:
        """Continue ``key`` from a snapshot taken after a bar (instead of the warm-up)."""
        rt = self.runtimes[key] = KeyRuntime(self.gen, self.flow, self.functions, self.history[key], key)
        rt.restore(snapshot)

    def snapshot(self, key: Any) -> dict:
        return self.runtimes[key].snapshot()

    def missing_field(self, bar: Bar) -> str | None:
        """A field the history has (and the kernels may read) that ``bar`` lacks."""
        return next((f for f in self.fields if not bar.has(f)), None)

    def step(self, key: Any, bar: Bar) -> Rows:
        """Run one bar of ``key`` through the kernels; the rows each output emitted at it.  A node's
        error at this bar is raised (``NodeRuntimeError``), as a backtest would."""
        columns = {"ts": np.array([bar.ts], dtype=np.int64)}
        columns.update({f: np.array([bar.field(f)], dtype=dtype) for f, dtype in self.fields.items()})
        stream = Stream(columns, bar.symbol if key is None else key, self.tags[key])
        timeline = KeyTimeline(np.array([bar.ts + self.interval], dtype=np.int64), {self.source.result: stream},
                               {self.source.result: np.ones(1, dtype=bool)}, {self.source.result: self.interval})
        return self._run(self.runtimes[key], timeline)

    @staticmethod
    def _run(rt: KeyRuntime, timeline: KeyTimeline) -> Rows:
        rows: Rows = {}
        # a node's failure is noted inside the runtime (never raised into a dataflow); raise_failure
        # turns it back into the user's error here
        raise_failure(lambda: rows.update(rt.run_window(timeline)))
        return rows
