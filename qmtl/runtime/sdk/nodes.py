"""The SDK's node handles: ``Node``, ``StreamInput``, ``TagQueryNode`` and ``MatchMode``.

A node is a declaration, not a computation: it records what the user asked for (inputs, compute
function or expression, interval, period, name) and the line that built it.  The frontend turns the
declarations into IR; after compiling, the compiler stamps ``node.node_id`` on each of them.

Defaults: a node that omits ``interval`` takes its inputs' clock (else the strategy's
``default_interval``); one that omits ``period`` takes the strategy's ``default_period`` (else the
longest period of its inputs).  Those are resolved by the frontend, which knows the strategy.

Expression API: ``price.close`` / ``price["close"]`` is a symbolic column of a node's value and
``node.ref()`` is the whole value; ``Node(expr=<Expr or {name: Expr}>, name=..., period=...)`` makes a
node whose ops are exactly those the equivalent traced compute function produces.
"""

from __future__ import annotations

import inspect
from enum import Enum
from typing import Any, Callable, Iterable

from qmtl.ir.module import Loc

from .errors import SDKArgumentError
from .expr import Expr, Frame, node_ref
from .intervals import parse_interval, parse_period
from .source_location import user_location


class MatchMode(str, Enum):
    """How a ``TagQueryNode`` matches upstream tags: any of them, or all of them."""

    ANY = "any"
    ALL = "all"


class Node:
    """A computed node: ``Node(input=..., compute_fn=fn)`` or ``Node(expr=...)``."""

    kind = "node"

    def __init__(self, input: "Node | Iterable[Node] | None" = None,
                 compute_fn: Callable[[Any], Any] | None = None, name: str | None = None,
                 interval: int | str | None = None, period: int | None = None, *,
                 expr: Expr | Frame | dict[str, Expr] | None = None, tags: Iterable[str] | None = None):
        self._init_common(name, interval, period)
        # labels a TagQueryNode of any strategy can select this node's values by (not identity)
        self.tags = _tags(tags, "tags", self.loc)
        if (compute_fn is None) == (expr is None):
            raise SDKArgumentError("Node needs exactly one of compute_fn= or expr=", self.loc)
        _check_compute_fn(compute_fn, self.loc)
        self.compute_fn = compute_fn
        self.expr = _check_expr(expr, self.loc) if expr is not None else None
        declared = _as_inputs(input, self.loc)
        derived = expr_inputs(self.expr) if self.expr is not None else ()
        self.inputs = declared + tuple(n for n in derived if all(n is not d for d in declared))
        if compute_fn is not None and not self.inputs:
            raise SDKArgumentError("Node with a compute_fn needs input= (a node or a list of nodes)",
                                   self.loc)

    def _init_common(self, name: str | None, interval: Any, period: Any) -> None:
        self.loc: Loc | None = user_location(3)
        if name is not None and (not isinstance(name, str) or not name):
            raise SDKArgumentError(f"name={name!r} must be a non-empty string", self.loc)
        self.name = name
        self.interval = None if interval is None else _checked(parse_interval, interval, "interval", self.loc)
        self.period = None if period is None else _checked(parse_period, period, "period", self.loc)
        self.node_id: str | None = None
        self.compute_fn = None
        self.expr = None
        self.inputs: tuple[Node, ...] = ()

    # --- expression API ----------------------------------------------------------------------
    def ref(self) -> Expr:
        """This node's whole value as an expression (for series-valued nodes: ``a.ref() - b.ref()``)."""
        return node_ref(self)

    def __getitem__(self, column: str) -> Expr:
        if not isinstance(column, str):
            raise SDKArgumentError(f"node[{column!r}]: a column name must be a string")
        return node_ref(self).column(column)

    def __getattr__(self, name: str) -> Expr:
        # only reached for names that are not real attributes: bar fields such as ``price.close``
        if name.startswith("_"):
            raise AttributeError(name)
        return node_ref(self).column(name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, interval={self.interval}, period={self.period})"


class StreamInput(Node):
    """Bars of the instruments whose tags match; the data is bound by the runtime."""

    kind = "stream_input"

    def __init__(self, tags: Iterable[str] | None = None, interval: int | str | None = None,
                 period: int | None = None, name: str | None = None, clock: str = "virtual"):
        self._init_common(name, interval, period)
        self.tags = _tags(tags, "tags", self.loc)
        if clock not in ("virtual", "wall"):
            raise SDKArgumentError(f"clock={clock!r} must be 'virtual' (backtest/dryrun: the bars' own "
                                   "time) or 'wall' (live)", self.loc)
        # docs/design.md "Clocks of a run": a strategy reads one clock (E320)
        self.clock = clock


