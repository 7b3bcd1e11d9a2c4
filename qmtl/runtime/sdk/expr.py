"""Symbolic series and frames: the one representation behind the expression API and tracing.

``price.close.pct_change().rolling(5).mean() > 0`` on an SDK node handle and the same pandas code run
on a traced ``CacheView`` inside a compute function both build these objects, so both lower to exactly
the same ops (and hence NodeIDs).  An ``Expr`` is a small, immutable tree: an op name from
``qmtl.ir.ops.REGISTRY`` (or ``node_ref``, a leaf standing for an SDK node's value), operand trees and
attributes.  Nothing is computed here and no IR is emitted: ``qmtl.compiler.frontend`` lowers trees to
SSA ops, in post-order, emitting each tree object once.

Anything outside the supported subset raises ``UnsupportedOperation`` whose reason names what and
where, so a traced compute function falls back to an opaque call with a useful note.
"""

from __future__ import annotations

import difflib
import math
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from qmtl.ir.ops import MATH_UFUNCS
import pandas as pd

from qmtl.ir.module import Loc

from .errors import LookAheadError, OperandTypeError, UnknownColumnError, UnsupportedOperation
from .source_location import user_location


def unsupported_method(kind: str, name: str, traced: type, real: type | None = None) -> str:
    """Why ``kind.name`` is not traced, with a hint when ``name`` is a near miss of a method that is
    (``meen`` → ``mean``): a typo otherwise only shows as an opaque node and fails when it runs."""
    known = [m for m in dir(traced) if not m.startswith("_")]
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.7)
    if close and (real is None or not hasattr(real, name)):
        return f"unsupported method {kind}.{name} (did you mean .{close[0]}?)"
    return f"unsupported method {kind}.{name}"

if TYPE_CHECKING:  # pragma: no cover
    from .nodes import Node


class UnsupportedAttribute(UnsupportedOperation, AttributeError):
    """An attribute a symbolic value does not have (also an AttributeError, so ``hasattr`` works)."""


