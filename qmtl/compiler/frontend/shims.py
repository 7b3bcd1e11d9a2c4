"""Tracing shims for pandas and numpy, and the traced copy of a compute function.

pandas cannot hold symbolic values (``pd.DataFrame({"signal": expr})`` would try to read it), so the
traced copy of a function sees, wherever its module bound pandas or numpy (``pd``, ``np``,
``from pandas import DataFrame`` …), a stand-in that builds symbolic frames when given symbolic values
and defers to the real library otherwise.  The user's module globals are copied, never modified.
"""

from __future__ import annotations

import types
from typing import Any, Callable

import numpy as np
import pandas as pd

from qmtl.runtime.sdk.errors import UnsupportedOperation
from qmtl.runtime.sdk.expr import Expr, Frame, as_expr, is_symbolic, where
from qmtl.runtime.sdk.source_location import user_location


def _symbolic_dataframe(data: Any = None, index: Any = None, columns: Any = None, **kwargs: Any) -> Any:
    if isinstance(data, Frame):
        return Frame(data.source, data.added_columns) if columns is None else data[list(columns)]
    if isinstance(data, dict) and any(is_symbolic(v) for v in data.values()):
        if index is not None or kwargs:
            raise UnsupportedOperation("pd.DataFrame(...) with index= or other options", user_location(2))
        keys = list(columns) if columns is not None else list(data)
        if not all(isinstance(k, str) for k in keys):
            raise UnsupportedOperation("pd.DataFrame with non-string column names", user_location(2))
        return Frame(columns={k: as_expr(data[k]) for k in keys})
    if is_symbolic(data):
        raise UnsupportedOperation(f"pd.DataFrame({type(data).__name__})", user_location(2))
    return pd.DataFrame(data, index=index, columns=columns, **kwargs)


def _symbolic_series(data: Any = None, *args: Any, name: Any = None, **kwargs: Any) -> Any:
    if isinstance(data, Expr):
        if args or kwargs:
            raise UnsupportedOperation("pd.Series(series, ...) with options", user_location(2))
        return data.rename(name) if name is not None else data
    if is_symbolic(data):
        raise UnsupportedOperation(f"pd.Series({type(data).__name__})", user_location(2))
    return pd.Series(data, *args, name=name, **kwargs)


def _symbolic_concat(objs: Any, axis: Any = 0, **kwargs: Any) -> Any:
    items = list(objs.values()) if isinstance(objs, dict) else list(objs)
    if not any(is_symbolic(x) for x in items):
        return pd.concat(objs, axis=axis, **kwargs)
    if axis not in (1, "columns") or kwargs:
        raise UnsupportedOperation("pd.concat of series along rows (only axis=1 is traceable)",
                                   user_location(2))
    names = list(objs) if isinstance(objs, dict) else [None] * len(items)
    columns: dict[str, Expr] = {}
    for i, (key, item) in enumerate(zip(names, items)):
        for name, value in _as_columns(item, key, i).items():
            if name in columns:
                raise UnsupportedOperation(f"pd.concat with duplicate column {name!r}", user_location(3))
            columns[name] = value
    return Frame(columns=columns)


def _as_columns(item: Any, key: Any, position: int) -> dict[str, Expr]:
    if isinstance(item, Frame):
        cols = item.explicit_columns
        if cols is None:
            raise UnsupportedOperation("pd.concat of bars (their columns are known only at run time)",
                                       user_location(4))
        return cols
    expr = as_expr(item)
    label = key if key is not None else expr.label
    return {str(label) if label is not None else str(position): expr}


def _symbolic_where(cond: Any, *rest: Any) -> Any:
    if len(rest) == 2 and any(is_symbolic(x) for x in (cond, *rest)):
        return where(cond, *rest)
    return np.where(cond, *rest)


class _Delegating(type):
    """A class that builds symbolic values when called, and stands for the real class otherwise."""

    _real: type
    _symbolic: type
    _build: Callable[..., Any]

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls._build(*args, **kwargs)

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, (cls._real, cls._symbolic))

    def __getattr__(cls, name: str) -> Any:
        return getattr(cls._real, name)


class DataFrameShim(metaclass=_Delegating):
    _real, _symbolic, _build = pd.DataFrame, Frame, staticmethod(_symbolic_dataframe)


class SeriesShim(metaclass=_Delegating):
    _real, _symbolic, _build = pd.Series, Expr, staticmethod(_symbolic_series)


class _ModuleShim(types.ModuleType):
    """A module whose attributes are the real module's, except the ones overridden."""

    def __init__(self, real: types.ModuleType, overrides: dict[str, Any]):
        super().__init__(real.__name__)
        self.__dict__.update(overrides)
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


PANDAS_SHIM = _ModuleShim(pd, {"DataFrame": DataFrameShim, "Series": SeriesShim, "concat": _symbolic_concat})
NUMPY_SHIM = _ModuleShim(np, {"where": _symbolic_where})

_REPLACEMENTS: dict[int, Any] = {
    id(pd): PANDAS_SHIM, id(np): NUMPY_SHIM, id(pd.DataFrame): DataFrameShim, id(pd.Series): SeriesShim,
    id(pd.concat): _symbolic_concat, id(np.where): _symbolic_where,
}


def _shimmed(value: Any) -> Any:
    return _REPLACEMENTS.get(id(value), value)


#: How deep helper functions of helper functions (through closures) are copied too.
_MAX_HELPER_DEPTH = 8


def traced_copy(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A copy of ``fn`` that sees the shims wherever its globals or closure hold pandas/numpy.

    The helper functions it calls from its own module (module-level, or closed over) are copied the
    same way, so ``pd.DataFrame({...})`` built in a helper traces exactly as it does inline: where a
    piece of pandas code is written must not change what it means."""
    if not isinstance(fn, types.FunctionType):
        raise UnsupportedOperation(f"compute_fn is a {type(fn).__name__}, not a Python function",
                                   user_location(2))
    home = fn.__globals__
    globals_ = {k: _shimmed(v) for k, v in home.items()}
    copies: dict[int, types.FunctionType] = {}
    for name, value in home.items():
        if _is_helper(value, home) and value is not fn:
            globals_[name] = _copy(value, home, globals_, copies, 1)
    return _copy(fn, home, globals_, copies, 0)


def _is_helper(value: Any, home: dict[str, Any]) -> bool:
    """A plain Python function written in the compute function's own module."""
    return isinstance(value, types.FunctionType) and value.__globals__ is home


def _copy(fn: types.FunctionType, home: dict[str, Any], globals_: dict[str, Any],
          copies: dict[int, types.FunctionType], depth: int) -> types.FunctionType:
    if id(fn) in copies:
        return copies[id(fn)]
    closure = None
    if fn.__closure__ is not None:
        closure = tuple(_shimmed_cell(cell, home, globals_, copies, depth) for cell in fn.__closure__)
    copy = types.FunctionType(fn.__code__, globals_, fn.__name__, fn.__defaults__, closure)
    copy.__kwdefaults__ = fn.__kwdefaults__
    copy.__dict__.update(fn.__dict__)
    copies[id(fn)] = copy
    return copy


def _shimmed_cell(cell: types.CellType, home: dict[str, Any], globals_: dict[str, Any],
                  copies: dict[int, types.FunctionType], depth: int) -> types.CellType:
    try:
        value = cell.cell_contents
    except ValueError:  # an empty cell: nothing to replace
        return cell
    if _is_helper(value, home) and depth < _MAX_HELPER_DEPTH:
        return types.CellType(_copy(value, home, globals_, copies, depth + 1))
    replacement = _shimmed(value)
    return cell if replacement is value else types.CellType(replacement)
