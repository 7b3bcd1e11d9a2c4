"""Hand-built IR modules for codegen tests (independent of the frontend)."""

from __future__ import annotations

from qmtl.ir import ops as opreg
from qmtl.ir.module import Module, Op, Output, make_attrs
from qmtl.ir.nodeid import with_node_ids
from qmtl.ir.types import BARS


class Builder:
    """Append ops with inferred result types; ``out`` names an SDK node's value."""

    def __init__(self, name: str = "T", interval: int = 60):
        self.name = name
        self.interval = interval
        self.ops: list[Op] = []
        self.outputs: list[Output] = []
        self.types: dict[str, object] = {}

    def op(self, opname: str, /, *operands: str, **attrs) -> str:
        result = f"%{len(self.ops)}"
        opdef = opreg.REGISTRY[opname]
        full = {**opdef.defaults(), **attrs}
        typ = opdef.result(tuple(self.types[o] for o in operands), full)
        self.ops.append(Op(result, opname, tuple(operands), make_attrs(attrs), typ))
        self.types[result] = typ
        return result

    def source(self, tags=()) -> str:
        v = self.op("stream_input", tags=tuple(tags), interval=self.interval)
        self.outputs.append(Output(f"src{len(self.outputs)}", v, 1, self.interval, "source"))
        return v

    def out(self, name: str, value: str, period: int, kind: str = "traced") -> str:
        self.outputs.append(Output(name, value, period, self.interval, kind))
        return value

    def module(self) -> Module:
        return with_node_ids(Module(self.name, tuple(self.ops), tuple(self.outputs)))


def momentum(period: int = 30, window: int = 5) -> Module:
    b = Builder("Momentum")
    src = b.source()
    close = b.op("column", src, name="close")
    mom = b.op("rolling_mean", b.op("pct_change", close), window=window)
    sig = b.op("astype", b.op("gt", mom, b.op("const", value=0.0)), dtype="i64")
    b.out("momentum_signal", b.op("make_frame", sig, columns=("signal",)), period)
    return b.module()
