"""``trace(strategy) -> FrontendResult``: run ``setup()``, trace every compute function, emit raw SSA.

Each compute function is called exactly once, on a symbolic view (``symbolic_view``) through a copy
that sees the pandas/numpy shims (``shims``).  If that succeeds, the node is the ops its result tree
lowers to, followed by every other value the call built but did not return (dead code, in the order
it was built, so the DCE pass can name it in a W201 warning); if anything is unsupported, or the
user's code raises, the node becomes ONE ``py_call`` op over its inputs, with the reason kept in the
op and in an N202 note.  A failed trace is never retried.  No canonicalisation, CSE or DCE happens
here.
"""

from __future__ import annotations

import dis
import gc
import inspect
from contextlib import contextmanager
from typing import Any, Iterator

from qmtl.ir.diagnostics import Diagnostic
from qmtl.ir.module import Loc, Module, Output
from qmtl.ir.nodeid import forget_memoised_ids
from qmtl.runtime.sdk.execution import ExecutionStage
from qmtl.runtime.sdk.errors import SDKArgumentError, UnsupportedOperation, recording_unsupported
from qmtl.runtime.sdk.expr import Expr, Frame, as_expr, recording_exprs
from qmtl.runtime.sdk.intervals import parse_interval, parse_period
from qmtl.runtime.sdk.nodes import Node, StreamInput, TagQueryNode
from qmtl.runtime.sdk.source_location import display_path, short, traceback_location
from qmtl.runtime.sdk.strategy import Strategy

from .builder import LoweringError, ModuleBuilder, value_name
from .code_hash import code_hash
from .execution import lower_stage
from .collect import CycleError, assign_names, ordered_nodes, run_capturing_locals
from .result import FrontendResult
from .shims import traced_copy
from .symbolic_view import InputInfo, SymbolicFrameWrapper, SymbolicView, UndeclaredInput

_TAG_QUERY_REASON = "a TagQueryNode's upstream streams are resolved at run time"