class TagQueryNode(Node):
    """Every upstream stream whose tags match the query, resolved at run time."""

    kind = "tag_query"

    def __init__(self, query_tags: Iterable[str], interval: int | str | None = None,
                 period: int | None = None, match_mode: MatchMode | str = MatchMode.ANY,
                 compute_fn: Callable[[Any], Any] | None = None, name: str | None = None):
        self._init_common(name, interval, period)
        self.query_tags = _tags(query_tags, "query_tags", self.loc)
        if not self.query_tags:
            raise SDKArgumentError("TagQueryNode needs at least one query tag", self.loc)
        try:
            self.match_mode = MatchMode(match_mode)
        except ValueError:
            raise SDKArgumentError(f"match_mode={match_mode!r} must be MatchMode.ANY or MatchMode.ALL",
                                   self.loc) from None
        _check_compute_fn(compute_fn, self.loc)
        self.compute_fn = compute_fn


def _check_compute_fn(fn: Any, loc: Loc | None) -> None:
    """A compute function is called with one argument, the view: say so now, at the ``Node(...)``
    line, rather than on the first bar of a run."""
    if fn is None:
        return
    if not callable(fn):
        raise SDKArgumentError(f"compute_fn={fn!r} is not callable", loc)
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or C callable without a signature: trust it
        return
    try:
        signature.bind(object())
    except TypeError:
        name = getattr(fn, "__name__", type(fn).__name__)
        code = getattr(fn, "__code__", None)
        where = f" (defined at {code.co_filename}:{code.co_firstlineno})" if code is not None else ""
        raise SDKArgumentError(f"compute_fn {name}{signature} must take exactly one argument, the view "
                               f"(def {name}(view): ...){where}", loc) from None


def expr_inputs(expr: Expr | Frame | dict[str, Expr]) -> tuple[Node, ...]:
    """The SDK nodes an expression reads, in first-use order."""
    seen: dict[int, Node] = {}
    visited: set[int] = set()
    stack = list(_roots(expr))[::-1]
    while stack:
        e = stack.pop()
        if id(e) in visited:
            continue
        visited.add(id(e))
        if e.op == "node_ref" and e.node is not None:
            seen.setdefault(id(e.node), e.node)
        stack.extend(reversed(e.args))
    return tuple(seen.values())


def _roots(expr: Expr | Frame | dict[str, Expr]) -> list[Expr]:
    if isinstance(expr, Expr):
        return [expr]
    if isinstance(expr, Frame):
        cols = expr.explicit_columns
        return list(cols.values()) if cols is not None else [expr.source]  # type: ignore[list-item]
    return list(expr.values())


def _check_expr(expr: Any, loc: Loc | None) -> Expr | Frame | dict[str, Expr]:
    if isinstance(expr, (Expr, Frame)):
        return expr
    if isinstance(expr, dict) and expr and all(isinstance(k, str) and isinstance(v, Expr)
                                               for k, v in expr.items()):
        return dict(expr)
    raise SDKArgumentError(
        f"expr= must be an expression (e.g. price.close.rolling(5).mean()) or a non-empty dict "
        f"name → expression, got {type(expr).__name__}", loc)


def _as_inputs(value: Any, loc: Loc | None) -> tuple[Node, ...]:
    if value is None:
        return ()
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if not isinstance(item, Node):
            raise SDKArgumentError(
                f"input= must be a node or a list of nodes, got {type(item).__name__}", loc)
    return tuple(items)


def _tags(value: Any, field: str, loc: Loc | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    tags = list(value)
    for tag in tags:
        if not isinstance(tag, str) or not tag:
            raise SDKArgumentError(f"{field}: {tag!r} is not a tag (a non-empty string)", loc)
    return tuple(sorted(set(tags)))


def _checked(parse: Callable[[Any, str], int], value: Any, field: str, loc: Loc | None) -> int:
    try:
        return parse(value, field)
    except SDKArgumentError as err:
        raise SDKArgumentError(err.reason, loc) from None
