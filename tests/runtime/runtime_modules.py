"""Hand-built IR modules for runtime tests (the frontend is not needed to test the runtime)."""

from __future__ import annotations

from qmtl.ir import types as T
from qmtl.ir.module import Module, Op, Output, make_attrs
from qmtl.ir.nodeid import with_node_ids


def op(result: str, opname: str, operands: tuple[str, ...] = (), typ: T.Type = T.F64, **attrs) -> Op:
    return Op(result, opname, tuple(operands), make_attrs(attrs), typ)


def src(result: str = "src", interval: int = 60, tags: tuple[str, ...] = ()) -> Op:
    return op(result, "stream_input", (), T.BARS, interval=interval, tags=tags)


def module(ops: list[Op], outputs: list[Output], name: str = "m") -> Module:
    return with_node_ids(Module(name, tuple(ops), tuple(outputs)))


def momentum(period: int = 30, interval: int = 60, tags: tuple[str, ...] = ()) -> Module:
    """The blueprint's momentum node: (close.pct_change().rolling(5).mean() > 0).astype(int)."""
    return module([
        src(interval=interval, tags=tags),
        op("close", "column", ("src",), name="close"),
        op("pc", "pct_change", ("close",), periods=1),
        op("rm", "rolling_mean", ("pc",), window=5),
        op("zero", "const", (), T.scalar("f64"), value=0.0),
        op("up", "gt", ("rm", "zero"), T.BOOL),
        op("sig", "astype", ("up",), T.I64, dtype="i64"),
        op("frame", "make_frame", ("sig",), T.frame({"signal": "i64"}), columns=("signal",)),
    ], [Output("price", "src", period, interval, "source"),
        Output("momentum_signal", "frame", period, interval)])
