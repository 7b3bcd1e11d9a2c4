"""Findings as values: a code, a location and a message, formatted the way compilers print them.

``path:line:col: error[CODE]: text`` — every stage (frontend, passes, verifier, lint) reports through
``Diagnostic`` so the CLI prints one format and ``--format json`` emits the same fields.  Codes are
listed in the README ("Diagnostic codes").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .module import Loc


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    message: str
    loc: Loc | None = None
    severity: str = "error"  # "error" | "warning" | "note"

    def format(self, default_path: str = "<input>") -> str:
        where = f"{self.loc.file}:{self.loc.line}:{self.loc.col}" if self.loc else f"{default_path}:0:0"
        return f"{where}: {self.severity}[{self.code}]: {self.message}"

    def to_json(self, default_path: str = "<input>") -> dict:
        d = asdict(self)
        d["loc"] = ({"file": self.loc.file, "line": self.loc.line, "col": self.loc.col}
                    if self.loc else {"file": default_path, "line": 0, "col": 0})
        return d


class CompileError(Exception):
    """Raised at a boundary the user can act on; carries every error found, not just the first."""

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic):
        self.diagnostics = [diagnostics] if isinstance(diagnostics, Diagnostic) else list(diagnostics)
        super().__init__("\n".join(d.format() for d in self.diagnostics))


def errors(diags: list[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diags if d.severity == "error"]