def trace(target: Any) -> FrontendResult:
    """Trace a ``Strategy`` subclass or instance into a raw IR module (errors as diagnostics)."""
    forget_memoised_ids()
    with _collector_paused():
        return _Tracer(target).run()


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Tracing allocates a few objects per op that all stay alive (nodes, trees, ops); the cyclic
    collector kept re-scanning them and took ~40% of tracing a 10k-op strategy.  Nothing here needs
    collecting mid-way, so collection waits until tracing ends (then runs as usual)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _Tracer:
    def __init__(self, target: Any):
        self.cls = target if isinstance(target, type) else type(target)
        self.instance = None if isinstance(target, type) else target
        self.source_file = _source_file(self.cls)
        self.diags: list[Diagnostic] = []
        self.builder = ModuleBuilder()
        from .lowering import Lowerer
        self.lowerer = Lowerer(self.builder, self._value_of)
        self.values: dict[int, str] = {}
        self.names: dict[int, str] = {}
        self.clock: dict[int, tuple[int, int]] = {}
        self.functions: dict[str, Any] = {}
        self.outputs: list[Output] = []
        self.sdk_nodes: dict[str, Node] = {}
        self.value_names: set[str] = set()

    # --- driver ----------------------------------------------------------------------------------
    def run(self) -> FrontendResult:
        if not (isinstance(self.cls, type) and issubclass(self.cls, Strategy)):
            self.diags.append(Diagnostic("E303", f"{self.cls.__name__} is not a Strategy subclass",
                                         self._class_loc()))
            return self._result()
        found = self._setup()
        if found is not None:
            nodes, variables = found
            try:
                order = ordered_nodes(nodes)
            except CycleError as err:
                self.diags.append(Diagnostic("E103", str(err), err.node.loc))
                return self._result()
            self.names, name_diags = assign_names(order, variables)
            self.diags.extend(name_diags)
            if not name_diags:
                for node in order:
                    self._lower_node(node)
        return self._result()

    def _result(self) -> FrontendResult:
        module = Module(self.cls.__name__, tuple(self.builder.ops), tuple(self.outputs))
        return FrontendResult(module, self.functions, self.sdk_nodes, self.diags, self.source_file)

    def _setup(self) -> tuple[list[Node], dict[int, str]] | None:
        try:
            strategy = self.instance if self.instance is not None else self.cls()
            strategy.reset_nodes()
            variables = run_capturing_locals(strategy.setup)
        except SDKArgumentError as err:
            self.diags.append(Diagnostic(err.code, err.reason, err.loc))
            return None
        except Exception as err:  # the user's setup() failed: report where, in their file
            loc = traceback_location(err.__traceback__, self.source_file) or self._class_loc()
            self.diags.append(Diagnostic(
                "E302", f"{type(err).__name__}: {err} (while setting up {self.cls.__name__})", loc))
            return None
        nodes = strategy.nodes
        if not nodes:
            self.diags.append(Diagnostic("E304", f"{self.cls.__name__}.setup() added no nodes "
                                         "(call self.add_nodes([...]))", self._class_loc()))
            return None
        return nodes, variables

    # --- one node --------------------------------------------------------------------------------
    def _lower_node(self, node: Node) -> None:
        if any(id(dep) not in self.values for dep in node.inputs):
            return  # an input already failed and was reported
        name = self.names[id(node)]
        try:
            interval, period = self._clock_of(node)
        except SDKArgumentError as err:
            self.diags.append(Diagnostic(err.code, err.reason, err.loc))
            return
        self.clock[id(node)] = (interval, period)
        vname = value_name(name, self.value_names)
        if isinstance(node, StreamInput):
            attrs = {"interval": interval, "tags": node.tags}
            if node.clock != "virtual":  # absent means virtual: existing IR keeps its text
                attrs["clock"] = node.clock
            value = self.builder.emit(vname, "stream_input", (), attrs, node.loc)
            self._output(node, name, value, "source")
        elif isinstance(node, TagQueryNode):
            self._lower_tag_query(node, name, vname, interval, period)
        elif isinstance(node, ExecutionStage):
            try:
                value = lower_stage(self.builder, node.op, node.attrs(), vname, self.values[id(node.source)],
                                    self.values[id(node.price)], node.loc, node.cap_attrs())
            except LoweringError as err:
                self.diags.append(Diagnostic(err.code, f"node {name!r}: {err.message}", err.loc or node.loc))
                return
            self._output(node, name, value, "traced")
        elif node.expr is not None:
            try:
                value = self.lowerer.lower(node.expr, vname, period)
            except LoweringError as err:
                self.diags.append(Diagnostic(err.code, f"node {name!r}: {err.message}", err.loc or node.loc))
                return
            self._output(node, name, value, "traced")
        else:
            self._lower_compute(node, name, vname, period)

    def _lower_tag_query(self, node: TagQueryNode, name: str, vname: str, interval: int, period: int) -> None:
        attrs = {"tags": node.query_tags, "match_mode": node.match_mode.value, "interval": interval}
        if node.compute_fn is None:
            self._output(node, name, self.builder.emit(vname, "tag_query", (), attrs, node.loc), "source")
            return
        query = self.builder.emit(self.builder.fresh(vname), "tag_query", (), attrs, node.loc)
        value = self._opaque(node.compute_fn, (query,), vname, period, _TAG_QUERY_REASON, node.loc, name)
        self._output(node, name, value, "opaque", _TAG_QUERY_REASON)

    def _lower_compute(self, node: Node, name: str, vname: str, period: int) -> None:
        fn = node.compute_fn
        view = SymbolicView(name, [self._input_info(dep) for dep in node.inputs], self._known_info)
        mark = self.builder.mark()
        with recording_unsupported() as seen:
            try:
                with recording_exprs() as built:
                    result = traced_copy(fn)(view)
                value = self._lower_result(result, vname, period, fn)
                self.lowerer.lower_unused(built, period, vname)
            except UndeclaredInput as err:
                self._drop(mark)
                self.diags.append(Diagnostic("E304", str(err), err.loc or node.loc))
                return
            except SDKArgumentError as err:  # the user's mistake: it would fail the same way at run time
                self._drop(mark)
                self.diags.append(Diagnostic(err.code, f"node {name!r}: {err.reason}", err.loc or node.loc))
                return
            except LoweringError as err:
                reason, where = f"{err.message} at {short(err.loc)}", err.loc
            except UnsupportedOperation as err:
                first = seen[0] if seen else err
                reason, where = first.reason, first.loc
            except Exception as err:  # the user's code raised while traced: keep why, run it opaque
                first = seen[0] if seen else None
                where = traceback_location(err.__traceback__, _code_file(fn))
                reason = first.reason if first else f"{type(err).__name__}: {err} at {short(where)}"
                where = first.loc if first else where
            else:
                self._output(node, name, value, "traced")
                return
        self._drop(mark)
        value = self._opaque(fn, tuple(dict.fromkeys(self.values[id(d)] for d in node.inputs)),
                             vname, period, reason, where, name)
        self._output(node, name, value, "opaque", reason)

    def _lower_result(self, result: Any, vname: str, period: int, fn: Any) -> str:
        if isinstance(result, (Expr, Frame)):
            return self.lowerer.lower(result, vname, period)
        if isinstance(result, dict) and result and all(isinstance(k, str) for k in result):
            # {"col": series, ...} is a frame to the runtime too (one column per key, in order)
            return self.lowerer.lower({k: as_expr(v) for k, v in result.items()}, vname, period)
        if result is None and not _returns_a_value(fn):
            raise SDKArgumentError(f"compute function {getattr(fn, '__name__', fn)!r} never returns a value "
                                   "(missing return?)", _function_loc(fn))
        what = ("a FrameWrapper (return its .frame)" if isinstance(result, SymbolicFrameWrapper)
                else f"a {type(result).__name__}")
        raise UnsupportedOperation(f"compute function returns {what}, not a traced series or frame",
                                   _function_loc(fn))

    def _opaque(self, fn: Any, operands: tuple[str, ...], vname: str, period: int, reason: str,
                where: Loc | None, name: str) -> str:
        ch = code_hash(fn, self._node_identity)
        self.functions[ch.value] = fn
        attrs = {"code_hash": ch.value, "fn": getattr(fn, "__name__", type(fn).__name__),
                 "period": period, "deterministic": ch.deterministic, "reason": reason}
        if not ch.deterministic:
            attrs["unstable"] = ", ".join(ch.problems)
        value = self.builder.emit(vname, "py_call", operands, attrs, _function_loc(fn))
        self.diags.append(Diagnostic("N202", f"node {name!r} runs as an opaque Python call: {reason}",
                                     where or _function_loc(fn), severity="note"))
        recursive = sorted(window_dependent_calls(fn))
        if recursive:
            self.diags.append(Diagnostic(
                "W203", f"node {name!r} is opaque and calls {', '.join(recursive)}: there it sees only its "
                f"{period}-bar window, so its values depend on period={period} (traced, it would run "
                "over the full history; docs/design.md \"Opaque functions\")",
                _function_loc(fn), severity="warning"))
        return value

    def _drop(self, mark: int) -> None:
        self.lowerer.forget(self.builder.truncate(mark))

    # --- lookups ---------------------------------------------------------------------------------
    def _output(self, node: Node, name: str, value: str, kind: str, reason: str = "") -> None:
        interval, period = self.clock[id(node)]
        self.values[id(node)] = value
        # a computed node's labels (a source's tags select data; ``vars``: a missing attribute of a
        # node reads as a bar field)
        tags = tuple(vars(node).get("tags", ())) if node.kind == "node" else ()
        self.outputs.append(Output(name, value, period, interval, kind, reason, self._declared_inputs(node, kind),
                                   tags))
        self.sdk_nodes[name] = node

    def _declared_inputs(self, node: Node, kind: str) -> tuple[str, ...]:
        """The values of the nodes ``node`` declared as inputs, in declaration order: they, not
        whatever CSE later merges, draw this node's window edges (``qmtl.ir.regions``)."""
        if kind == "source":
            return ()
        return tuple(dict.fromkeys(self.values[id(d)] for d in getattr(node, "inputs", ()) or ()
                                   if id(d) in self.values))

    def _value_of(self, node: Any) -> str | None:
        return self.values.get(id(node))

    def _node_identity(self, node: Node) -> str | None:
        value = self.values.get(id(node))
        return self.builder.node_id(value) if value is not None else None

    def _input_info(self, node: Node) -> InputInfo:
        value = self.values[id(node)]
        return InputInfo(node, self.names[id(node)], self.clock[id(node)][0], self.builder.types[value])

    def _known_info(self, node: Node) -> InputInfo | None:
        return self._input_info(node) if id(node) in self.values else None

    def _clock_of(self, node: Node) -> tuple[int, int]:
        """(interval, period): declared, else inherited from inputs / the strategy's defaults."""
        ins = [self.clock[id(d)] for d in node.inputs]
        interval = node.interval or (min(i for i, _ in ins) if ins else None) or self._default_interval()
        if interval is None:
            raise SDKArgumentError(f"{type(node).__name__} {self.names[id(node)]!r} needs interval= "
                                   f"(or set {self.cls.__name__}.default_interval)", node.loc)
        period = node.period or self._default_period() or (max(p for _, p in ins) if ins else 1)
        return interval, period

    def _default_interval(self) -> int | None:
        return self._class_default("default_interval", parse_interval)

    def _default_period(self) -> int | None:
        return self._class_default("default_period", parse_period)

    def _class_default(self, attr: str, parse) -> int | None:
        """A ``Strategy`` class attribute parsed like the node argument it stands in for; a bad value is
        reported at the class definition."""
        value = getattr(self.cls, attr, None)
        if value is None:
            return None
        try:
            return parse(value, attr)
        except SDKArgumentError as err:
            raise SDKArgumentError(err.reason, self._class_loc()) from None

    def _class_loc(self) -> Loc | None:
        try:
            return Loc(display_path(self.source_file or "<unknown>"), inspect.getsourcelines(self.cls)[1])
        except (OSError, TypeError):
            return Loc(display_path(self.source_file), 1) if self.source_file else None


