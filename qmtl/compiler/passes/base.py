"""What every pass shares: the context it reports into.

A pass is a function ``(Module, PassContext) -> Module``: it reads the IR, returns new IR and appends
findings to ``ctx.diagnostics``.  Passes never raise for the user's mistakes; the driver decides
whether errors stop the compile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from qmtl.ir.diagnostics import Diagnostic
from qmtl.ir.module import Module


@dataclass
class PassContext:
    diagnostics: list[Diagnostic] = field(default_factory=list)
    # value name → bars needed to produce a value there (look-back + 1); filled by lookback inference
    required_period: dict[str, int] = field(default_factory=dict)

    def report(self, diag: Diagnostic) -> None:
        self.diagnostics.append(diag)


Pass = Callable[[Module, PassContext], Module]