class Expr:
    """A symbolic series (one number per tick) or, for ``node_ref``/``macd``, a node's whole value."""

    __slots__ = ("op", "args", "attrs", "loc", "label", "node", "_columns")
    __array_priority__ = 1000  # numpy defers binary operators to us

    def __init__(self, op: str, args: tuple["Expr", ...] = (), attrs: dict[str, Any] | None = None,
                 *, label: str | None = None, node: "Node | None" = None, loc: Loc | None = None):
        self.op = op
        self.args = args
        self.attrs = dict(attrs or {})
        self.label = label
        self.node = node
        self.loc = loc if loc is not None else user_location(2)
        self._columns: dict[str, Expr] = {}
        if _RECORDERS:
            _RECORDERS[-1].append(self)

    # --- identity and display -------------------------------------------------------------------
    __hash__ = object.__hash__

    def __repr__(self) -> str:
        if self.op == "node_ref":
            return f"<Expr ref {getattr(self.node, 'name', None) or type(self.node).__name__}>"
        inner = ", ".join(repr(a) for a in self.args)
        attrs = ", ".join(f"{k}={v!r}" for k, v in sorted(self.attrs.items()))
        return f"<Expr {self.op}({inner}{'; ' + attrs if attrs else ''})>"

    @property
    def name(self) -> str | None:
        """The pandas ``Series.name``: a column's name, kept through ops on one column."""
        return self.label

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise UnsupportedAttribute(unsupported_method("Series", name, type(self), pd.Series), user_location(2))

    # --- structural -----------------------------------------------------------------------------
    def __getitem__(self, key: Any) -> "Expr":
        """``node_value["col"]`` for frames and bars; anything else is not traceable."""
        if isinstance(key, str) and self.op in ("node_ref", "macd"):
            return self.column(key)
        raise UnsupportedOperation(f"indexing a series with {type(key).__name__} (Series[...])")

    def column(self, name: str) -> "Expr":
        """One column of this value (the same tree object each time, so it is emitted once)."""
        if name not in self._columns:
            self._columns[name] = Expr("column", (self,), {"name": name}, label=name,
                                       loc=user_location(2))
        return self._columns[name]

    # --- element-wise arithmetic ----------------------------------------------------------------
    def __add__(self, other): return _binary("add", self, other)
    def __radd__(self, other): return _binary("add", other, self)
    def __sub__(self, other): return _binary("sub", self, other)
    def __rsub__(self, other): return _binary("sub", other, self)
    def __mul__(self, other): return _binary("mul", self, other)
    def __rmul__(self, other): return _binary("mul", other, self)
    def __truediv__(self, other): return _binary("div", self, other)
    def __rtruediv__(self, other): return _binary("div", other, self)
    def __pow__(self, other): return _binary("pow", self, other)
    def __rpow__(self, other): return _binary("pow", other, self)
    def __gt__(self, other): return _binary("gt", self, other)
    def __ge__(self, other): return _binary("ge", self, other)
    def __lt__(self, other): return _binary("lt", self, other)
    def __le__(self, other): return _binary("le", self, other)
    def __eq__(self, other): return _binary("eq", self, other)  # type: ignore[override]
    def __ne__(self, other): return _binary("ne", self, other)  # type: ignore[override]
    def __and__(self, other): return _binary("and", self, other)
    def __rand__(self, other): return _binary("and", other, self)
    def __or__(self, other): return _binary("or", self, other)
    def __ror__(self, other): return _binary("or", other, self)
    def __neg__(self): return _unary("neg", self)
    def __pos__(self): return self
    def __abs__(self): return _unary("abs", self)
    def __invert__(self): return _unary("not", self)

    def __floordiv__(self, other): raise UnsupportedOperation("operator // on a series")
    __rfloordiv__ = __floordiv__
    def __mod__(self, other): raise UnsupportedOperation("operator % on a series")
    __rmod__ = __mod__
    def __xor__(self, other): raise UnsupportedOperation("operator ^ on a series")
    __rxor__ = __xor__
    def __matmul__(self, other): raise UnsupportedOperation("operator @ on a series")

    # --- Python control flow cannot see symbolic values -----------------------------------------
    def __bool__(self) -> bool:
        raise UnsupportedOperation("Python control flow on a series (bool() / if / and / or)")

    def __len__(self) -> int:
        raise UnsupportedOperation("len() of a series (its length is known only at run time)")

    def __iter__(self) -> Iterator[Any]:
        raise UnsupportedOperation("iteration over a series")

    def __float__(self) -> float:
        raise UnsupportedOperation("float() of a series")

    def __int__(self) -> int:
        raise UnsupportedOperation("int() of a series")

    def __index__(self) -> int:
        raise UnsupportedOperation("using a series as an index")

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise UnsupportedOperation("converting a series to a numpy array")

    # --- pandas Series methods that have an op ---------------------------------------------------
    def abs(self) -> "Expr":
        return _unary("abs", self)

    def pct_change(self, periods: int = 1, fill_method: Any = None) -> "Expr":
        if fill_method is not None:
            raise UnsupportedOperation(f"pct_change(fill_method={fill_method!r})")
        return Expr("pct_change", (self,), {"periods": _backward(periods, "pct_change")})

    def diff(self, periods: int = 1) -> "Expr":
        return Expr("diff", (self,), {"periods": _backward(periods, "diff")})

    def shift(self, periods: int = 1) -> "Expr":
        return Expr("shift", (self,), {"periods": _backward(periods, "shift")})

    def rolling(self, window: int, min_periods: int | None = None, center: bool = False,
                **options: Any) -> "Rolling":
        if center is True:
            raise LookAheadError("rolling(center=True) averages bars after the current one (look-ahead); "
                                 "a node only sees bars up to now — use a trailing window",
                                 user_location(2))
        if center or options:
            raise UnsupportedOperation(f"rolling() option(s) {sorted(options) or ['center']}")
        return Rolling(self, _whole(window, "rolling window", positive=True),
                       None if min_periods is None else _whole(min_periods, "min_periods"))

    def ewm(self, com: float | None = None, span: float | None = None, halflife: Any = None,
            alpha: float | None = None, adjust: bool = True, min_periods: int = 0,
            **options: Any) -> "EWM":
        if options or min_periods:
            raise UnsupportedOperation(f"ewm() option(s) {sorted(options) or ['min_periods']}")
        return EWM(self, _ewm_alpha(com, span, halflife, alpha), bool(adjust))

    def expanding(self, min_periods: int = 1, **options: Any) -> "Expanding":
        if options:
            raise UnsupportedOperation(f"expanding() option(s) {sorted(options)}")
        return Expanding(self, _whole(min_periods, "min_periods"))

    def cumsum(self) -> "Expr":
        return _unary("cumsum", self)

    def cumprod(self) -> "Expr":
        return _unary("cumprod", self)

    def cummax(self) -> "Expr":
        return _unary("cummax", self)

    def cummin(self) -> "Expr":
        return _unary("cummin", self)

    def ffill(self) -> "Expr":
        return _unary("ffill", self)

    @property
    def iloc(self) -> "_Last":
        """``s.iloc[-1]``: the value at the current bar, which is what a node's series already is."""
        return _Last(self)

    @property
    def values(self) -> "_Last":
        return _Last(self)

    def to_numpy(self) -> "_Last":
        return _Last(self)

    def clip(self, lower: float | None = None, upper: float | None = None) -> "Expr":
        attrs = {}
        for key, bound in (("lower", lower), ("upper", upper)):
            if bound is not None:
                if not _is_number(bound):
                    raise UnsupportedOperation(f"clip({key}=<{type(bound).__name__}>): only number bounds")
                attrs[key] = _plain_number(bound)
        return Expr("clip", (self,), attrs, label=self.label)

    def where(self, cond: Any, other: Any = math.nan) -> "Expr":
        return Expr("where", (as_expr(cond), self, as_expr(other)), label=self.label)

    def mask(self, cond: Any, other: Any = math.nan) -> "Expr":
        return Expr("where", (as_expr(cond), as_expr(other), self), label=self.label)

    def astype(self, dtype: Any) -> "Expr":
        return Expr("astype", (self,), {"dtype": _dtype_name(dtype)}, label=self.label)

    def fillna(self, value: Any = None) -> "Expr":
        if not _is_number(value):
            raise UnsupportedOperation(f"fillna({value!r}): only a number fill value")
        return Expr("fillna", (self,), {"value": _plain_number(value)}, label=self.label)

    def rename(self, name: str) -> "Expr":
        out = Expr(self.op, self.args, self.attrs, label=name, node=self.node, loc=self.loc)
        out._columns = self._columns
        return out

    def to_frame(self, name: str | None = None) -> "Frame":
        key = name if name is not None else (self.label if self.label is not None else "0")
        return Frame(columns={str(key): self})

    # --- numpy --------------------------------------------------------------------------------
    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        op = _UFUNCS.get(ufunc.__name__)
        if method != "__call__" or kwargs or op is None:
            raise UnsupportedOperation(f"unsupported numpy function numpy.{ufunc.__name__}")
        args = tuple(as_expr(x) for x in inputs)
        return Expr(op, args, label=_common_label(args))

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        if func is np.where and len(args) == 3 and not kwargs:
            return where(*args)
        raise UnsupportedOperation(f"unsupported numpy function numpy.{func.__name__}")


