"""Errors the SDK raises for the user's mistakes, each carrying the user's source location."""

from __future__ import annotations

from qmtl.ir.module import Loc

from .source_location import short, user_location


class SDKArgumentError(ValueError):
    """A bad argument to an SDK constructor (interval, period, input, …).

    The frontend reports it as ``code`` (E304 unless a subclass says otherwise) at ``loc`` — the line
    in the strategy file that built the node.  Raised inside a traced compute function it is an error
    too, never a reason to fall back to an opaque call: the same call would fail, or compute nonsense,
    at run time.
    """

    code = "E304"

    def __init__(self, message: str, loc: Loc | None = None):
        self.loc = loc if loc is not None else user_location(2)
        self.reason = message
        super().__init__(f"{message} (at {short(self.loc)})" if self.loc else message)


class LookAheadError(SDKArgumentError):
    """An operation that needs bars after the current one (``shift(-1)``, ``rolling(center=True)``).

    A node's value at bar t may only use bars up to t, so such an operation could only ever produce
    NaN (the per-tick window holds no future bars) — in a backtest it would silently compute nothing,
    and anywhere else it would be a leak.  Reported as E310.
    """

    code = "E310"


class UnknownColumnError(SDKArgumentError, KeyError, AttributeError):
    """A column a frame whose columns are known does not have (a typo, or a column an upstream node
    never produced): E304.  Also a ``KeyError``/``AttributeError``, as pandas raises, so user code that
    probes for a column with ``try``/``getattr`` behaves as it does at run time."""

    def __str__(self) -> str:
        return ValueError.__str__(self)


class OperandTypeError(SDKArgumentError):
    """An operator applied to a series and a value that cannot be a number (``close / "100"``): E106."""

    code = "E106"


class UnsupportedOperation(TypeError):
    """Something a traced value cannot do symbolically (an unknown method, ``bool()`` on a series, …).

    Inside a traced compute function it makes the node fall back to an opaque call; in the expression
    API it reaches the user as a plain error.  ``reason`` ends with ``at file.py:LINE``.
    """

    def __init__(self, what: str, loc: Loc | None = None):
        self.loc = loc if loc is not None else user_location(2)
        self.reason = f"{what} at {short(self.loc)}"
        super().__init__(self.reason)
        if _RECORDERS:
            _RECORDERS[-1].append(self)


class MissingColumnsError(KeyError):
    """A frame lacks columns the compute function asked for."""

    def __init__(self, missing: list[str], present: list[str]):
        self.missing = missing
        self.message = (f"frame is missing column(s) {', '.join(repr(c) for c in missing)} "
                        f"(has: {', '.join(map(str, present)) or 'no columns'})")
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


# Tracing wants the *first* unsupported operation a compute function hit, even when later code (or a
# library) caught it and failed differently; each UnsupportedOperation registers itself here.
_RECORDERS: list[list[UnsupportedOperation]] = []


class recording_unsupported:
    """Context manager collecting every ``UnsupportedOperation`` raised inside it."""

    def __enter__(self) -> list[UnsupportedOperation]:
        self.seen: list[UnsupportedOperation] = []
        _RECORDERS.append(self.seen)
        return self.seen

    def __exit__(self, *exc: object) -> None:
        _RECORDERS.remove(self.seen)
