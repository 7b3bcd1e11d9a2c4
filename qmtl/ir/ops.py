"""The op registry: what every op is called, what it takes, what it returns, and what it means.

Each ``OpDef`` carries a *reference implementation*: a whole-array function over the op's operands
(numpy arrays for series, ``dict[str, ndarray]`` for bars and frames, Python scalars for scalars).
The reference interpreter applies it once to an operand's whole timestamp-indexed history (the
semantics of docs/design.md: traced code means what pandas means on the full history), except
``py_call``, which it calls per tick on a window.  Traced pandas ops are defined *by pandas*, so their
reference calls pandas; the recursive indicators are defined the way TA-Lib defines them.

``lookback(attrs)`` is how many bars *before* the current one an op needs to produce a value; a
chain's warm-up is the sum along its longest path, plus one for the current bar.

``kind`` groups ops for lowering: ``source`` (data enters), ``elementwise`` (tick-local),
``windowed`` (a function of the last N entries), ``recursive`` (state from the start of the history),
``structural`` (column access and frame building), ``opaque`` (a Python function run per tick),
``cross`` (every instrument of the run at once: ``total_cap``; its reference takes per-instrument
lists, and the runtime runs it between two passes of the kernels).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from .types import BARS, F64, OPAQUE, Type, frame, promote, scalar, series

Array = np.ndarray
SCHEMA_COMPAT_ID = "1"

_NUMERIC = "series|scalar"


@dataclass(frozen=True)
class AttrSpec:
    """One attribute: accepted Python types, whether it must be given, and its default."""

    types: tuple[type, ...]
    required: bool = False
    default: Any = None
    choices: tuple[Any, ...] | None = None
    identity: bool = True  # False: informational only, never part of the NodeID
    #: a value of the right type that still means nothing (a negative fee): what is wrong, or ""
    check: Callable[[Any], str] = lambda v: ""


@dataclass(frozen=True)
class OpDef:
    name: str
    kind: str
    operands: tuple[str, ...]
    result: Callable[[tuple[Type, ...], dict], Type]
    reference: Callable[..., Any]
    attrs: dict[str, AttrSpec] = field(default_factory=dict)
    variadic: bool = False
    commutative: bool = False
    lookback: Callable[[dict], int] = lambda a: 0
    period_dependent: bool = False
    schema_compat_id: str = SCHEMA_COMPAT_ID
    doc: str = ""
    #: made by the runtime, never written by a user: the verifier (IR text, DAG documents, the
    #: gateway) refuses it as an unknown op
    internal: bool = False
    #: the reference also receives ``close=``: the close instant (epoch seconds) of each tick
    reads_time: bool = False

    def accepts(self, position: int, t: Type) -> bool:
        allowed = self.operands[-1] if (self.variadic and position >= len(self.operands)) else (
            self.operands[position] if position < len(self.operands) else "")
        return t.kind in allowed.split("|")

    def defaults(self) -> dict:
        return {k: s.default for k, s in self.attrs.items() if not s.required and s.default is not None}


REGISTRY: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    if op.name in REGISTRY:
        raise ValueError(f"op {op.name!r} registered twice")
    REGISTRY[op.name] = op
    return op


def get(name: str) -> OpDef:
    return REGISTRY[name]


# --- helpers for reference implementations -------------------------------------------------------

def _s(x) -> pd.Series:
    return pd.Series(np.asarray(x, dtype=float))


def _arr(x) -> Array:
    return np.asarray(x)


def _dtype_of(types: tuple[Type, ...]) -> str:
    return promote(*(t.dtype for t in types if t.dtype)) if types else "f64"


def _elementwise_result(dtype_fn):
    def result(types: tuple[Type, ...], attrs: dict) -> Type:
        kind = "series" if any(t.kind == "series" for t in types) else "scalar"
        return Type(kind, dtype_fn(types, attrs))
    return result


_INT = (int,)
_NUM = (int, float)
_STR = (str,)
_TUPLE = (tuple,)
_BOOL = (bool,)

# --- sources ---------------------------------------------------------------------------------------

register(OpDef(
    "stream_input", "source", (), lambda t, a: BARS,
    reference=lambda bars, **a: bars,
    attrs={"tags": AttrSpec(_TUPLE, default=()), "interval": AttrSpec(_INT, required=True),
           # which clock the source runs on (docs/design.md "Clocks of a run"); absent: virtual
           "clock": AttrSpec(_STR, choices=("virtual", "wall"), identity=False)},
    doc="Bars of the instruments whose tags match; bound to data by the runtime."))

register(OpDef(
    "tag_query", "source", (), lambda t, a: OPAQUE,
    reference=lambda streams, **a: streams,
    attrs={"tags": AttrSpec(_TUPLE, required=True), "interval": AttrSpec(_INT, required=True),
           "match_mode": AttrSpec(_STR, default="any", choices=("any", "all"))},
    doc="Every upstream stream whose tags match the query, resolved at run time."))

def _stored_reference(*_: Any, **__: Any) -> Any:
    raise TypeError("a stored value is read from the artifact store by the flow, not interpreted")


register(OpDef(
    "stored", "stored", (), lambda t, a: OPAQUE, reference=_stored_reference, internal=True,
    attrs={"node_id": AttrSpec(_STR, required=True), "interval": AttrSpec(_INT, required=True)},
    doc="A value already computed for this dataset, read from the feature artifact store instead of "
        "computed (docs/design.md \"Shared execution\"). The op keeps the replaced value's name, "
        "type and NodeID; only a run makes it."))

# --- structural --------------------------------------------------------------------------------------


def _column_result(types: tuple[Type, ...], attrs: dict) -> Type:
    src = types[0]
    if src.kind == "frame":
        for name, dtype in src.columns:
            if name == attrs.get("name"):
                return series(dtype)
        raise TypeError(f"frame has no column {attrs.get('name')!r}")
    return F64


register(OpDef(
    "column", "structural", ("bars|frame|opaque",), _column_result,
    reference=lambda table, name: np.asarray(table[name]),
    attrs={"name": AttrSpec(_STR, required=True)},
    doc="One field of a bar stream or one column of a frame."))

def _value_of(table):
    """An opaque node's rows as numbers: the row itself, or the one column of a one-column frame."""
    if isinstance(table, pd.DataFrame):
        if table.shape[1] != 1:
            raise ValueError(f"an opaque node's rows have columns {list(table.columns)}: read one by name")
        table = table.iloc[:, 0]
    return pd.to_numeric(pd.Series(table), errors="coerce").to_numpy(dtype=float)


