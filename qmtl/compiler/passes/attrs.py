"""Canonical spelling of one op's attributes (used by canonicalize, and by fold for the consts it makes).

One meaning, one spelling: registry defaults filled in, float attributes stored as floats (``-0.0`` as
``0.0``), integer attributes as ints, ``tags`` sorted and de-duplicated, a ``const``'s value stored in
its declared dtype.  Values that cannot be normalised without guessing are left as they are and
reported (E107) so the user sees the field and the problem.
"""

from __future__ import annotations

import math
import re

from qmtl.ir import ops as opreg
from qmtl.ir.diagnostics import Diagnostic
from qmtl.ir.module import AttrValue, Op, make_attrs

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def normal_float(v: float) -> float:
    """``-0.0`` → ``0.0`` so that equal constants have one spelling (NodeIDs already treat them alike)."""
    return 0.0 if v == 0 else float(v)


def canonical_attrs(op: Op) -> tuple[tuple[tuple[str, AttrValue], ...], list[Diagnostic]]:
    """The op's attributes in canonical form, plus E107 findings for values that cannot be fixed."""
    opdef = opreg.REGISTRY.get(op.name)
    if opdef is None:
        return op.attrs, []
    values = {**opdef.defaults(), **op.attr_dict}
    problems: list[Diagnostic] = []
    for key, value in list(values.items()):
        spec = opdef.attrs.get(key)
        if spec is None:
            continue
        fixed, error = _normalise(op, key, value, spec)
        if error:
            problems.append(Diagnostic("E107", f"%{op.result} = {op.name}: attribute '{key}' {error}",
                                       op.loc))
        values[key] = fixed
    # an optional attribute spelled out as None means the same as leaving it out
    values = {k: v for k, v in values.items()
              if not (v is None and k in opdef.attrs and not opdef.attrs[k].required)}
    if op.name == "const":
        values["value"] = const_value(values.get("value"), values.get("dtype", "f64"))
    return make_attrs(values), problems


def const_value(value: AttrValue, dtype: AttrValue) -> AttrValue:
    """A constant's value in its dtype: ``1`` as ``1.0`` for f64, ``2.0`` as ``2`` for i64, 0/1 as bools.

    Only exact conversions are made; anything else is left for the verifier to report."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if dtype in ("f64", "i64") and isinstance(value, bool):
            return float(value) if dtype == "f64" else int(value)
        return value
    if dtype == "f64":
        return _as_float(value)
    if dtype == "i64" and isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if dtype == "bool" and value in (0, 1):
        return bool(value)
    return value


def _as_float(value: int | float) -> int | float:
    """An int as the float it equals; one too large to convert exactly is left alone (not guessed)."""
    if isinstance(value, int) and abs(value) > 2 ** 53:
        return value
    return normal_float(float(value))


def _normalise(op: Op, key: str, value: AttrValue, spec: opreg.AttrSpec) -> tuple[AttrValue, str]:
    if value is None or (op.name == "const" and key == "value"):  # a const's value follows its dtype
        return value, ""
    if key == "tags":
        return _tags(value)
    if key == "interval":
        return _interval(value)
    if float in spec.types and not isinstance(value, bool) and isinstance(value, (int, float)):
        return _as_float(value), ""
    if spec.types == (int,) and isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value), ""
    return value, ""


def _tags(value: AttrValue) -> tuple[AttrValue, str]:
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, tuple) or not all(isinstance(t, str) for t in value):
        return value, f"must be a list of strings, got {value!r}"
    return tuple(sorted(set(value))), ""


def _interval(value: AttrValue) -> tuple[AttrValue, str]:
    """Intervals are whole seconds; accept an integral float or a duration such as ``'1m'``."""
    if isinstance(value, bool):
        return value, f"must be a whole number of seconds, got {value!r}"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        m = _DURATION.match(value.lower())
        if m is None:
            return value, f"must be a whole number of seconds or a duration like '60s', '1m', '1h', got {value!r}"
        value = int(m.group(1)) * _SECONDS[m.group(2)]
    if not isinstance(value, int):
        return value, f"must be a whole number of seconds, got {value!r}"
    if value <= 0:
        return value, f"must be a positive number of seconds, got {value}"
    return value, ""