class _WindowStats:
    """A window object's statistics (pandas ``Rolling``/``Expanding``): each is one op."""

    _kind = ""

    def _op(self, stat: str, **extra: Any) -> Expr:
        raise NotImplementedError

    def mean(self) -> Expr: return self._op("mean")
    def sum(self) -> Expr: return self._op("sum")
    def min(self) -> Expr: return self._op("min")
    def max(self) -> Expr: return self._op("max")
    def std(self, ddof: int = 1) -> Expr: return self._op("std", ddof=_whole(ddof, "ddof"))
    def var(self, ddof: int = 1) -> Expr: return self._op("var", ddof=_whole(ddof, "ddof"))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise UnsupportedAttribute(unsupported_method(self._kind, name, type(self)), user_location(2))


class Rolling(_WindowStats):
    """``series.rolling(window, min_periods)``: a windowed statistic is one ``rolling_*`` op."""

    _kind = "Rolling"

    def __init__(self, source: Expr, window: int, min_periods: int | None):
        self._source, self._window, self._min_periods = source, window, min_periods

    def _op(self, stat: str, **extra: Any) -> Expr:
        attrs: dict[str, Any] = {"window": self._window, **extra}
        if self._min_periods is not None:
            attrs["min_periods"] = self._min_periods
        return Expr(f"rolling_{stat}", (self._source,), attrs, label=self._source.label,
                    loc=user_location(3))