register(OpDef(
    "value_of", "structural", ("opaque",), lambda t, a: F64, reference=_value_of,
    doc="An opaque node's value as a number series (what a traced reader of a series-valued opaque node sees)."))

register(OpDef(
    "const", "structural", (), lambda t, a: scalar(a.get("dtype", "f64")),
    reference=lambda value, dtype="f64": value,
    attrs={"value": AttrSpec((int, float, bool), required=True),
           "dtype": AttrSpec(_STR, default="f64", choices=("f64", "i64", "bool"))},
    doc="A constant, broadcast against series."))

register(OpDef(
    "make_frame", "structural", ("series|scalar",),
    lambda t, a: frame(tuple(zip(a["columns"], (x.dtype for x in t)))),
    reference=lambda *cols, columns: dict(zip(columns, cols)),
    attrs={"columns": AttrSpec(_TUPLE, required=True)}, variadic=True,
    doc="Named columns side by side: what `pd.DataFrame({...})` builds."))

# --- element-wise ------------------------------------------------------------------------------------


def _binary(name: str, fn, dtype_fn=lambda t, a: _dtype_of(t), commutative=False, doc=""):
    register(OpDef(name, "elementwise", (_NUMERIC, _NUMERIC), _elementwise_result(dtype_fn),
                   reference=fn, commutative=commutative, doc=doc))


def _unary(name: str, fn, dtype_fn=lambda t, a: _dtype_of(t), attrs=None, doc=""):
    register(OpDef(name, "elementwise", (_NUMERIC,), _elementwise_result(dtype_fn),
                   reference=fn, attrs=attrs or {}, doc=doc))


def _f64(t, a):
    return "f64"


def _bool(t, a):
    return "bool"


