"""Lowering one op to the lines of a Numba kernel's per-tick loop body.

The generator (``generate.py``) decides *when* an op runs: at a tick where its value is present
(``p_<value>``, docs/design.md "Timelines").  This module says *what* it computes there: the lines
that set its local ``v_<value>`` (a frame: one local per column) from its operands' expressions, and,
for an op that remembers the past, advance its state.  State lives in the kernel's two flat arrays
(``sf`` float64, ``si`` int64) at offsets fixed here, so one pair of arrays per (kernel, instrument)
survives between batches and snapshots trivially.

Numerics follow the reference implementations (``qmtl.ir.ops``), and through them pandas: rolling
sums and means use pandas' own add/remove update with Kahan compensation and its equal-values rule,
variances Welford's update with the same recompute-on-cancellation rule, rolling min/max blocks of
``window`` pushes (van Herk/Gil-Werman) — O(1) per bar whatever the window — and
``ewm``/``cumsum``/``expanding`` run over the whole history as pandas does.  Recursive indicators
follow TA-Lib.
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
    """Offsets into ``sf``/``si`` and their initial values, and the locals that carry scalar state.

    Windows (rings, block suffixes) are read and written in the arrays.  Scalar state (counters, running
    sums, carried values) is a kernel local loaded from its slot before the batch's loop and saved
    after it (``carried``): in a local it stays in a register, where a slot written and re-read every
    tick through the array would cost a store and a load per tick (about 4x the whole kernel)."""

    f_init: list[float] = field(default_factory=list)
    i_init: list[int] = field(default_factory=list)
    carried: list[tuple[str, str, int]] = field(default_factory=list)  # (local, dtype, slot)

    def carry(self, local: str, dtype: str, init: float = math.nan) -> str:
        """Keep ``local`` (dtype ``f64``, ``i64`` or ``bool``) across ticks and batches."""
        slot = self.floats(1, init) if dtype == "f64" else self.ints(1, int(init) if init == init else 0)
        self.carried.append((local, dtype, slot))
        return local

    def scalar(self, dtype: str, init: float = math.nan) -> str:
        """A new local of scalar state (its name is its slot: ``zf_<n>`` or ``zi_<n>``)."""
        prefix, n = ("zf", len(self.f_init)) if dtype == "f64" else ("zi", len(self.i_init))
        return self.carry(f"{prefix}_{n}", dtype, init)

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

_PREDICATES = frozenset({"gt", "ge", "lt", "le", "eq", "ne"})
_COMMUTATIVE = frozenset({"add", "mul", "eq", "ne", "and", "or", "maximum", "minimum"})

#: windowed statistics sharing one state machine (rolling_* with a window, expanding_* without)
_STATS = ("mean", "sum", "min", "max", "std", "var")


class Lowerer:
    """Emits, op by op, the lines that run when the op's value is present."""

    def __init__(self, operand_expr, type_of, is_literal=lambda v: False, time_expr=None):
        self.layout = StateLayout()
        self._time = time_expr  # () → expression for the tick's close instant (epoch seconds)
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
        # arithmetic on booleans that stays boolean (numpy: + is or, * is and) is stored as a bool
        as_bool = "({}) != 0" if op.type.dtype == "bool" and op.name not in _BOOL_NATIVE | _PREDICATES \
            else "{}"
        if op.name in _BINARY:
            if op.name in _COMMUTATIVE and self._is_literal(op.operands[0]) and not self._is_literal(op.operands[1]):
                a = [a[1], a[0]]  # literal last: kernels that differ only in NodeID order read the same
            return [f"{out} = " + as_bool.format(_BINARY[op.name].format(a=a[0], b=a[1]))]
        if op.name in _UNARY:
            return [f"{out} = " + as_bool.format(_UNARY[op.name].format(a=a[0]))]
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
        cnt = self.layout.scalar("i64", 0)
        lag = f"sf[{buf} + ({cnt} - 1 - {k}) % {k + 1}]"
        return [f"sf[{buf} + {cnt} % {k + 1}] = float({a[0]})",
                f"{cnt} += 1",
                f"{out} = np.nan",
                f"if {cnt} > {k}:",
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
            values = self.layout.floats(2 * ring)  # ring of values, then the previous block's suffixes
            state = ", ".join([*self._ints(2), self.layout.scalar("f64")])  # count, nobs; running extreme
            kind = 1 if stat == "max" else 0
            return [f"{out}, {state} = _extreme_step(sf, {values}, {window}, {x}, {kind}, {minp}, {state})"]
        ring_at = self.layout.floats(window, 0.0)
        if stat in ("sum", "mean"):
            # count, nobs, negatives, equal run; sum, compensation (add, remove), previous value
            state = ", ".join([*self._ints(4), *self._floats(4)])
            kind = 1 if stat == "mean" else 0
            return [f"{out}, {state} = _sum_step(sf, {ring_at}, {window}, {x}, {kind}, {minp}, {state})"]
        ddof = int(op.attr("ddof", 1))
        # count, nobs, numerically unstable; mean, sum of squared deviations, compensation (add, remove)
        state = ", ".join([*self._ints(3), *self._floats(4)])
        take_root = 1 if stat == "std" else 0
        return [f"{out}, {state} = _var_step(sf, {ring_at}, {window}, {x}, {max(minp, 1)}, {ddof}, "
                f"{take_root}, {state})"]

    def _ints(self, n: int) -> list[str]:
        return [self.layout.scalar("i64", 0) for _ in range(n)]

    def _floats(self, n: int, init: float = 0.0) -> list[str]:
        return [self.layout.scalar("f64", init) for _ in range(n)]

    # --- whole-history ops -----------------------------------------------------------------------------

    def _ewm_mean(self, op, a, out):
        state = ", ".join([*self._ints(2), *self._floats(2)])  # pushes, observations; average, old weight
        adjust = bool(op.attr("adjust", True))
        alpha = float(op.attr("alpha"))
        com_one = not adjust and 1.0 / alpha - 1.0 == 1.0  # pandas' own special case (see _ewm_step)
        return [f"{out}, {state} = _ewm_step(float({a[0]}), {alpha!r}, {adjust}, {com_one}, {state})"]

    def _cumulative(self, op, a, out, kind: int, init: float):
        acc = self.layout.scalar("f64", init)
        return [f"{out}, {acc} = _cum_step({acc}, float({a[0]}), {kind})"]

    def _cumsum(self, op, a, out):
        return self._cumulative(op, a, out, 0, 0.0)

    def _cumprod(self, op, a, out):
        return self._cumulative(op, a, out, 1, 1.0)

    def _cummax(self, op, a, out):
        return self._cumulative(op, a, out, 2, -math.inf)

    def _cummin(self, op, a, out):
        return self._cumulative(op, a, out, 3, math.inf)

    def _ffill(self, op, a, out):
        last = self.layout.scalar("f64")
        return [f"if {a[0]} == {a[0]}:",
                f"    {last} = float({a[0]})",
                f"{out} = {last}"]

    # --- recursive (TA-Lib) ----------------------------------------------------------------------

    def _ema(self, op, a, out):
        p = int(op.attr("period"))
        cnt, seed, ema = self._ints(1) + self._floats(2)  # bars seen; running seed sum, the EMA
        return [f"{cnt}, {seed}, {ema} = _ema_step(float({a[0]}), {p}, {cnt}, {seed}, {ema})",
                f"{out} = {ema} if {cnt} >= {p} else np.nan"]

    def _rsi(self, op, a, out):
        p = int(op.attr("period"))
        cnt, prev, gain, loss = self._ints(1) + self._floats(3)  # bars seen; price, average gain/loss
        return [f"{cnt}, {prev}, {gain}, {loss} = _rsi_step(float({a[0]}), {p}, {cnt}, {prev}, {gain}, {loss})",
                f"{out} = _rsi_value({gain}, {loss}) if {cnt} > {p} else np.nan"]

    def _atr(self, op, a, out):
        p = int(op.attr("period"))
        cnt, prev, atr = self._ints(1) + self._floats(2)  # bars seen; previous close, average true range
        return [f"{cnt}, {prev}, {atr} = _atr_step(float({a[0]}), float({a[1]}), float({a[2]}), {p}, "
                f"{cnt}, {prev}, {atr})",
                f"{out} = {atr} if {cnt} > {p} else np.nan"]

    def _macd(self, op, a, out):
        fast, slow, sig = (int(op.attr(k, d)) for k, d in (("fast", 12), ("slow", 26), ("signal", 9)))
        # bars seen; fast sum/EMA, slow sum/EMA, signal sum/EMA, the MACD line
        state = self._ints(1) + self._floats(7)
        cols = ", ".join(col_ident(op.result, c) for c in ("macd", "macdsignal", "macdhist"))
        return [f"{', '.join(state)} = _macd_step(float({a[0]}), {fast}, {slow}, {sig}, {', '.join(state)})",
                f"{cols} = _macd_value({state[7]}, {state[6]}, {state[0]}, {slow}, {sig})"]

    # --- execution nodes (docs/design.md "Execution nodes") ---------------------------------------

    def _risk_control(self, op, a, out):
        cap = op.attr("max_notional")
        return [f"{out} = _risk_target(float({a[0]}), float({a[1]}), {literal(float(op.attr('max_position')))}, "
                f"{literal(math.inf if cap is None else float(cap))}, {cap is not None})"]

    def _timing_gate(self, op, a, out):
        from qmtl.ir.sessions import parse_session, utc_offsets
        if self._time is None:
            raise LoweringError("timing_gate needs the tick's time, which this kernel was not given")
        held = self.layout.scalar("f64", 0.0)
        c = self._time()
        tests = []
        for text in op.attr("sessions"):
            s = parse_session(text)
            instants, offsets = utc_offsets(s.tz)
            table = len(self.layout.f_init)  # read-only: the zone's offset table, kept with the state
            self.layout.f_init.extend([float(i) for i in instants] + [float(o) for o in offsets])
            tests.append(f"_in_window({c}, sf, {table}, {len(instants)}, {s.day_mask}, {s.start}, {s.end})")
        return [f"if ({' or '.join(tests)}) and {a[0]} == {a[0]}:",
                f"    {held} = float({a[0]})",
                f"{out} = {held}"]

    def _execution(self, op, a, out):
        from qmtl.ir.ops import EXECUTION_COLUMNS
        pos, cash, pending, mark, equity = self._floats(1, 0.0) + [
            self.layout.scalar("f64", float(op.attr("initial_cash")))] + self._floats(1, 0.0) + [
            self.layout.scalar("f64")] + [self.layout.scalar("f64", float(op.attr("initial_cash")))]
        cols = ", ".join(col_ident(op.result, c) for c in EXECUTION_COLUMNS)
        fee, slip = (literal(float(op.attr(k, 0.0))) for k in ("fee_bps", "slippage_bps"))
        return [f"{cols}, {pending}, {mark}, {equity} = _exec_step(float({a[0]}), float({a[1]}), "
                f"float({a[2]}), {fee}, {slip}, {pos}, {cash}, {pending}, {mark}, {equity})",
                f"{pos} = {col_ident(op.result, 'position')}",
                f"{cash} = {col_ident(op.result, 'cash')}"]


def column_part(name) -> str:
    """A column name as part of an identifier."""
    return re.sub(r"\W", "_", str(name))