#: calls whose result depends on how much history they see (full history when traced)
_RECURSIVE_CALLS = frozenset({"ewm", "cumsum", "cumprod", "cummax", "cummin", "expanding", "ffill",
                              "ema", "rsi", "macd", "atr"})


def window_dependent_calls(fn: Any, depth: int = 3) -> set[str]:
    """Names of history-dependent calls an opaque function makes, itself or through the plain Python
    functions it calls (read from their bytecode names, a few levels deep)."""
    found: set[str] = set()
    seen: set[int] = set()
    stack = [(getattr(fn, "__code__", None), getattr(fn, "__globals__", {}), depth)]
    while stack:
        code, globs, left = stack.pop()
        if code is None or id(code) in seen:
            continue
        seen.add(id(code))
        found |= _RECURSIVE_CALLS & set(code.co_names)
        for const in code.co_consts:
            if isinstance(const, type(code)):
                stack.append((const, globs, left))
        if left:
            for name in code.co_names:
                callee = globs.get(name)
                if inspect.isfunction(callee) and not callee.__module__.startswith("qmtl."):
                    stack.append((callee.__code__, callee.__globals__, left - 1))
    return found


def _source_file(cls: type) -> str | None:
    try:
        return inspect.getsourcefile(cls)
    except TypeError:
        return None


def _code_file(fn: Any) -> str | None:
    code = getattr(fn, "__code__", None)
    return code.co_filename if code is not None else None


def _returns_a_value(fn: Any) -> bool:
    """Whether any ``return`` in ``fn`` may return something other than ``None`` (from its bytecode:
    a bare or implicit return loads the constant None right before returning)."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return True
    previous = None
    for ins in dis.get_instructions(code):
        if ins.opname == "RETURN_CONST" and ins.argval is not None:
            return True
        if ins.opname == "RETURN_VALUE" and not (previous is not None and previous.opname == "LOAD_CONST"
                                                 and previous.argval is None):
            return True
        previous = ins
    return False


def _function_loc(fn: Any) -> Loc | None:
    code = getattr(fn, "__code__", None)
    return Loc(display_path(code.co_filename), code.co_firstlineno) if code is not None else None