def _ratio(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.true_divide(_f(a), _f(b))


def _f(x):
    return np.asarray(x, dtype=float) if isinstance(x, np.ndarray) else float(x)


def _cmp(fn):
    def ref(a, b):
        with np.errstate(invalid="ignore"):
            return fn(_arr(a), _arr(b))
    return ref


_binary("add", lambda a, b: np.add(a, b), commutative=True, doc="a + b")
def _numeric_difference(types, attrs) -> str:
    if all(t.dtype == "bool" for t in types if t.dtype):
        raise TypeError("numpy and pandas do not subtract or negate booleans; cast with .astype(float)")
    return _dtype_of(types)


_binary("sub", lambda a, b: np.subtract(a, b), _numeric_difference, doc="a - b")
_binary("mul", lambda a, b: np.multiply(a, b), commutative=True, doc="a * b")
_binary("div", _ratio, _f64, doc="a / b (true division; x/0 is ±inf, 0/0 is NaN)")
def _pow(a, b):
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return np.power(_f(a), _f(b))


_binary("pow", _pow, _f64, doc="a ** b (negative base with fractional exponent is NaN)")
_binary("gt", _cmp(np.greater), _bool, doc="a > b (NaN compares False)")
_binary("ge", _cmp(np.greater_equal), _bool, doc="a >= b")
_binary("lt", _cmp(np.less), _bool, doc="a < b")
_binary("le", _cmp(np.less_equal), _bool, doc="a <= b")
_binary("eq", _cmp(np.equal), _bool, commutative=True, doc="a == b")
_binary("ne", _cmp(np.not_equal), _bool, commutative=True, doc="a != b")
_binary("and", lambda a, b: np.logical_and(a, b), _bool, commutative=True, doc="a & b")
_binary("or", lambda a, b: np.logical_or(a, b), _bool, commutative=True, doc="a | b")
_binary("maximum", lambda a, b: np.maximum(a, b), commutative=True, doc="element-wise max (NaN wins)")
_binary("minimum", lambda a, b: np.minimum(a, b), commutative=True, doc="element-wise min (NaN wins)")

_unary("neg", lambda a: np.negative(a), _numeric_difference, doc="-a")
_unary("abs", lambda a: np.abs(a), doc="|a|")
_unary("not", lambda a: np.logical_not(a), _bool, doc="~a on booleans")


def _math(fn):
    def ref(a):
        with np.errstate(divide="ignore", invalid="ignore"):
            return fn(_f(a))
    return ref


_unary("log", _math(np.log), _f64, doc="natural log (≤0 gives -inf/NaN)")
_unary("exp", _math(np.exp), _f64, doc="e ** a")
_unary("sqrt", _math(np.sqrt), _f64, doc="square root (negative gives NaN)")
_unary("sign", _math(np.sign), _f64, doc="-1, 0 or 1 (NaN stays NaN)")

#: numpy ufuncs of one number that the kernels evaluate with the same libm function numpy calls
MATH_UFUNCS = ("tanh", "sinh", "cosh", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "arcsinh",
               "arccosh", "arctanh", "log1p", "expm1", "log10", "log2", "floor", "ceil", "trunc",
               "square", "cbrt", "exp2", "rint", "reciprocal")
for _fn in MATH_UFUNCS:
    _unary(_fn, _math(getattr(np, _fn)), _f64, doc=f"numpy.{_fn}")


def _clip(a, lower=None, upper=None):
    return np.asarray(pd.Series(_f(a)).clip(lower=lower, upper=upper)) if isinstance(a, np.ndarray) \
        else float(np.clip(a, -math.inf if lower is None else lower, math.inf if upper is None else upper))


_unary("clip", _clip, attrs={"lower": AttrSpec(_NUM), "upper": AttrSpec(_NUM)},
       doc="bound a into [lower, upper]; NaN stays NaN (pandas clip)")


def _fillna(a, value):
    x = _f(a)
    return np.where(np.isnan(x), value, x) if isinstance(x, np.ndarray) else (value if math.isnan(x) else x)


_unary("fillna", _fillna, _f64, attrs={"value": AttrSpec(_NUM, required=True)}, doc="NaN → value")


def _astype(a, dtype):
    if dtype == "f64":
        return np.asarray(a, dtype=float)
    if dtype == "bool":
        return np.asarray(a, dtype=bool)
    x = np.asarray(a)
    if x.dtype.kind == "f" and np.isnan(x).any():
        raise ValueError("cannot convert NaN to integer (astype(int) on a series with NaN)")
    return x.astype(np.int64)


_unary("astype", _astype, lambda t, a: a["dtype"],
       attrs={"dtype": AttrSpec(_STR, required=True, choices=("f64", "i64", "bool"))},
       doc="convert the dtype; NaN → integer is an error, as in pandas")


def _where(cond, a, b):
    return np.where(np.asarray(cond, dtype=bool), a, b)


register(OpDef(
    "where", "elementwise", (_NUMERIC, _NUMERIC, _NUMERIC),
    _elementwise_result(lambda t, a: _dtype_of(t[1:])), reference=_where,
    doc="a where cond else b (`a.where(cond, b)` / `np.where(cond, a, b)`)"))

# --- windowed ----------------------------------------------------------------------------------------


def _periods_lookback(a: dict) -> int:
    return abs(int(a.get("periods", 1)))


register(OpDef(
    "pct_change", "windowed", ("series",), lambda t, a: F64,
    reference=lambda x, periods=1: np.asarray(_s(x).pct_change(periods=periods, fill_method=None)),
    attrs={"periods": AttrSpec(_INT, default=1)}, lookback=_periods_lookback,
    doc="x[t] / x[t-periods] - 1 (no forward fill)"))

register(OpDef(
    "diff", "windowed", ("series",), lambda t, a: F64,
    reference=lambda x, periods=1: np.asarray(_s(x).diff(periods)),
    attrs={"periods": AttrSpec(_INT, default=1)}, lookback=_periods_lookback, doc="x[t] - x[t-periods]"))

register(OpDef(
    "shift", "windowed", ("series",), lambda t, a: F64,
    reference=lambda x, periods=1: np.asarray(_s(x).shift(periods)),
    attrs={"periods": AttrSpec(_INT, default=1)}, lookback=_periods_lookback, doc="x[t-periods]"))


def _rolling(stat: str):
    def ref(x, window, min_periods=None, ddof=1):
        r = _s(x).rolling(window, min_periods=min_periods)
        out = getattr(r, stat)(ddof=ddof) if stat in ("std", "var") else getattr(r, stat)()
        return np.asarray(out)
    return ref


_ROLLING_ATTRS = {"window": AttrSpec(_INT, required=True), "min_periods": AttrSpec(_INT)}
for _stat in ("mean", "sum", "min", "max", "std", "var"):
    _attrs = dict(_ROLLING_ATTRS)
    if _stat in ("std", "var"):
        _attrs["ddof"] = AttrSpec(_INT, default=1)
    register(OpDef(
        f"rolling_{_stat}", "windowed", ("series",), lambda t, a: F64, reference=_rolling(_stat),
        attrs=_attrs, lookback=lambda a: int(a["window"]) - 1,
        doc=f"pandas rolling(window, min_periods).{_stat}()"))


# --- cumulative (state from the start of the history, as pandas computes them) -------------------------


def _ewm_mean(x, alpha, adjust=True):
    return np.asarray(_s(x).ewm(alpha=alpha, adjust=adjust).mean())


register(OpDef(
    "ewm_mean", "recursive", ("series",), lambda t, a: F64, reference=_ewm_mean,
    attrs={"alpha": AttrSpec(_NUM, required=True), "adjust": AttrSpec(_BOOL, default=True)},
    doc="pandas ewm(alpha, adjust).mean() over the full history (com/span/halflife become alpha)"))


def _cumulative(method: str):
    def ref(x):
        return np.asarray(getattr(_s(x), method)())
    return ref


for _name in ("cumsum", "cumprod", "cummax", "cummin"):
    register(OpDef(_name, "recursive", ("series",), lambda t, a: F64, reference=_cumulative(_name),
                   doc=f"pandas {_name}() over the full history (NaN stays NaN and is skipped)"))


def _expanding(stat: str):
    def ref(x, min_periods=1, ddof=1):
        r = _s(x).expanding(min_periods=min_periods)
        return np.asarray(getattr(r, stat)(ddof=ddof) if stat in ("std", "var") else getattr(r, stat)())
    return ref


for _stat in ("mean", "sum", "min", "max", "std", "var"):
    _attrs = {"min_periods": AttrSpec(_INT, default=1)}
    if _stat in ("std", "var"):
        _attrs["ddof"] = AttrSpec(_INT, default=1)
    register(OpDef(f"expanding_{_stat}", "recursive", ("series",), lambda t, a: F64,
                   reference=_expanding(_stat), attrs=_attrs,
                   doc=f"pandas expanding(min_periods).{_stat}() over the full history"))

register(OpDef(
    "ffill", "recursive", ("series",), lambda t, a: F64,
    reference=lambda x: np.asarray(_s(x).ffill()),
    doc="pandas ffill(): NaN → the last number before it"))

# --- recursive (TA-Lib definitions, state from the start of the stream) -----------------------------


def _from_first_valid(fn):
    """Start ``fn`` at the first bar where every input is a number, as TA-Lib does.

    TA-Lib's wrapper skips leading NaNs (an indicator of ``pct_change()`` starts one bar later); an
    indicator of a series that opens with NaN would otherwise be NaN forever, because NaN poisons
    the recursion.  NaNs after the start still propagate, exactly as in TA-Lib.
    """
    @functools.wraps(fn)  # keeps fn's signature visible to callers that pass only its attributes
    def reference(*inputs, **attrs):
        arrays = [np.asarray(x, dtype=float) for x in inputs]
        n = len(arrays[0]) if arrays else 0
        start = max((_first_number(a) for a in arrays), default=0)
        if start == 0:
            return fn(*arrays, **attrs)
        tail = fn(*(a[start:] for a in arrays), **attrs)
        pad = lambda col: np.concatenate([np.full(n - len(col), np.nan), col])  # noqa: E731
        return {k: pad(v) for k, v in tail.items()} if isinstance(tail, dict) else pad(tail)
    return reference


def _first_number(x: Array) -> int:
    valid = np.flatnonzero(~np.isnan(x))
    return int(valid[0]) if len(valid) else len(x)



def _ta_ema(x: Array, period: int, start: int = 0) -> Array:
    """TA-Lib EMA: seeded with the SMA of the first ``period`` values from ``start``; k = 2/(n+1)."""
    x = np.asarray(x, dtype=float)
    out = np.full(len(x), np.nan)
    first = start + period - 1
    if first >= len(x):
        return out
    k = 2.0 / (period + 1)
    prev = x[start:first + 1].mean()
    out[first] = prev
    for i in range(first + 1, len(x)):
        prev = (x[i] - prev) * k + prev
        out[i] = prev
    return out


register(OpDef(
    "ema", "recursive", ("series",), lambda t, a: F64, reference=_from_first_valid(lambda x, period: _ta_ema(x, period)),
    attrs={"period": AttrSpec(_INT, required=True)}, lookback=lambda a: int(a["period"]) - 1,
    doc="TA-Lib EMA (SMA seed, k = 2/(period+1))"))


def _ta_rsi(x: Array, period: int) -> Array:
    """TA-Lib RSI (Wilder smoothing, seeded with the plain average of the first ``period`` moves)."""
    x = np.asarray(x, dtype=float)
    out = np.full(len(x), np.nan)
    if len(x) <= period:
        return out
    d = np.diff(x)
    gain = np.where(d > 0, d, 0.0)
    loss = np.where(d < 0, -d, 0.0)
    avg_g = gain[:period].sum() / period
    avg_l = loss[:period].sum() / period
    out[period] = _rsi_value(avg_g, avg_l)
    for i in range(period + 1, len(x)):
        avg_g = (avg_g * (period - 1) + gain[i - 1]) / period
        avg_l = (avg_l * (period - 1) + loss[i - 1]) / period
        out[i] = _rsi_value(avg_g, avg_l)
    return out


def _rsi_value(avg_gain: float, avg_loss: float) -> float:
    total = avg_gain + avg_loss
    return 0.0 if total == 0 else 100.0 * avg_gain / total


register(OpDef(
    "rsi", "recursive", ("series",), lambda t, a: F64, reference=_from_first_valid(lambda x, period: _ta_rsi(x, period)),
    attrs={"period": AttrSpec(_INT, required=True)}, lookback=lambda a: int(a["period"]),
    doc="TA-Lib RSI (Wilder)"))


def _ta_atr(high: Array, low: Array, close: Array, period: int) -> Array:
    """TA-Lib ATR: true range from the second bar, SMA seed over ``period`` TRs, then Wilder."""
    h, l, c = (np.asarray(v, dtype=float) for v in (high, low, close))
    n = len(c)
    out = np.full(n, np.nan)
    if n <= period:
        return out
    prev_c = c[:-1]
    tr = np.maximum.reduce([h[1:] - l[1:], np.abs(h[1:] - prev_c), np.abs(l[1:] - prev_c)])
    avg = tr[:period].mean()
    out[period] = avg
    for i in range(period + 1, n):
        avg = (avg * (period - 1) + tr[i - 1]) / period
        out[i] = avg
    return out


register(OpDef(
    "atr", "recursive", ("series", "series", "series"), lambda t, a: F64,
    reference=_from_first_valid(lambda h, l, c, period: _ta_atr(h, l, c, period)),
    attrs={"period": AttrSpec(_INT, required=True)}, lookback=lambda a: int(a["period"]),
    doc="TA-Lib ATR over (high, low, close)"))


def _ta_macd(x: Array, fast: int, slow: int, signal: int) -> dict[str, Array]:
    """TA-Lib MACD: both EMAs are seeded so that they start on the same bar (index slow-1)."""
    x = np.asarray(x, dtype=float)
    fast_ema = _ta_ema(x, fast, start=slow - fast)
    slow_ema = _ta_ema(x, slow)
    line = fast_ema - slow_ema
    sig = np.full(len(x), np.nan)
    if len(x) > slow - 1:
        sig[slow - 1:] = _ta_ema(line[slow - 1:], signal)
    valid = np.arange(len(x)) >= slow + signal - 2
    line = np.where(valid, line, np.nan)
    return {"macd": line, "macdsignal": sig, "macdhist": line - sig}


register(OpDef(
    "macd", "recursive", ("series",),
    lambda t, a: frame((("macd", "f64"), ("macdsignal", "f64"), ("macdhist", "f64"))),
    reference=_from_first_valid(_ta_macd),
    attrs={"fast": AttrSpec(_INT, default=12), "slow": AttrSpec(_INT, default=26),
           "signal": AttrSpec(_INT, default=9)},
    lookback=lambda a: int(a.get("slow", 26)) + int(a.get("signal", 9)) - 2,
    doc="TA-Lib MACD → frame<macd, macdsignal, macdhist>"))

# --- execution (docs/design.md "Execution nodes") ------------------------------------------------------
#
# Plain per-bar loops: these ops carry a position from bar to bar, so their obvious definition is
# the loop itself.  NaN means "no decision": it never opens or closes a position.


def _risk_control(signal, price, max_position, max_notional=None):
    s, p = np.asarray(signal, dtype=float), np.asarray(price, dtype=float)
    out = np.full(len(s), np.nan)
    for t in range(len(s)):
        target = min(max(s[t], -1.0), 1.0) * max_position
        if max_notional is not None:
            if not p[t] > 0:  # NaN or a price that cannot size a notional: no decision
                continue
            target = math.copysign(min(abs(target), max_notional / p[t]), target)
        out[t] = target
    return out


def _positive(v: Any) -> str:
    return "" if isinstance(v, (int, float)) and math.isfinite(v) and v > 0 else "must be a finite number > 0"


def _non_negative(v: Any) -> str:
    return "" if isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 else "must be a finite number >= 0"


def _session_texts(v: Any) -> str:
    from .sessions import SessionError, canonical_sessions
    try:
        canonical = canonical_sessions(list(v))
    except SessionError as err:
        return str(err)
    return "" if canonical == tuple(v) else f"must be in canonical form {list(canonical)}"


register(OpDef(
    "risk_control", "recursive", ("series", "series"), lambda t, a: F64, reference=_risk_control,
    attrs={"max_position": AttrSpec(_NUM, required=True, check=_positive),
           "max_notional": AttrSpec(_NUM, check=_positive)},
    doc="target position in units: clip(signal, -1, 1) * max_position, |target * price| capped to "
        "max_notional (price: the close of the bar the signal is known at)"))


def total_cap_step(key, instant, target, close, held, mark, max_total_notional):
    """The portfolio-total cap over every instrument's entries merged in time (docs/design.md
    "Execution nodes"): ``key``, ``instant`` (close instants), ``target`` and ``close`` are the
    entries of all instruments sorted by (instant, key); returns each entry's capped target.

    Written in the subset of Python Numba compiles: the reference calls it as it is, the engine
    calls it jitted, so the rule has one implementation.  At each instant, an instrument deciding
    there (a number as target) counts ``|target| x close``; every other instrument counts the book
    it holds, its latest *capped* target at its latest close (what it actually holds: counting its
    uncapped wish would cap the others against a position nobody has).  When the sum exceeds the
    cap, the deciding instruments share what the held book leaves (``max(cap - held, 0)``) pro
    rata, so the book after the instant's orders is at most the cap at those closes.

    ``held`` (each instrument's latest capped target, units) and ``mark`` (its latest usable close,
    NaN before any) are the book before the first entry, updated in place: a whole run starts them
    at zeros and NaNs, a live run carries them from one instant to the next (``qmtl.live.held``)."""
    n = len(target)
    n_keys = len(held)
    out = np.empty(n)
    deciding = np.zeros(n_keys, dtype=np.bool_)
    lo = 0
    while lo < n:
        hi = lo + 1
        while hi < n and instant[hi] == instant[lo]:
            hi += 1
        for r in range(lo, hi):
            if close[r] > 0.0:  # NaN or a price that cannot mark a position: keep the last one
                mark[key[r]] = close[r]
        decided = 0.0
        for r in range(lo, hi):
            k = key[r]
            if target[r] == target[r]:
                deciding[k] = True
                if mark[k] == mark[k]:
                    decided += abs(target[r]) * mark[k]
        carried = 0.0
        for k in range(n_keys):
            if not deciding[k] and held[k] != 0.0 and mark[k] == mark[k]:
                carried += abs(held[k]) * mark[k]
        scale = 1.0
        if decided > 0.0 and decided + carried > max_total_notional:
            scale = max(max_total_notional - carried, 0.0) / decided
        for r in range(lo, hi):
            k = key[r]
            out[r] = target[r] * scale
            if deciding[k]:
                held[k] = out[r]
                deciding[k] = False
        lo = hi
    return out


def total_cap(instants, targets, closes, max_total_notional, step=total_cap_step, book=None):
    """Per instrument (lists in one order), its entries' close instants, targets and closes → its
    capped targets.  Merges the instruments' entries by (instant, position in the lists) and runs
    ``step`` (``total_cap_step``, or the same function jitted) over them.  ``book``: the (held, mark)
    arrays the step starts from and leaves updated, one entry per instrument (None: a flat book)."""
    sizes = [len(t) for t in targets]
    if not sizes:
        return []
    if book is None:
        book = (np.zeros(len(sizes)), np.full(len(sizes), np.nan))
    held, mark = book
    if len(held) != len(sizes) or len(mark) != len(sizes):
        raise ValueError(f"total_cap: a book of {len(held)} instruments for {len(sizes)} instruments' entries")
    key = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    instant = np.concatenate([np.asarray(i, dtype=np.int64) for i in instants])
    order = np.lexsort((key, instant))
    merged = step(key[order], instant[order],
                  np.concatenate([np.asarray(t, dtype=float) for t in targets])[order],
                  np.concatenate([np.asarray(c, dtype=float) for c in closes])[order],
                  held, mark, float(max_total_notional))
    out = np.empty(len(key))
    out[order] = merged
    return np.split(out, np.cumsum(sizes)[:-1])


register(OpDef(
    "total_cap", "cross", ("series", "series"), lambda t, a: F64, reference=total_cap,
    attrs={"max_total_notional": AttrSpec(_NUM, required=True, check=_positive)},
    doc="(target position, close) of every instrument of the run at once → the targets scaled so the "
        "book's gross notional stays within max_total_notional (a cross-instrument step, not a kernel)"))


def _timing_gate(position, close, sessions):
    from .sessions import in_session
    x = np.asarray(position, dtype=float)
    inside = in_session(close, sessions)
    out = np.empty(len(x))
    held = 0.0
    for t in range(len(x)):
        if inside[t] and x[t] == x[t]:
            held = x[t]
        out[t] = held
    return out


register(OpDef(
    "timing_gate", "recursive", ("series",), lambda t, a: F64, reference=_timing_gate, reads_time=True,
    attrs={"sessions": AttrSpec(_TUPLE, required=True, check=_session_texts)},
    doc="the position where the bar's close instant lies in a session window, else the last one "
        "accepted (0 before any)"))

#: the columns of an ``execution`` frame, in order
EXECUTION_COLUMNS = ("position", "order_qty", "fill_qty", "fill_price", "fee", "cash", "equity", "pnl")


def fill_terms(qty: float, open_: float, fee_bps: float, slippage_bps: float) -> tuple[float, float]:
    """The price and fee of a market order of ``qty`` units filled at a bar's ``open``: slippage
    always against the trader, the fee on the filled notional.  The backtest's reference and the
    live simulated broker both fill by this (the kernels' ``_exec_step`` is the same rule, tested
    against the reference)."""
    price = open_ * (1.0 + math.copysign(slippage_bps, qty) / 1e4)
    return price, abs(qty) * price * fee_bps / 1e4


def order_for(target: float, position: float) -> float:
    """The order taking ``position`` to ``target``; 0 when the difference is float residue (at most
    1e-12 x max(1, |target|) units), so an unchanged target never trades."""
    order = target - position
    return 0.0 if abs(order) <= 1e-12 * max(1.0, abs(target)) else order


def _execution(target, open_, close, initial_cash, fee_bps=0.0, slippage_bps=0.0, order_type="market"):
    x, o, c = (np.asarray(v, dtype=float) for v in (target, open_, close))
    n = len(x)
    cols = {k: np.zeros(n) for k in EXECUTION_COLUMNS}
    pos, cash, pending, mark, prev_equity = 0.0, float(initial_cash), 0.0, math.nan, float(initial_cash)
    for t in range(n):
        fill_qty, fill_price, fee = 0.0, math.nan, 0.0
        if pending != 0.0 and o[t] == o[t]:
            fill_qty = pending
            fill_price, fee = fill_terms(pending, o[t], fee_bps, slippage_bps)
            cash -= pending * fill_price + fee
            pos += pending
        order = 0.0
        if x[t] == x[t]:
            order = order_for(x[t], pos)
        pending = order
        if c[t] == c[t]:
            mark = c[t]
        equity = cash + (pos * mark if pos != 0.0 else 0.0)
        for k, v in zip(EXECUTION_COLUMNS, (pos, order, fill_qty, fill_price, fee, cash, equity,
                                            equity - prev_equity)):
            cols[k][t] = v
        prev_equity = equity
    return cols


register(OpDef(
    "execution", "recursive", ("series", "series", "series"),
    lambda t, a: frame(tuple((c, "f64") for c in EXECUTION_COLUMNS)), reference=_execution,
    attrs={"initial_cash": AttrSpec(_NUM, required=True, check=_positive),
           "fee_bps": AttrSpec(_NUM, default=0.0, check=_non_negative),
           "slippage_bps": AttrSpec(_NUM, default=0.0, check=_non_negative),
           "order_type": AttrSpec(_STR, default="market", choices=("market",))},
    doc="(target position, open, close) → per bar: the order decided at this close fills at the next "
        "bar's open with slippage and fees; position, cash, equity marked at the close"))

# --- opaque ------------------------------------------------------------------------------------------


def _py_call(fn, view, **attrs):
    """Call the user's compute function on a ``CacheView`` of the tick's windows.

    The IR holds only the function's ``code_hash``; the caller (the interpreter or the generated flow)
    binds that hash to the function object that the compiled strategy carries.
    """
    return fn(view)


register(OpDef(
    "py_call", "opaque", ("bars|series|frame|opaque",), lambda t, a: OPAQUE, reference=_py_call,
    attrs={"code_hash": AttrSpec(_STR, required=True),
           "fn": AttrSpec(_STR, default="", identity=False),
           "period": AttrSpec(_INT, required=True),
           "deterministic": AttrSpec(_BOOL, default=True, identity=False),
           # the free names whose values have no canonical form (why deterministic = false)
           "unstable": AttrSpec(_STR, default="", identity=False),
           "reason": AttrSpec(_STR, default="", identity=False)},
    variadic=True, lookback=lambda a: int(a["period"]) - 1, period_dependent=True,
    doc="A compute function the tracer could not follow, called per tick with a CacheView."))
