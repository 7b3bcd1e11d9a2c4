"""Lowering one op to the lines of a Numba kernel's per-tick loop body.

The generator (``generate.py``) decides *when* an op runs: at a tick where its value is present
(``p_<value>``, docs/design.md "Timelines").  This module says *what* it computes there: the lines
that set its local ``v_<value>`` (a frame: one local per column) from its operands' expressions, and,
for an op that remembers the past, advance its state.  State lives in the kernel's two flat arrays
(``sf`` float64, ``si`` int64) at offsets fixed here, so one pair of arrays per (kernel, instrument)
survives between batches and snapshots trivially.

Numerics follow the reference implementations (``qmtl.ir.ops``), and through them pandas: rolling
sums and means use pandas' own add/remove update with Kahan compensation and its equal-values rule,
variances Welford's update with the same recompute-on-cancellation rule, rolling min/max a monotonic
deque — O(1) per bar whatever the window — and ``ewm``/``cumsum``/``expanding`` run over the whole
history as pandas does.  Recursive indicators follow TA-Lib.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from qmtl.ir.module import Op


def ident(value: str) -> str:
    """A Python identifier for an SSA value name (``%3`` → ``v_3``)."""
    return "v_" + re.sub(r"\W", "_", value.lstrip("%"))


def col_ident(value: str, column: str) -> str:
    return f"{ident(value)}__{column_part(column)}"


def literal(x) -> str:
    if isinstance(x, bool):
        return "True" if x else "False"
    if isinstance(x, float):
        if math.isnan(x):
            return "np.nan"
        if math.isinf(x):
            return "np.inf" if x > 0 else "-np.inf"
        return repr(x)
    return repr(x)


@dataclass
class StateLayout:
    """Offsets into ``sf``/``si`` and their initial values."""

    f_init: list[float] = field(default_factory=list)
    i_init: list[int] = field(default_factory=list)

    def floats(self, n: int, init: float = math.nan) -> int:
        off = len(self.f_init)
        self.f_init.extend([init] * n)
        return off

    def ints(self, n: int, init: int = 0) -> int:
        off = len(self.i_init)
        self.i_init.extend([init] * n)
        return off


class LoweringError(Exception):
    """An op the kernel emitter does not know (a bug: the plan should not have put it in a kernel)."""


_BINARY = {"add": "{a} + {b}", "sub": "{a} - {b}", "mul": "{a} * {b}", "div": "_div({a}, {b})",
           "pow": "_pow({a}, {b})", "gt": "{a} > {b}", "ge": "{a} >= {b}", "lt": "{a} < {b}",
           "le": "{a} <= {b}", "eq": "{a} == {b}", "ne": "{a} != {b}",
           "and": "({a} != 0) and ({b} != 0)", "or": "({a} != 0) or ({b} != 0)",
           "maximum": "_nanwins_max({a}, {b})", "minimum": "_nanwins_min({a}, {b})"}
_UNARY = {"neg": "-{a}", "abs": "abs({a})", "not": "{a} == 0", "log": "np.log(float({a}))",
          "exp": "np.exp(float({a}))", "sqrt": "np.sqrt(float({a}))", "sign": "np.sign(float({a}))",
          "square": "float({a}) * float({a})", "reciprocal": "1.0 / float({a})",
          "cbrt": "np.cbrt(float({a}))", "trunc": "np.trunc(float({a}))"}
_NUMPY_UNARY = ("tanh", "sinh", "cosh", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "arcsinh",
                "arccosh", "arctanh", "log1p", "expm1", "log10", "log2", "floor", "ceil", "exp2", "rint")
_UNARY.update({fn: f"np.{fn}(float({{a}}))" for fn in _NUMPY_UNARY})

#: ops that read a bool operand as a bool (every other op reads it as the number pandas would: 1.0/0.0)
_BOOL_NATIVE = frozenset({"astype", "column", "make_frame", "and", "or", "not", "where"})

_COMMUTATIVE = frozenset({"add", "mul", "eq", "ne", "and", "or", "maximum", "minimum"})

#: windowed statistics sharing one state machine (rolling_* with a window, expanding_* without)
_STATS = ("mean", "sum", "min", "max", "std", "var")


class Lowerer:
    """Emits, op by op, the lines that run when the op's value is present."""

    def __init__(self, operand_expr, type_of, is_literal=lambda v: False):
        self.layout = StateLayout()
        self.operand = operand_expr  # value name → expression for its scalar at tick t
        self.type_of = type_of       # value name → qmtl.ir.types.Type
        self.errors: list[str] = []  # names of ops that can raise at run time (astype NaN → int)
        self._is_literal = is_literal  # value name → is it a constant (inlined as a literal)

    def lower(self, op: Op) -> list[str]:
        a = [self.operand(s) for s in op.operands]
        if op.name not in _BOOL_NATIVE:  # Numba has no float(bool): a bool enters arithmetic as 1.0/0.0
            a = [f"(1.0 if {x} else 0.0)" if self.type_of(s).dtype == "bool" else x
                 for s, x in zip(op.operands, a)]
        out = ident(op.result)
        if op.name in _BINARY:
            if op.name in _COMMUTATIVE and self._is_literal(op.operands[0]) and not self._is_literal(op.operands[1]):
                a = [a[1], a[0]]  # literal last: kernels that differ only in NodeID order read the same
            return [f"{out} = " + _BINARY[op.name].format(a=a[0], b=a[1])]
        if op.name in _UNARY:
            return [f"{out} = " + _UNARY[op.name].format(a=a[0])]
        for prefix in ("rolling_", "expanding_"):
            if op.name.startswith(prefix):
                window = int(op.attr("window")) if prefix == "rolling_" else 0
                return self._stat(op, a, out, op.name.removeprefix(prefix), window)
        handler = getattr(self, "_" + op.name, None)
        if handler is None:
            raise LoweringError(f"no kernel lowering for op {op.name!r}")
        return handler(op, a, out)

    # --- structural / element-wise with attributes ------------------------------------------------

    def _column(self, op, a, out):
        src_type = self.type_of(op.operands[0])
        if src_type.kind == "frame":
            return [f"{out} = {col_ident(op.operands[0], op.attr('name'))}"]
        return [f"{out} = {a[0]}"]  # a bars column: operand_expr already indexed the field

    def _make_frame(self, op, a, out):
        return [f"{col_ident(op.result, c)} = {x}" for c, x in zip(op.attr("columns"), a)]

    def _clip(self, op, a, out):
        lo, hi = op.attr("lower"), op.attr("upper")
        return [f"{out} = _clip(float({a[0]}), {literal(-math.inf if lo is None else float(lo))}, "
                f"{literal(math.inf if hi is None else float(hi))})"]

    def _fillna(self, op, a, out):
        return [f"{out} = _fillna(float({a[0]}), {literal(float(op.attr('value')))})"]

    def _astype(self, op, a, out):
        dtype = op.attr("dtype")
        if dtype == "f64":
            if self.type_of(op.operands[0]).dtype == "bool":
                return [f"{out} = 1.0 if {a[0]} else 0.0"]
            return [f"{out} = float({a[0]})"]
        if dtype == "bool":
            return [f"{out} = {a[0]} != 0"]
        if self.type_of(op.operands[0]).dtype != "f64":
            return [f"{out} = np.int64({a[0]})"]
        self.errors.append(op.result)
        code = len(self.errors)
        return [f"if {a[0]} != {a[0]}:",
                f"    return t, {code}  # NaN cannot become an integer (pandas raises too)",
                f"{out} = np.int64({a[0]})"]

    def _where(self, op, a, out):
        return [f"{out} = {a[1]} if {a[0]} != 0 else {a[2]}"]

    # --- lags --------------------------------------------------------------------------------------

    def _lagged(self, op, a, out, expr: str):
        k = int(op.attr("periods", 1))
        if k == 0:
            return [f"{out} = " + expr.format(x=f"float({a[0]})", lag=f"float({a[0]})")]
        buf = self.layout.floats(k + 1)
        cnt = self.layout.ints(1)
        lag = f"sf[{buf} + (si[{cnt}] - 1 - {k}) % {k + 1}]"
        return [f"sf[{buf} + si[{cnt}] % {k + 1}] = float({a[0]})",
                f"si[{cnt}] += 1",
                f"{out} = np.nan",
                f"if si[{cnt}] > {k}:",
                f"    {out} = " + expr.format(x=f"float({a[0]})", lag=lag)]

    def _shift(self, op, a, out):
        return self._lagged(op, a, out, "{lag}")

    def _diff(self, op, a, out):
        return self._lagged(op, a, out, "{x} - {lag}")

    def _pct_change(self, op, a, out):
        return self._lagged(op, a, out, "_div({x}, {lag}) - 1.0")

    # --- windowed statistics (pandas' online updates) -------------------------------------------------

    def _stat(self, op, a, out, stat: str, window: int):
        """rolling_<stat> (``window`` > 0) or expanding_<stat> (``window`` = 0, nothing leaves)."""
        mp = op.attr("min_periods")
        minp = (window if mp is None else int(mp)) if window else int(1 if mp is None else mp)
        ring = max(window, 1)
        x = f"float({a[0]})"
        if stat in ("min", "max"):
            sf_ = self.layout.floats(ring + 1)      # ring of values, then the running extreme (expanding)
            si_ = self.layout.ints(ring + 4)       # count, nobs, head, tail, deque of push indices
            kind = 1 if stat == "max" else 0
            return [f"{out} = _extreme_push(sf, {sf_}, si, {si_}, {window}, {x}, {kind}, {minp})"]
        if stat in ("sum", "mean"):
            sf_ = self.layout.floats(4 + window, 0.0)  # sum, comp_add, comp_remove, prev, ring
            si_ = self.layout.ints(4)                  # count, nobs, neg_ct, n_same
            kind = 1 if stat == "mean" else 0
            return [f"{out} = _sum_push(sf, {sf_}, si, {si_}, {window}, {x}, {kind}, {minp})"]
        ddof = int(op.attr("ddof", 1))
        sf_ = self.layout.floats(4 + window, 0.0)      # mean, ssqdm, comp_add, comp_remove, ring
        si_ = self.layout.ints(3)                      # count, nobs, numerically unstable
        take_root = 1 if stat == "std" else 0
        return [f"{out} = _var_push(sf, {sf_}, si, {si_}, {window}, {x}, {max(minp, 1)}, {ddof}, {take_root})"]

    # --- whole-history ops -----------------------------------------------------------------------------

    def _ewm_mean(self, op, a, out):
        st = self.layout.floats(2, 0.0)  # weighted average, old weight
        cnt = self.layout.ints(2)        # pushes, observations
        adjust = bool(op.attr("adjust", True))
        return [f"{out} = _ewm_push(sf, {st}, si, {cnt}, float({a[0]}), {float(op.attr('alpha'))!r}, {adjust})"]

    def _cumulative(self, op, a, out, kind: int, init: float):
        st = self.layout.floats(1, init)
        return [f"{out} = _cum_push(sf, {st}, float({a[0]}), {kind})"]

    def _cumsum(self, op, a, out):
        return self._cumulative(op, a, out, 0, 0.0)

    def _cumprod(self, op, a, out):
        return self._cumulative(op, a, out, 1, 1.0)

    def _cummax(self, op, a, out):
        return self._cumulative(op, a, out, 2, -math.inf)

    def _cummin(self, op, a, out):
        return self._cumulative(op, a, out, 3, math.inf)

    def _ffill(self, op, a, out):
        st = self.layout.floats(1)
        return [f"if {a[0]} == {a[0]}:",
                f"    sf[{st}] = float({a[0]})",
                f"{out} = sf[{st}]"]

    # --- recursive (TA-Lib) ----------------------------------------------------------------------

    def _ema(self, op, a, out):
        p = int(op.attr("period"))
        st = self.layout.floats(2, 0.0)  # running seed sum, then the EMA value
        cnt = self.layout.ints(1)
        return [f"_ema_step(sf, {st}, si, {cnt}, float({a[0]}), {p})",
                f"{out} = sf[{st} + 1] if si[{cnt}] >= {p} else np.nan"]

    def _rsi(self, op, a, out):
        p = int(op.attr("period"))
        st = self.layout.floats(3, 0.0)  # previous price, average gain, average loss
        cnt = self.layout.ints(1)
        return [f"_rsi_step(sf, {st}, si, {cnt}, float({a[0]}), {p})",
                f"{out} = _rsi_value(sf[{st} + 1], sf[{st} + 2]) if si[{cnt}] > {p} else np.nan"]

    def _atr(self, op, a, out):
        p = int(op.attr("period"))
        st = self.layout.floats(2, 0.0)  # previous close, average true range
        cnt = self.layout.ints(1)
        return [f"_atr_step(sf, {st}, si, {cnt}, float({a[0]}), float({a[1]}), float({a[2]}), {p})",
                f"{out} = sf[{st} + 1] if si[{cnt}] > {p} else np.nan"]

    def _macd(self, op, a, out):
        fast, slow, sig = (int(op.attr(k, d)) for k, d in (("fast", 12), ("slow", 26), ("signal", 9)))
        st = self.layout.floats(7, 0.0)  # fast sum/ema, slow sum/ema, signal sum/ema, macd line
        cnt = self.layout.ints(1)
        cols = ", ".join(col_ident(op.result, c) for c in ("macd", "macdsignal", "macdhist"))
        return [f"_macd_step(sf, {st}, si, {cnt}, float({a[0]}), {fast}, {slow}, {sig})",
                f"{cols} = _macd_value(sf, {st}, si[{cnt}], {slow}, {sig})"]


def column_part(name) -> str:
    """A column name as part of an identifier."""
    return re.sub(r"\W", "_", str(name))
