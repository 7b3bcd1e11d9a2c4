"""Arrays of a key's timeline that are one arithmetic step from arrays it already holds.

A run key whose sources all read one set of bars on one clock — the usual single-instrument
strategy — has as close instants exactly its bars' opens plus the interval, and every source present
at every tick.  Materialising either costs a whole array written into fresh memory: on millions of
bars, first touching those pages costs more than the kernels that read them (docs/design.md
"Performance model").  The flow reads a timeline one batch at a time, so these arrays compute each
slice when it is read and build the whole array only for the rare reader that wants all of it at
once (``numpy.asarray``)."""

from __future__ import annotations

from typing import Any

import numpy as np


class DerivedArray:
    """A read-only one-dimensional array given by ``values(index)``, built whole only on demand."""

    __slots__ = ("length", "dtype", "_whole")

    def __init__(self, length: int, dtype: Any) -> None:
        self.length = length
        self.dtype = np.dtype(dtype)
        self._whole: np.ndarray | None = None

    def values(self, index: Any) -> Any:
        raise NotImplementedError

    def whole(self) -> np.ndarray:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.length

    @property
    def shape(self) -> tuple[int]:
        return (self.length,)

    def __getitem__(self, index: Any) -> Any:
        return self.values(index)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if self._whole is None:
            self._whole = self.whole()
            self._whole.flags.writeable = False
        return self._whole if dtype is None else self._whole.astype(dtype)


class ShiftedInstants(DerivedArray):
    """``opens + shift`` (int64 epoch seconds): a source's bar opens as the close instants of its
    bars, when those are the key's whole timeline."""

    __slots__ = ("opens", "shift")

    def __init__(self, opens: np.ndarray, shift: int) -> None:
        super().__init__(len(opens), np.int64)
        self.opens, self.shift = opens, int(shift)

    def values(self, index: Any) -> Any:
        return self.opens[index] + self.shift

    def whole(self) -> np.ndarray:
        return (self.opens + self.shift).astype(np.int64, copy=False)


class Everywhere(DerivedArray):
    """All true: a source present at every tick of the timeline."""

    __slots__ = ()

    def __init__(self, length: int) -> None:
        super().__init__(length, bool)

    def values(self, index: Any) -> Any:
        if isinstance(index, slice):
            return np.ones(len(range(*index.indices(self.length))), dtype=bool)
        if isinstance(index, (int, np.integer)):
            if not -self.length <= index < self.length:
                raise IndexError(f"index {index} out of range for {self.length} ticks")
            return np.True_
        return np.asarray(self)[index]

    def whole(self) -> np.ndarray:
        return np.ones(self.length, dtype=bool)
