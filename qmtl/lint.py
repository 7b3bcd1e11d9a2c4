"""`qmtl lint --ssa`: the CI gate.  Reads a ``.qir`` dump, a DAG JSON document or a strategy file and
reports every broken invariant as a ``Diagnostic``.

Exit status contract (used by the CLI): 0 clean, 1 findings (errors), 2 unusable input (missing file,
unknown format, JSON that is not a DAG document).

It sits above the pipeline, beside ``qmtl.runner``: a DAG document gets the gateway's own verdict
(``qmtl.services.gateway.verify``), a strategy file the compiler's, so it reads both.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from typing import TYPE_CHECKING

from qmtl.ir.diagnostics import CompileError, Diagnostic
from qmtl.ir.module import Loc

if TYPE_CHECKING:
    from qmtl.compiler.compiled import CompiledStrategy

CLEAN, FINDINGS, UNUSABLE = 0, 1, 2


@dataclass
class LintReport:
    path: str
    kind: str  # "qir" | "dag" | "strategy"
    diagnostics: list[Diagnostic] = field(default_factory=list)
    unusable: bool = False

    def exit_code(self, warnings_as_errors: bool = False) -> int:
        if self.unusable:
            return UNUSABLE
        bad = {"error", "warning"} if warnings_as_errors else {"error"}
        return FINDINGS if any(d.severity in bad for d in self.diagnostics) else CLEAN


def lint_path(path: str | Path, strategy: str | None = None) -> LintReport:
    path = Path(path)
    kind = {".qir": "qir", ".json": "dag", ".py": "strategy"}.get(path.suffix, "")
    if not path.is_file():
        return _unusable(path, kind or "unknown", f"no such file: {path}")
    if not kind:
        return _unusable(path, "unknown", f"{path.name}: unknown input kind (expected .qir, .json or .py)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return _unusable(path, kind, f"cannot read {path}: {exc}")
    if kind == "qir":
        return LintReport(str(path), kind, lint_ir_text(text, str(path)))
    if kind == "dag":
        return lint_dag_text(text, str(path))
    return LintReport(str(path), kind, lint_strategy(path, strategy))


def lint_ir_text(text: str, path: str = "<input>") -> list[Diagnostic]:
    """Findings on IR text point at its own lines (an op's ``loc(...)`` names the strategy file, which
    is not what the reader of a ``.qir`` file is looking at)."""
    from qmtl.ir.parser import parse_module_with_locs
    from qmtl.ir.verifier import verify
    try:
        module, text_locs = parse_module_with_locs(text, path)
    except CompileError as exc:
        return exc.diagnostics
    return verify(module, check_ids=True, text_locs=text_locs)


def lint_dag_text(text: str, path: str = "<input>") -> LintReport:
    """The gateway's verdict on the document (``qmtl.services.gateway.verify.judge_dag``, the one
    validation function both use), with its findings located in the JSON text."""
    from qmtl.services.gateway.errors import ApiError
    from qmtl.services.gateway.verify import judge_dag, parse_dag_document
    from qmtl.services.request_guard import InputError, check_json
    try:  # the bounds every service request meets (depth, 64-bit integers, finite numbers, no NUL)
        check_json(text.encode())
    except InputError as exc:
        return _unusable(Path(path), "dag", f"not a DAG document: {exc}")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        return _unusable(Path(path), "dag", f"not JSON: {exc.msg}", Loc(path, exc.lineno, exc.colno))
    except RecursionError:
        return _unusable(Path(path), "dag", "not a DAG document: nested too deeply")
    except ValueError as exc:  # an integer of thousands of digits
        return _unusable(Path(path), "dag", f"not a DAG document: {exc}")
    try:
        model = parse_dag_document(doc)
    except ApiError as exc:
        return _unusable(Path(path), "dag", f"not a DAG document: {exc.message}")
    except RecursionError:
        return _unusable(Path(path), "dag", "not a DAG document: nested too deeply")
    return LintReport(path, "dag", judge_dag(model, _dag_text_locs(text, doc, path)).diagnostics)


_NODE_ID_KEY = re.compile(r'"node_id"\s*:\s*"((?:[^"\\]|\\.)*)"')


def _dag_text_locs(text: str, doc: dict, path: str) -> "TextLocs":
    """Where each node and output sits in the JSON text, so findings point into the file being linted
    (like a ``.qir`` lint) rather than at the strategy lines the DAG was compiled from.  Located by
    their ``"node_id": "…"`` member, matched in document order; ``None`` where it cannot be found."""
    from qmtl.ir.parser import TextLocs
    hits = [(m.group(1), m.start()) for m in _NODE_ID_KEY.finditer(text)]
    line_starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    used: set[int] = set()

    def find(node_id: object) -> Loc | None:
        for k, (value, at) in enumerate(hits):
            if k not in used and value == node_id:
                used.add(k)
                line = bisect.bisect_right(line_starts, at)
                return Loc(path, line, at - line_starts[line - 1] + 1)
        return None

    ops = tuple(find(n.get("node_id")) for n in doc["nodes"])
    outputs = tuple(find(o.get("node_id")) if isinstance(o, dict) else None for o in doc.get("outputs", []))
    return TextLocs(ops, outputs)


def lint_strategy(path: Path, strategy: str | None = None) -> list[Diagnostic]:
    from qmtl.compiler.pipeline import compile as compile_strategy
    try:
        compiled = compile_strategy(path, strategy)
    except CompileError as exc:
        return exc.diagnostics
    return checked_diagnostics(compiled)


def checked_diagnostics(compiled: "CompiledStrategy") -> list[Diagnostic]:
    """The compiler's findings plus a full verify (NodeIDs included), each finding once.

    The compiler already verified and kept lint-only findings (E111) as warnings; the verifier reports
    them again as errors.  A finding both report (same code, same place) is kept at the verifier's
    severity, so ``qmtl lint`` and ``Runner.submit`` show it once and agree on whether it blocks."""
    from qmtl.ir.verifier import verify
    checked = verify(compiled.module, check_ids=True)
    again = {(d.code, d.loc) for d in checked}
    return [d for d in compiled.diagnostics if (d.code, d.loc) not in again] + checked


def _unusable(path: Path, kind: str, message: str, loc: Loc | None = None) -> LintReport:
    diag = Diagnostic("E401", message, loc or Loc(str(path), 0, 0))
    return LintReport(str(path), kind, [diag], unusable=True)
