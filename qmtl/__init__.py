"""qmtl: a compiler for trading strategies.

The handful of names a user needs are re-exported here; they load lazily so that ``import qmtl`` (and
the CLI's start-up) does not pay for pandas, Numba or the services until they are used.
"""

from __future__ import annotations

from qmtl._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "compile": "qmtl.compiler.pipeline",
    "CompiledStrategy": "qmtl.compiler.compiled",
    "CompileError": "qmtl.ir.diagnostics",
    "Strategy": "qmtl.runtime.sdk",
    "Node": "qmtl.runtime.sdk",
    "StreamInput": "qmtl.runtime.sdk",
    "TagQueryNode": "qmtl.runtime.sdk",
    "MatchMode": "qmtl.runtime.sdk",
    "CacheView": "qmtl.runtime.sdk",
    "Runner": "qmtl.runtime.sdk",
    "replay": "qmtl.runner.replay",
    "ArtifactStore": "qmtl.runtime.artifacts",
    "Bars": "qmtl.runtime.data",
    "sma": "qmtl.runtime.sdk",
    "ema": "qmtl.runtime.sdk",
    "rsi": "qmtl.runtime.sdk",
    "macd": "qmtl.runtime.sdk",
    "bollinger": "qmtl.runtime.sdk",
    "atr": "qmtl.runtime.sdk",
    "zscore": "qmtl.runtime.sdk",
}

__all__, __getattr__ = lazy_exports(__name__, _EXPORTS)
