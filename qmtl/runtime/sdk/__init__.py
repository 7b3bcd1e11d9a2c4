"""The user-facing SDK: declare a strategy's nodes; qmtl compiles them.

``Runner`` (``qmtl.runner``) sits above the whole pipeline; it is resolved here on first use, for
users who import everything from one place, so declaring and compiling a strategy loads none of it.
"""

from __future__ import annotations

import importlib
from typing import Any

from .cache_view import CacheView, FrameWrapper
from .errors import MissingColumnsError, SDKArgumentError, UnsupportedOperation
from .execution import Execution, RiskControl, TimingGate
from .expr import Expr, Frame
from .indicators import atr, bollinger, ema, macd, rsi, sma, zscore
from .intervals import parse_interval
from .nodes import MatchMode, Node, StreamInput, TagQueryNode
from .strategy import Strategy

__all__ = [
    "Strategy", "Node", "StreamInput", "TagQueryNode", "MatchMode", "CacheView", "FrameWrapper",
    "RiskControl", "TimingGate", "Execution", "Runner", "Expr", "Frame", "sma", "ema", "rsi", "macd", "bollinger", "atr", "zscore",
    "SDKArgumentError", "UnsupportedOperation", "MissingColumnsError", "parse_interval",
]


def __getattr__(name: str) -> Any:
    if name == "Runner":
        return importlib.import_module("qmtl.runner").Runner
    raise AttributeError(f"module 'qmtl.runtime.sdk' has no attribute {name!r}")