class Expanding(_WindowStats):
    """``series.expanding(min_periods)``: a statistic over the whole history so far."""

    _kind = "Expanding"

    def __init__(self, source: Expr, min_periods: int):
        self._source, self._min_periods = source, min_periods

    def _op(self, stat: str, **extra: Any) -> Expr:
        return Expr(f"expanding_{stat}", (self._source,), {"min_periods": self._min_periods, **extra},
                    label=self._source.label, loc=user_location(3))


class _Last:
    """``s.iloc``/``s.values``: only the last element is traceable (a node's value at the current bar)."""

    def __init__(self, source: Expr):
        self._source = source

    def __getitem__(self, key: Any) -> Expr:
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool) and int(key) == -1:
            return self._source
        raise UnsupportedOperation(f"positional access [{key!r}] (only [-1], the current bar, is traceable)")


class EWM:
    """``series.ewm(...)``: only ``.mean()``, over the whole history (as pandas computes it)."""

    def __init__(self, source: Expr, alpha: float, adjust: bool):
        self._source, self._alpha, self._adjust = source, alpha, adjust

    def mean(self) -> Expr:
        return Expr("ewm_mean", (self._source,), {"alpha": self._alpha, "adjust": self._adjust},
                    label=self._source.label)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise UnsupportedAttribute(unsupported_method("ExponentialMovingWindow", name, type(self)),
                                   user_location(2))


