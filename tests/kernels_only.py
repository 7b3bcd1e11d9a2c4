"""Running a compiled strategy on the generated kernels only: the reference interpreter is refused,
so a test cannot pass because some node silently fell back to it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qmtl.runtime import reference


def _refuse(*_a, **_k):
    raise AssertionError("compiled.run fell back to the reference interpreter")


def kernels_only(compiled, data, batch_size=None):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(reference, "evaluate", _refuse)
        mp.setattr(reference, "evaluate_nodes", _refuse)
        return compiled.run(data, batch_size=batch_size)


def gappy(df: pd.DataFrame, seed: int, keep: float) -> pd.DataFrame:
    """``df`` with about ``1 - keep`` of its rows dropped at random (seeded)."""
    rng = np.random.default_rng(seed)
    return df[rng.random(len(df)) < keep].reset_index(drop=True)
