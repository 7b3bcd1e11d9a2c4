"""Helpers for the pass tests: a module builder that infers types from the registry, and a tiny
whole-array evaluator used to check that a pass does not change what a module computes.

The evaluator applies each op's registry reference to whole arrays (random bars in, arrays out).  It is
not the per-tick reference interpreter; it only has to agree with itself before and after a pass.
"""

from __future__ import annotations

import numpy as np

from qmtl.compiler.passes.base import PassContext
from qmtl.ir import ops as opreg
from qmtl.ir.module import Loc, Module, Op, Output, make_attrs
from qmtl.ir.types import Type

FILE = "momentum.py"
_NUMPY = {"f64": np.float64, "i64": np.int64, "bool": np.bool_}


class Builder:
    """Build a module op by op: ``b.op("rolling_mean", x, window=5, line=14)`` returns the value name."""

    def __init__(self, name: str = "test") -> None:
        self.name = name
        self.ops: list[Op] = []
        self.outputs: list[Output] = []
        self.types: dict[str, Type] = {}

    def op(self, opname: str, *operands: str, result: str | None = None, line: int | None = None,
           type: Type | None = None, **attrs) -> str:
        result = result or f"v{len(self.ops)}"
        opdef = opreg.REGISTRY[opname]
        if type is None:
            full = {**opdef.defaults(), **attrs}
            type = opdef.result(tuple(self.types[s] for s in operands), full)
        self.types[result] = type
        loc = Loc(FILE, line) if line is not None else None
        self.ops.append(Op(result, opname, tuple(operands), make_attrs(attrs), type, loc))
        return result

    def source(self, result: str = "bars", tags=("BTC", "price"), interval: int = 60, **kw) -> str:
        return self.op("stream_input", result=result, tags=tuple(tags), interval=interval, **kw)

    def close(self, bars: str, result: str | None = None, field: str = "close") -> str:
        return self.op("column", bars, name=field, result=result)

    def const(self, value, dtype: str = "f64", result: str | None = None) -> str:
        return self.op("const", value=value, dtype=dtype, result=result)

    def output(self, name: str, value: str, period: int, interval: int = 60) -> None:
        self.outputs.append(Output(name, value, period, interval))

    def module(self) -> Module:
        return Module(self.name, tuple(self.ops), tuple(self.outputs))


def run_pass(run, module: Module, ctx: PassContext | None = None) -> tuple[Module, PassContext]:
    ctx = ctx if ctx is not None else PassContext()
    return run(module, ctx), ctx


def random_bars(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 1, n))
    close[rng.random(n) < 0.05] = np.nan  # gaps exercise NaN propagation
    return {"ts": np.arange(n, dtype=np.int64) * 60, "open": close + rng.normal(0, 0.1, n),
            "high": close + 1.0, "low": close - 1.0, "close": close,
            "volume": rng.integers(0, 1000, n).astype(np.int64)}


def evaluate(module: Module, bars: dict[str, np.ndarray]) -> dict[str, object]:
    """output name → its whole-array value (sources all read ``bars``)."""
    env: dict[str, object] = {}
    for op in module.ops:
        env[op.result] = _eval_op(op, [env[s] for s in op.operands], bars)
    return {o.name: env[o.value] for o in module.outputs}


def _eval_op(op: Op, args: list, bars: dict[str, np.ndarray]):
    opdef = opreg.REGISTRY[op.name]
    attrs = op.attr_dict
    if opdef.kind == "source":
        return bars
    if op.name == "const":
        return _NUMPY[attrs.get("dtype", "f64")](attrs["value"])
    if op.name == "ewm_mean":
        attrs.pop("period", None)
    if opdef.reads_time:  # close instants of consecutive 60 s bars (the rewrites never move time)
        attrs["close"] = 60 * (np.arange(len(np.atleast_1d(args[0]))) + 1)
    with np.errstate(all="ignore"):
        return opdef.reference(*args, **attrs)


def assert_same_values(a: dict[str, object], b: dict[str, object]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        x, y = a[name], b[name]
        if isinstance(x, dict):
            assert isinstance(y, dict) and x.keys() == y.keys(), name
            for col in x:
                np.testing.assert_array_equal(np.asarray(x[col]), np.asarray(y[col]), err_msg=name)
        else:
            assert np.asarray(x).dtype == np.asarray(y).dtype, name
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=name)
