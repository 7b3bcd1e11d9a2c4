"""Lowering expression trees (``qmtl.runtime.sdk.expr``) to SSA ops.

Post-order, each tree object emitted once per window length (a tree shared by two nodes is one value;
``ewm_mean`` takes its enclosing node's period, so the memo is keyed by period too).  The value a node
produces is named after the node; intermediates are ``node.N``.
"""

from __future__ import annotations

from typing import Any, Callable

from qmtl.runtime.sdk.expr import Expr, Frame

from .builder import LoweringError, ModuleBuilder


class Lowerer:
    """Shared by every node of one strategy; ``node_value`` maps an SDK node to its value name."""

    def __init__(self, builder: ModuleBuilder, node_value: Callable[[Any], str | None]):
        self.builder = builder
        self._node_value = node_value
        self._memo: dict[tuple[int, int], tuple[Expr, str]] = {}

    def lower(self, root: Expr | Frame | dict[str, Expr], final: str, period: int) -> str:
        """Emit ``root`` and return the value that holds it (named ``final`` when it is new)."""
        if isinstance(root, Expr):
            return self._expr(root, final, period, final)
        columns = _frame_columns(root)
        if columns is None:
            assert isinstance(root, Frame) and root.source is not None
            return self._expr(root.source, final, period, final)
        values = tuple(self._expr(e, None, period, final) for e in columns.values())
        loc = next((e.loc for e in columns.values() if e.loc is not None), None)
        return self.builder.emit(final, "make_frame", values, {"columns": tuple(columns)}, loc)

    def _expr(self, e: Expr, result: str | None, period: int, owner: str) -> str:
        key = (id(e), period)
        if key in self._memo:
            return self._memo[key][1]
        if e.op == "node_ref":
            value = self._node_value(e.node)
            if value is None:
                raise LoweringError("E102", f"reads node {getattr(e.node, 'name', None) or e.node!r}, "
                                    "which is not defined before it", e.loc)
        else:
            operands = tuple(self._expr(a, None, period, owner) for a in e.args)
            attrs = dict(e.attrs)
            value = self.builder.emit(result or self.builder.fresh(owner), e.op, operands, attrs, e.loc)
        self._memo[key] = (e, value)
        return value

    def lower_unused(self, built: list[Expr], period: int, owner: str) -> None:
        """Emit what a traced function built but did not return, in the order it was built.

        Those values are dead code: the DCE pass removes them and warns (W201) at the line that built
        them.  Emitted after the node's value, so the names and order of the live ops do not move.
        Selections and literals (``column``, ``const``, ``node_ref``) are not computations — the
        view builds some of them itself — so they are emitted only as operands of a dead computation.
        A dead value that does not type-check is skipped: it never runs, so it cannot fail.
        """
        for e in built:
            if (id(e), period) in self._memo or e.op in _NOT_COMPUTATIONS:
                continue
            mark = self.builder.mark()
            try:
                self._expr(e, None, period, owner)
            except LoweringError:
                self.forget(self.builder.truncate(mark))

    def forget(self, dropped: set[str]) -> None:
        """Forget memo entries for values a failed trace dropped."""
        for key in [k for k, (_, v) in self._memo.items() if v in dropped]:
            del self._memo[key]


_NOT_COMPUTATIONS = frozenset({"node_ref", "column", "const"})


def _frame_columns(root: Frame | dict[str, Expr]) -> dict[str, Expr] | None:
    """A frame's columns by name; ``None`` for a frame that is just another value (bars unchanged)."""
    if isinstance(root, dict):
        return root
    cols = root.explicit_columns
    if cols is None:
        if root.added_columns:  # new columns on bars: the full column set is unknown
            raise LoweringError("E106", "returns bars with added columns; the full column set is known "
                                "only at run time (build pd.DataFrame({...}) of the columns you need)",
                                None)
        return None
    if not cols:
        raise LoweringError("E106", "returns an empty frame", None)
    return cols