class Frame:
    """A symbolic DataFrame: either columns of one value (``source``) or explicit named columns.

    ``known`` lists the columns a source value has when that is known (an upstream frame); bars have
    whatever fields the data has, so any column name is accepted for them.
    """

    def __init__(self, source: Expr | None = None, columns: dict[str, Expr] | None = None,
                 known: tuple[str, ...] | None = None):
        self._source = source
        self._explicit = dict(columns or {})
        self._known = known

    @property
    def explicit_columns(self) -> dict[str, Expr] | None:
        """Every column by name when all of them are known, else ``None`` (a frame over bars)."""
        if self._source is None:
            return dict(self._explicit)
        if self._known is not None:
            out = {c: self._column(c) for c in self._known}
            out.update(self._explicit)
            return out
        return None

    @property
    def source(self) -> Expr | None:
        return self._source

    @property
    def added_columns(self) -> dict[str, Expr]:
        """Columns assigned into this frame (``df["x"] = ...``) or given explicitly."""
        return dict(self._explicit)

    @property
    def columns(self) -> list[str]:
        cols = self.explicit_columns
        if cols is None:
            raise UnsupportedOperation("DataFrame.columns of bars (fields are known only at run time)")
        return list(cols)

    def _column(self, name: str) -> Expr:
        if name in self._explicit:
            return self._explicit[name]
        if self._source is None or (self._known is not None and name not in self._known):
            have = ", ".join(self._known or self._explicit) or "no columns"
            raise UnknownColumnError(f"frame has no column {name!r} (has: {have})", user_location(3))
        return self._source.column(name)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return self._column(key)
        if isinstance(key, (list, tuple)) and all(isinstance(k, str) for k in key):
            return Frame(columns={k: self._column(k) for k in key})
        raise UnsupportedOperation(f"indexing a frame with {type(key).__name__} (DataFrame[...])")

    def __setitem__(self, key: Any, value: Any) -> None:
        if not isinstance(key, str):
            raise UnsupportedOperation(f"assigning a frame column keyed by {type(key).__name__}")
        self._explicit[key] = as_expr(value)

    def assign(self, **columns: Any) -> "Frame":
        out = Frame(self._source, self._explicit, self._known)
        for key, value in columns.items():
            out[key] = value
        return out

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in _PER_COLUMN:
            return _ColumnwiseMethod(self, name)
        if hasattr(pd.DataFrame, name):
            raise UnsupportedAttribute(unsupported_method("DataFrame", name, type(self), pd.DataFrame),
                                       user_location(2))
        return self._column(name)

    # --- pandas DataFrame arithmetic: column by column, aligned on column names ------------------
    def _columnwise(self, fn, other: Any = None, binary: bool = False) -> "Frame":
        cols = self.explicit_columns
        if cols is None:
            raise UnsupportedOperation("arithmetic on a whole bar frame (its fields are known only at "
                                       "run time); select columns first: frame[['close']]")
        if binary and isinstance(other, Frame):
            theirs = other.explicit_columns
            if theirs is None or set(theirs) != set(cols):
                raise UnsupportedOperation("arithmetic between frames with different columns")
            return Frame(columns={c: fn(e, theirs[c]) for c, e in cols.items()})
        return Frame(columns={c: (fn(e, other) if binary else fn(e)) for c, e in cols.items()})

    def __add__(self, o): return self._columnwise(lambda a, b: a + b, o, True)
    def __radd__(self, o): return self._columnwise(lambda a, b: b + a, o, True)
    def __sub__(self, o): return self._columnwise(lambda a, b: a - b, o, True)
    def __rsub__(self, o): return self._columnwise(lambda a, b: b - a, o, True)
    def __mul__(self, o): return self._columnwise(lambda a, b: a * b, o, True)
    def __rmul__(self, o): return self._columnwise(lambda a, b: b * a, o, True)
    def __truediv__(self, o): return self._columnwise(lambda a, b: a / b, o, True)
    def __rtruediv__(self, o): return self._columnwise(lambda a, b: b / a, o, True)
    def __pow__(self, o): return self._columnwise(lambda a, b: a ** b, o, True)
    def __gt__(self, o): return self._columnwise(lambda a, b: a > b, o, True)
    def __ge__(self, o): return self._columnwise(lambda a, b: a >= b, o, True)
    def __lt__(self, o): return self._columnwise(lambda a, b: a < b, o, True)
    def __le__(self, o): return self._columnwise(lambda a, b: a <= b, o, True)
    def __and__(self, o): return self._columnwise(lambda a, b: a & b, o, True)
    def __or__(self, o): return self._columnwise(lambda a, b: a | b, o, True)
    def __neg__(self): return self._columnwise(lambda a: -a)
    def __abs__(self): return self._columnwise(lambda a: abs(a))
    def __invert__(self): return self._columnwise(lambda a: ~a)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if len(inputs) != 1 or inputs[0] is not self:
            raise UnsupportedOperation(f"numpy.{ufunc.__name__} with a frame among several operands")
        return self._columnwise(lambda a: getattr(np, ufunc.__name__)(a))

    def __bool__(self) -> bool:
        raise UnsupportedOperation("Python control flow on a frame (bool() / if)")

    def __len__(self) -> int:
        raise UnsupportedOperation("len() of a frame (its length is known only at run time)")

    def __iter__(self) -> Iterator[Any]:
        raise UnsupportedOperation("iteration over a frame")

    def __repr__(self) -> str:
        cols = self.explicit_columns
        return f"<Frame {list(cols) if cols is not None else repr(self._source)}>"


class OpaqueWindow(Frame):
    """An opaque node's window while tracing its reader: it returns a Series or a DataFrame, known
    only at run time.  Named columns are columns; anything a Series does reads its value as a number
    series (``value_of``), so a traced node after an opaque one stays traced."""

    def _series(self) -> Expr:
        return Expr("value_of", (self._source,), label=self._source.label)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if hasattr(Expr, name) and not hasattr(pd.DataFrame, name) or name in _PER_COLUMN:
            return getattr(self._series(), name)
        return super().__getattr__(name)

    def _columnwise(self, fn, other: Any = None, binary: bool = False) -> Any:
        series = self._series()
        if binary:
            return fn(series, other._series() if isinstance(other, OpaqueWindow) else other)
        return fn(series)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        args = tuple(self._series() if x is self else x for x in inputs)
        return getattr(np, ufunc.__name__)(*args, **kwargs)


