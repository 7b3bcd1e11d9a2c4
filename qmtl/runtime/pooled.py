"""Large numeric arrays allocated from Arrow's memory pool instead of the C allocator.

A run reads its bars through Arrow and writes results of the same length; numpy's ``np.empty`` of
millions of entries maps fresh pages from the kernel on every run and gives them back when freed,
and on a virtual machine touching a fresh page costs several times what the kernels do with it.
Arrow's pool (mimalloc or jemalloc) keeps freed pages for the next allocation, so a second run in
the same process — a notebook, a service, a parameter sweep — writes into memory it already has.
The arrays are ordinary writable numpy arrays; the pool's buffer lives as long as they do.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

#: below this many bytes the C allocator's own free lists already reuse memory
_POOLED_FROM = 1 << 20


def empty(n: int, dtype: object) -> np.ndarray:
    """An uninitialised numeric array of ``n`` entries."""
    dtype = np.dtype(dtype)
    if dtype.hasobject or n * dtype.itemsize < _POOLED_FROM:
        return np.empty(n, dtype=dtype)
    return np.frombuffer(pa.allocate_buffer(n * dtype.itemsize), dtype=dtype)
