"""Lowering one op to the lines of a Numba kernel's per-tick loop body.

Every op reads its operands as local scalars (``v_<name>``) of the current tick and defines its own.
Ops that remember the past keep it in the kernel's two flat state arrays (``sf`` float64, ``si``
int64) at offsets fixed here, so state is one pair of arrays per (kernel, instrument) that survives
between batches and snapshots trivially.  A stateful op advances only on ticks where its region is
present (``pres``), which is how a node downstream of another sees only that node's emitted values.

Numerics follow the reference implementations (``qmtl.ir.ops``): pandas for windowed ops (NaN
handling, ``min_periods``, ``ddof``), TA-Lib for the recursive indicators.  Windows are summed afresh
each tick from the ring buffer rather than kept as running sums, so the error never drifts over a
long replay (it stays that of summing ``window`` numbers, as pandas over a window does).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from qmtl.ir.module import Op


def ident(value: str) -> str:
    """A Python identifier for an SSA value name (``%3`` → ``v_3``)."""
    return "v_" + re.sub(r"\W", "_", value.lstrip("%"))


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
    """Offsets into ``sf``/``si`` and their initial values (NaN floats, zero counters)."""

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
    """An op the kernel emitter does not know (a bug: partitioning should have sent it per tick)."""


_BINARY = {"add": "{a} + {b}", "sub": "{a} - {b}", "mul": "{a} * {b}", "div": "_div({a}, {b})",
           "pow": "_pow({a}, {b})", "gt": "{a} > {b}", "ge": "{a} >= {b}", "lt": "{a} < {b}",
           "le": "{a} <= {b}", "eq": "{a} == {b}", "ne": "{a} != {b}",
           "and": "({a} != 0) and ({b} != 0)", "or": "({a} != 0) or ({b} != 0)",
           "maximum": "_nanwins_max({a}, {b})", "minimum": "_nanwins_min({a}, {b})"}
_UNARY = {"neg": "-{a}", "abs": "abs({a})", "not": "{a} == 0", "log": "np.log(float({a}))",
          "exp": "np.exp(float({a}))", "sqrt": "np.sqrt(float({a}))", "sign": "np.sign(float({a}))"}


class Lowerer:
    """Emits the loop body of one kernel, op by op."""

    def __init__(self, operand_expr, pres_expr, type_of):
        self.layout = StateLayout()
        self.operand = operand_expr  # value name → expression for its scalar at tick t
        self.pres = pres_expr        # op result → expression for "its region is present"
        self.type_of = type_of       # value name → qmtl.ir.types.Type
        self.errors: list[str] = []  # names of ops that can raise at run time (astype NaN → int)
        self.ewm_mask: dict[str, int] = {}  # ewm_mean result → leading window rows that are NaN

    def lower(self, op: Op) -> list[str]:
        a = [self.operand(s) for s in op.operands]
        out = ident(op.result)
        if op.name in _BINARY:
            return [f"{out} = " + _BINARY[op.name].format(a=a[0], b=a[1])]
        if op.name in _UNARY:
            return [f"{out} = " + _UNARY[op.name].format(a=a[0])]
        if op.name.startswith("rolling_"):  # rolling_mean/sum/min/max/std/var share one lowering
            return self._rolling(op, a, out, op.name.removeprefix("rolling_"))
        handler = getattr(self, "_" + op.name, None)
        if handler is None:
            raise LoweringError(f"no kernel lowering for op {op.name!r}")
        return handler(op, a, out)

    # --- structural / element-wise with attributes ------------------------------------------------

    def _column(self, op, a, out):
        src_type = self.type_of(op.operands[0])
        if src_type.kind == "frame":
            return [f"{out} = {ident(op.operands[0])}__{_col(op.attr('name'))}"]
        return [f"{out} = {a[0]}"]  # a bars column: operand_expr already indexed the field

    def _const(self, op, a, out):
        return [f"{out} = {literal(op.attr('value'))}"]

    def _make_frame(self, op, a, out):
        return [f"{out}__{_col(c)} = {x}" for c, x in zip(op.attr("columns"), a)]

    def _clip(self, op, a, out):
        lo, hi = op.attr("lower"), op.attr("upper")
        return [f"{out} = _clip(float({a[0]}), {literal(-math.inf if lo is None else float(lo))}, "
                f"{literal(math.inf if hi is None else float(hi))})"]

    def _fillna(self, op, a, out):
        return [f"{out} = _fillna(float({a[0]}), {literal(float(op.attr('value')))})"]

    def _astype(self, op, a, out):
        dtype = op.attr("dtype")
        if dtype == "f64":
            if self.type_of(op.operands[0]).dtype == "bool":  # Numba has no float(bool)
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

    # --- windowed -----------------------------------------------------------------------------------

    def _ring(self, op, x: str, size: int) -> tuple[list[str], int, int]:
        """Push ``x`` into a ring of ``size`` floats when present; returns (lines, buf, counter)."""
        buf = self.layout.floats(size)
        cnt = self.layout.ints(1)
        return ([f"if {self.pres(op.result)}:",
                 f"    sf[{buf} + si[{cnt}] % {size}] = {x}",
                 f"    si[{cnt}] += 1"], buf, cnt)

    def _window(self, op, x: str, size: int) -> tuple[list[str], int, int]:
        """Like ``_ring``, but every slot is stored twice (at ``s`` and ``s + size``), so the newest
        ``size`` entries are always one contiguous run starting at ``(count - size) % size``: the
        window helpers then read them without a modulo per entry (1.7x faster on momentum)."""
        buf = self.layout.floats(2 * size)
        cnt = self.layout.ints(1)
        return ([f"if {self.pres(op.result)}:",
                 f"    _push2(sf, {buf}, si[{cnt}] % {size}, {size}, {x})",
                 f"    si[{cnt}] += 1"], buf, cnt)

    def _lagged(self, op, a, out, expr: str):
        k = int(op.attr("periods", 1))
        if k < 0:  # looks at future bars: never known at the last row of a window
            return [f"{out} = np.nan"]
        if k == 0:
            return [f"{out} = " + expr.format(x=f"float({a[0]})", lag=f"float({a[0]})")]
        lines, buf, cnt = self._ring(op, f"float({a[0]})", k + 1)
        lag = f"sf[{buf} + (si[{cnt}] - 1 - {k}) % {k + 1}]"
        return lines + [f"{out} = np.nan",
                        f"if si[{cnt}] > {k}:",
                        f"    {out} = " + expr.format(x=f"float({a[0]})", lag=lag)]

    def _shift(self, op, a, out):
        return self._lagged(op, a, out, "{lag}")

    def _diff(self, op, a, out):
        return self._lagged(op, a, out, "{x} - {lag}")

    def _pct_change(self, op, a, out):
        return self._lagged(op, a, out, "_div({x}, {lag}) - 1.0")

    def _rolling(self, op, a, out, stat: str):
        w = int(op.attr("window"))
        mp = op.attr("min_periods")
        minp = w if mp is None else int(mp)
        lines, buf, cnt = self._window(op, f"float({a[0]})", w)
        call = f"_rolling_{stat}(sf, {buf}, {w}, si[{cnt}], {minp}"
        call += f", {int(op.attr('ddof', 1))})" if stat in ("std", "var") else ")"
        return lines + [f"{out} = {call}"]

    def _ewm_mean(self, op, a, out):
        p = int(op.attr("period"))
        lines, buf, cnt = self._window(op, f"float({a[0]})", p)
        adjust = bool(op.attr("adjust", True))
        lead = self.ewm_mask.get(op.result, 0)
        return lines + [f"{out} = _ewm_window(sf, {buf}, {p}, si[{cnt}], {float(op.attr('alpha'))!r}, "
                        f"{adjust}, {lead})"]

    # --- recursive (TA-Lib) ----------------------------------------------------------------------

    def _ema(self, op, a, out):
        p = int(op.attr("period"))
        st = self.layout.floats(2, 0.0)  # running seed sum, then the EMA value
        cnt = self.layout.ints(1)
        return [f"if {self.pres(op.result)}:",
                f"    _ema_step(sf, {st}, si, {cnt}, float({a[0]}), {p})",
                f"{out} = sf[{st} + 1] if si[{cnt}] >= {p} else np.nan"]

    def _rsi(self, op, a, out):
        p = int(op.attr("period"))
        st = self.layout.floats(3, 0.0)  # previous price, average gain, average loss
        cnt = self.layout.ints(1)
        return [f"if {self.pres(op.result)}:",
                f"    _rsi_step(sf, {st}, si, {cnt}, float({a[0]}), {p})",
                f"{out} = _rsi_value(sf[{st} + 1], sf[{st} + 2]) if si[{cnt}] > {p} else np.nan"]

    def _atr(self, op, a, out):
        p = int(op.attr("period"))
        st = self.layout.floats(2, 0.0)  # previous close, average true range
        cnt = self.layout.ints(1)
        return [f"if {self.pres(op.result)}:",
                f"    _atr_step(sf, {st}, si, {cnt}, float({a[0]}), float({a[1]}), float({a[2]}), {p})",
                f"{out} = sf[{st} + 1] if si[{cnt}] > {p} else np.nan"]

    def _macd(self, op, a, out):
        fast, slow, sig = (int(op.attr(k, d)) for k, d in (("fast", 12), ("slow", 26), ("signal", 9)))
        st = self.layout.floats(7, 0.0)  # fast sum/ema, slow sum/ema, signal sum/ema, macd line
        cnt = self.layout.ints(1)
        return [f"if {self.pres(op.result)}:",
                f"    _macd_step(sf, {st}, si, {cnt}, float({a[0]}), {fast}, {slow}, {sig})",
                f"{out}__macd, {out}__macdsignal, {out}__macdhist = "
                f"_macd_value(sf, {st}, si[{cnt}], {slow}, {sig})"]


def _col(name) -> str:
    return re.sub(r"\W", "_", str(name))