#: DataFrame methods traced column by column (each column is the Series method)
_PER_COLUMN = frozenset({"pct_change", "diff", "shift", "abs", "clip", "fillna", "ffill", "cumsum",
                         "cumprod", "cummax", "cummin", "astype", "rolling", "ewm", "expanding", "where",
                         "mask"})


class _ColumnwiseMethod:
    """``frame.<method>(...)``: the Series method on each column; a window object (``rolling``,
    ``ewm``, ``expanding``) maps its statistic over the columns too."""

    def __init__(self, frame: Frame, name: str):
        self._frame, self._name = frame, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        cols = self._frame.explicit_columns
        if cols is None:
            raise UnsupportedOperation(f"DataFrame.{self._name} on a whole bar frame; select columns first")
        results = {c: getattr(e, self._name)(*args, **kwargs) for c, e in cols.items()}
        if all(isinstance(r, Expr) for r in results.values()):
            return Frame(columns=results)
        return _ColumnwiseWindow(results)


class _ColumnwiseWindow:
    def __init__(self, windows: dict[str, Any]):
        self._windows = windows

    def __getattr__(self, stat: str) -> Any:
        if stat.startswith("_"):
            raise AttributeError(stat)

        def apply(*args: Any, **kwargs: Any) -> Frame:
            return Frame(columns={c: getattr(w, stat)(*args, **kwargs) for c, w in self._windows.items()})
        return apply


# --- recording what a traced function built ----------------------------------------------------

# A traced compute function may build values it never returns.  The frontend emits those too (the
# DCE pass then removes them and warns, W201), so every Expr built while a recorder is open is kept,
# in creation order (which is a valid definition order: an Expr's operands exist before it).
_RECORDERS: list[list[Expr]] = []


class recording_exprs:
    """Context manager collecting every ``Expr`` created inside it, in creation order."""

    def __enter__(self) -> list[Expr]:
        self.built: list[Expr] = []
        _RECORDERS.append(self.built)
        return self.built

    def __exit__(self, *exc: object) -> None:
        _RECORDERS.remove(self.built)


# --- constructors --------------------------------------------------------------------------------

def node_ref(node: "Node") -> Expr:
    """The whole value of an SDK node (bars, a frame or a series) as a tree leaf."""
    return Expr("node_ref", node=node, loc=user_location(2))


def const(value: Any) -> Expr:
    """A Python number as a ``const`` op; its dtype follows the Python type (bool, int, float)."""
    value = _plain_number(value)
    dtype = "bool" if isinstance(value, bool) else ("i64" if isinstance(value, int) else "f64")
    return Expr("const", (), {"value": value, "dtype": dtype}, loc=user_location(3))


def as_expr(x: Any) -> Expr:
    """An operand as an ``Expr``: trees pass through, SDK nodes become references, numbers consts."""
    from .nodes import Node  # nodes imports this module

    if isinstance(x, Expr):
        return x
    if isinstance(x, Node):
        return node_ref(x)
    if _is_number(x):
        return const(x)
    if isinstance(x, Frame):
        raise UnsupportedOperation("a frame where a series is expected (select a column first)")
    raise UnsupportedOperation(f"combining a traced series with a {type(x).__name__}")


def where(cond: Any, a: Any, b: Any) -> Expr:
    """``np.where(cond, a, b)``."""
    a_, b_ = as_expr(a), as_expr(b)
    return Expr("where", (as_expr(cond), a_, b_), label=_common_label((a_, b_)), loc=user_location(2))


def is_symbolic(x: Any) -> bool:
    """True for values the tracer or expression API built (so helpers pick the symbolic path)."""
    from .nodes import Node

    return isinstance(x, (Expr, Frame, Node))


# --- helpers -------------------------------------------------------------------------------------

