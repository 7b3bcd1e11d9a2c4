"""The IR's data: one ``Module`` per strategy, a flat list of SSA definitions, and named outputs.

Invariants (checked by ``qmtl.ir.verifier.verify``, not here, so building a broken module for a test
or a lint is possible):

* every ``Op.result`` is defined exactly once (single assignment);
* every operand names a value defined *earlier* in ``Module.ops`` (definition before use, hence no
  cycles);
* ``Op.name`` is registered in ``qmtl.ir.ops.REGISTRY`` and operands/attrs match its schema;
* ``Op.node_id``, when set, equals ``qmtl.ir.nodeid.node_ids(module)[op.result]``.

Attribute values are JSON-like and hashable: ``None | bool | int | float | str | tuple[...]``.
Attributes are stored as a tuple of ``(key, value)`` pairs sorted by key, so two ops that mean the
same thing compare equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterator, Union

from .types import Type

AttrValue = Union[None, bool, int, float, str, tuple["AttrValue", ...]]


@dataclass(frozen=True, slots=True)
class Loc:
    """Where an op came from in the user's strategy file (1-based line, 0 = unknown column)."""

    file: str
    line: int
    col: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" + (f":{self.col}" if self.col else "")


@dataclass(frozen=True, slots=True)
class Op:
    """One SSA definition: ``%result = name(operands) {attrs} : type``."""

    result: str
    name: str
    operands: tuple[str, ...] = ()
    attrs: tuple[tuple[str, AttrValue], ...] = ()
    type: Type = field(default_factory=lambda: Type("opaque"))
    loc: Loc | None = None
    node_id: str | None = None

    def attr(self, key: str, default: AttrValue = None) -> AttrValue:
        for k, v in self.attrs:
            if k == key:
                return v
        return default

    @property
    def attr_dict(self) -> dict[str, AttrValue]:
        return dict(self.attrs)

    def with_(self, **changes) -> "Op":
        return replace(self, **changes)


def make_attrs(mapping: dict[str, AttrValue]) -> tuple[tuple[str, AttrValue], ...]:
    """Attributes in canonical (sorted) order, lists turned into tuples so they hash."""

    def freeze(v):
        if isinstance(v, (list, tuple)):
            return tuple(freeze(x) for x in v)
        return v

    return tuple(sorted((k, freeze(v)) for k, v in mapping.items()))


@dataclass(frozen=True, slots=True)
class Output:
    """A named result of the strategy: an SDK ``Node``'s value and the window it was declared with.

    ``period`` is the warm-up gate: the runtime emits no value for this output until every input of
    the node has ``period`` bars.  ``kind`` is ``source`` (a StreamInput or TagQueryNode), ``traced`` or ``opaque``
    (for the compile summary).

    ``inputs`` are the value names of the SDK node's *declared* inputs (its ``input=`` nodes), in
    declaration order; sources have none.  They draw the node's window edges (``qmtl.ir.regions``):
    after CSE another node's output can be an op inside this node, and only the declared inputs say
    that this node computes it over its own window rather than reading that node's emitted values.
    A non-source output with no inputs (IR written before they were recorded) falls back to treating
    every other output's value as a boundary.
    """

    name: str
    value: str
    period: int
    interval: int
    kind: str = "traced"
    reason: str = ""
    inputs: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()  # the SDK node's labels for tag queries (``Node(tags=...)``), not identity


@dataclass(frozen=True, slots=True)
class Module:
    name: str
    ops: tuple[Op, ...] = ()
    outputs: tuple[Output, ...] = ()

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)

    def op_map(self) -> dict[str, Op]:
        return {op.result: op for op in self.ops}

    def output(self, name: str) -> Output:
        for out in self.outputs:
            if out.name == name:
                return out
        raise KeyError(name)

    def output_name(self, value: str) -> str:
        """The name of the (first) output whose value is ``value``, else ``value`` itself: messages
        about an op name the SDK node the user wrote, and an op inside a node has no output of its own."""
        return next((o.name for o in self.outputs if o.value == value), value)

    def users(self) -> dict[str, list[str]]:
        """value name → names of the ops that read it, in module order."""
        out: dict[str, list[str]] = {op.result: [] for op in self.ops}
        for op in self.ops:
            for src in op.operands:
                out.setdefault(src, []).append(op.result)
        return out

    def with_(self, **changes) -> "Module":
        return replace(self, **changes)


def without_locs(module: Module) -> Module:
    """``module`` with every op's source location removed: locations never change what a module
    computes (nor its NodeIDs), so dumps meant for diffs leave them out."""
    return module.with_(ops=tuple(op.with_(loc=None) for op in module.ops))
