"""The compiler passes, IR → IR, in the order the driver runs them.

Each pass is ``run(module, ctx) -> Module`` in a module of its own; none raises for the user's
mistakes — findings go to ``ctx.diagnostics``.
"""

from __future__ import annotations

from . import canonicalize, cse, dce, fold, lookback
from .base import Pass, PassContext

# fold before canonicalize: folding changes an operand's NodeID, which orders commutative operands
PIPELINE: list[Pass] = [fold.run, canonicalize.run, cse.run, dce.run, lookback.run]

__all__ = ["PIPELINE", "Pass", "PassContext"]
