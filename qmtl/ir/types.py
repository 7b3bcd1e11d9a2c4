"""Value types of the IR.

Every SSA value is a time series over one clock (an interval in seconds) and, at run time, one
instrument key.  The type says what one tick of it holds:

* ``bars``            a bar record (``ts open high low close volume`` …) from a source;
* ``series<D>``       one number per tick, ``D`` in ``f64 | i64 | bool``;
* ``scalar<D>``       a constant, broadcast against series in element-wise ops;
* ``frame<c:D, …>``   several named columns per tick (what a compute function returns);
* ``opaque``          whatever an opaque Python function returns (known only at run time).

Types are frozen and hashable so modules built from them compare by value.
"""

from __future__ import annotations

from dataclasses import dataclass

DTYPES = ("f64", "i64", "bool")
KINDS = ("bars", "series", "scalar", "frame", "opaque")


@dataclass(frozen=True, slots=True)
class Type:
    kind: str
    dtype: str | None = None
    columns: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown type kind {self.kind!r}")
        if self.kind in ("series", "scalar") and self.dtype not in DTYPES:
            raise ValueError(f"{self.kind} needs a dtype in {DTYPES}, got {self.dtype!r}")

    @property
    def is_numeric(self) -> bool:
        return self.kind in ("series", "scalar")

    def __str__(self) -> str:
        if self.kind in ("series", "scalar"):
            return f"{self.kind}<{self.dtype}>"
        if self.kind == "frame":
            return "frame<" + ", ".join(f"{c}: {d}" for c, d in self.columns) + ">"
        return self.kind


BARS = Type("bars")
OPAQUE = Type("opaque")
F64 = Type("series", "f64")
I64 = Type("series", "i64")
BOOL = Type("series", "bool")


def series(dtype: str) -> Type:
    return Type("series", dtype)


def scalar(dtype: str) -> Type:
    return Type("scalar", dtype)


def frame(columns: dict[str, str] | tuple[tuple[str, str], ...]) -> Type:
    items = tuple(columns.items()) if isinstance(columns, dict) else tuple(columns)
    return Type("frame", None, items)


def promote(*dtypes: str) -> str:
    """Numeric promotion used by arithmetic: bool < i64 < f64 (as numpy does for these three)."""
    order = {"bool": 0, "i64": 1, "f64": 2}
    return max(dtypes, key=order.__getitem__) if dtypes else "f64"