_UFUNCS = {
    "log": "log", "exp": "exp", "sqrt": "sqrt", "absolute": "abs", "fabs": "abs", "sign": "sign",
    "maximum": "maximum", "minimum": "minimum", "negative": "neg", "add": "add",
    "subtract": "sub", "multiply": "mul", "true_divide": "div", "divide": "div", "power": "pow",
    "greater": "gt", "greater_equal": "ge", "less": "lt", "less_equal": "le", "equal": "eq",
    "not_equal": "ne", "logical_and": "and", "logical_or": "or", "logical_not": "not",
    **{fn: fn for fn in MATH_UFUNCS},
}

_DTYPES = {"int": "i64", "int64": "i64", "i64": "i64", "float": "f64", "float64": "f64", "f64": "f64",
           "bool": "bool"}


def _binary(op: str, a: Any, b: Any) -> Expr:
    for x in (a, b):
        if isinstance(x, (str, bytes)) or x is None:
            raise OperandTypeError(f"operator {_SYMBOLS.get(op, op)} between a series and "
                                   f"{x!r} ({type(x).__name__}); use a number", user_location(3))
    a_, b_ = as_expr(a), as_expr(b)
    return Expr(op, (a_, b_), label=_common_label((a_, b_)), loc=user_location(3))


def _unary(op: str, a: Expr) -> Expr:
    return Expr(op, (a,), label=a.label, loc=user_location(3))


def _common_label(args: tuple[Expr, ...]) -> str | None:
    """pandas keeps a result's name when every named operand agrees on it."""
    labels = {a.label for a in args if a.op != "const"}
    return labels.pop() if len(labels) == 1 else None


def _is_number(x: Any) -> bool:
    return isinstance(x, (bool, int, float, np.bool_, np.integer, np.floating))


def _plain_number(x: Any) -> bool | int | float:
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x)
    raise UnsupportedOperation(f"{type(x).__name__} where a number is expected")


_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**", "gt": ">", "ge": ">=",
            "lt": "<", "le": "<=", "eq": "==", "ne": "!=", "and": "&", "or": "|"}


def _backward(periods: Any, method: str) -> int:
    """``periods`` of shift/diff/pct_change, refused when negative: that reads future bars."""
    n = _whole(periods, f"{method} periods", loc=user_location(3))
    if n < 0:
        raise LookAheadError(f"{method}({n}) reads {-n} bar(s) after the current one (look-ahead); a "
                             f"node's value at a bar may only use bars up to it ({method}({-n}) looks back)",
                             user_location(3))
    return n


def _whole(x: Any, what: str, positive: bool = False, loc: Loc | None = None) -> int:
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
        raise UnsupportedOperation(f"{what}={x!r} (only a whole number is traceable)", loc or user_location(3))
    if positive and int(x) <= 0:
        raise UnsupportedOperation(f"{what}={x!r} must be positive", loc or user_location(3))
    return int(x)


def _ewm_alpha(com: float | None, span: float | None, halflife: Any, alpha: float | None) -> float:
    given = [(k, v) for k, v in (("com", com), ("span", span), ("halflife", halflife), ("alpha", alpha))
             if v is not None]
    if len(given) != 1:
        raise UnsupportedOperation("ewm() needs exactly one of com=, span=, halflife=, alpha=")
    key, value = given[0]
    if not _is_number(value):
        raise UnsupportedOperation(f"ewm({key}={value!r})")
    value = float(value)
    if key == "span":
        return 2.0 / (value + 1.0)
    if key == "com":
        return 1.0 / (1.0 + value)
    if key == "halflife":
        return 1.0 - math.exp(-math.log(2.0) / value)
    return value


def _dtype_name(dtype: Any) -> str:
    if dtype in (int, np.int64, np.int32):
        return "i64"
    if dtype in (float, np.float64, np.float32):
        return "f64"
    if dtype in (bool, np.bool_):
        return "bool"
    key = str(dtype)
    if key in _DTYPES:
        return _DTYPES[key]
    raise UnsupportedOperation(f"astype({dtype!r}): only int, float or bool")
