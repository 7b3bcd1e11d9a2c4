"""The ``CacheView`` a traced compute function receives: its windows are symbolic frames and series.

It answers what is known at compile time — which inputs a node has, their clocks and value types —
and refuses (``UnsupportedOperation``) what is known only at run time: iterating the view, its
length, NodeID keys.  Reading a node that is not among the node's inputs is the user's mistake and is
reported as an error (``UndeclaredInput``), since the run-time view would not hold it either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from qmtl.ir.types import Type
from qmtl.runtime.sdk.errors import SDKArgumentError, UnsupportedOperation
from qmtl.runtime.sdk.expr import OpaqueWindow, Expr, Frame, UnsupportedAttribute, node_ref
from qmtl.runtime.sdk.nodes import Node
from qmtl.runtime.sdk.source_location import user_location


class UndeclaredInput(Exception):
    """A compute function read a node that is not in its ``input=``."""

    def __init__(self, message: str):
        self.loc = user_location(2)
        super().__init__(message)


@dataclass(frozen=True)
class InputInfo:
    node: Node
    name: str
    interval: int
    value_type: Type


class SymbolicFrameWrapper:
    """What ``view.as_frame(...)`` returns while tracing: ``.frame`` and ``.validate_columns``."""

    def __init__(self, frame: Frame, label: str):
        self.frame = frame
        self._label = label

    def validate_columns(self, columns: Sequence[str]) -> "SymbolicFrameWrapper":
        cols = self.frame.explicit_columns
        missing = [c for c in columns if cols is not None and c not in cols]
        if missing:
            raise UnsupportedOperation(f"{self._label} has no column(s) {missing} (has: {list(cols or ())})")
        return self

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise UnsupportedAttribute(f"unsupported method FrameWrapper.{name}", user_location(2))


class SymbolicView:
    """``view[node][interval]``, ``view.as_frame(node, interval, columns=...)`` over symbolic values."""

    def __init__(self, owner: str, inputs: Sequence[InputInfo], lookup: Callable[[Node], InputInfo | None]):
        self._owner = owner
        self._inputs = list(inputs)
        self._lookup = lookup

    def _info(self, key: Any) -> InputInfo:
        if isinstance(key, Node):
            for info in self._inputs:
                if info.node is key:
                    return info
            known = self._lookup(key)
            name = known.name if known else (key.name or type(key).__name__)
            raise UndeclaredInput(f"node {self._owner!r} reads node {name!r}, which is not in its input=")
        if isinstance(key, str):
            for info in self._inputs:
                if info.name == key:
                    return info
            if key.startswith("blake3:"):
                raise UnsupportedOperation("reading the view by NodeID string (known only after compiling)")
            raise UndeclaredInput(f"node {self._owner!r} reads {key!r}, which is not the name of one of "
                                  f"its inputs ({', '.join(i.name for i in self._inputs)})")
        raise UnsupportedOperation(f"reading the view with a {type(key).__name__} key")

    def window(self, key: Any, interval: Any) -> Frame | Expr:
        """The input's window at ``interval`` — which must be the input's own interval: the run-time
        view holds no other, so asking for one is the user's mistake (E304), not a reason to run the
        node opaque and fail on the first bar."""
        info = self._info(key)
        try:
            from qmtl.runtime.sdk.intervals import parse_interval
            seconds = parse_interval(interval)
        except SDKArgumentError as err:
            raise SDKArgumentError(f"view[{info.name}][{interval!r}]: {err.reason}", user_location(3)) from None
        if seconds != info.interval:
            raise SDKArgumentError(
                f"view[{info.name}][{interval!r}]: node {info.name!r} runs at interval {info.interval}s, "
                f"not {seconds}s (read view[{info.name}][{info.interval}])", user_location(3))
        return _window_value(info)

    def __getitem__(self, key: Any) -> "_SymbolicNodeWindows":
        self._info(key)
        return _SymbolicNodeWindows(self, key)

    def as_frame(self, node: Any, interval: Any, columns: Sequence[str] | None = None) -> SymbolicFrameWrapper:
        value = self.window(node, interval)
        info = self._info(node)
        frame = value.to_frame(info.name) if isinstance(value, Expr) else value
        wrapper = SymbolicFrameWrapper(frame, f"node {info.name!r}")
        if columns is not None:
            wrapper.validate_columns(list(columns))
            wrapper = SymbolicFrameWrapper(Frame(frame.source, frame.added_columns, tuple(columns))
                                           if frame.source is not None else frame[list(columns)],
                                           f"node {info.name!r}")
        return wrapper

    def align_frames(self, requests: Any, window: int | None = None) -> Any:
        raise UnsupportedOperation("view.align_frames(...) (aligning upstreams on timestamps happens at "
                                   "run time)", user_location(2))

    def __contains__(self, key: object) -> bool:
        return any(info.node is key or info.name == key for info in self._inputs)

    def __iter__(self) -> Iterator[str]:
        raise UnsupportedOperation("iterating the view (upstream NodeIDs are known only at run time)",
                                   user_location(2))

    def __len__(self) -> int:
        raise UnsupportedOperation("len() of the view", user_location(2))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise UnsupportedAttribute(f"unsupported method CacheView.{name}", user_location(2))


class _SymbolicNodeWindows:
    def __init__(self, view: SymbolicView, key: Any):
        self._view, self._key = view, key

    def __getitem__(self, interval: Any) -> Frame | Expr:
        return self._view.window(self._key, interval)


def _window_value(info: InputInfo) -> Frame | Expr:
    t = info.value_type
    ref = node_ref(info.node)
    if t.kind == "series":
        return ref
    if t.kind == "frame":
        return Frame(source=ref, known=tuple(c for c, _ in t.columns))
    if t.kind == "opaque":
        return OpaqueWindow(source=ref)
    return Frame(source=ref)
