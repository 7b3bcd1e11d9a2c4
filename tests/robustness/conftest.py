"""Shared, module-independent fixtures for the robustness suite: data sets and compiled strategies.

Compiling and JIT-ing a strategy costs about a second, so each strategy is compiled once per session
and shared by every test that runs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

import qmtl
from qmtl.compiler.compiled import CompiledStrategy
from qmtl.runtime.synthetic import synthetic_bars

STRATEGIES = Path(__file__).parent / "strategies"


def strategy_path(stem: str) -> Path:
    return STRATEGIES / f"{stem}.py"


@pytest.fixture(scope="session")
def datasets() -> dict[str, Any]:
    """~300 bars each: one symbol, two symbols in one frame, two frames bound by tag."""
    return {
        "single": synthetic_bars(300, seed=3),
        "multi": synthetic_bars(300, symbols=("AAA", "BBB"), seed=4),
        "pair_dict": {"AAA": synthetic_bars(300, seed=5), "BBB": synthetic_bars(300, seed=6)},
        "crypto_dict": {"crypto": synthetic_bars(300, symbols=("BTC", "ETH", "SOL"), seed=7)},
    }


@pytest.fixture(scope="session")
def compiled() -> Callable[[str], CompiledStrategy]:
    cache: dict[str, CompiledStrategy] = {}

    def get(stem: str) -> CompiledStrategy:
        if stem not in cache:
            cache[stem] = qmtl.compile(strategy_path(stem))
        return cache[stem]

    return get
