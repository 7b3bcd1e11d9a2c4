"""The IR: typed SSA values, the op registry, the text form, the verifier and NodeIDs.

The names below load lazily so that importing one IR module does not pull in the parser (lark) or
the registry's pandas-based reference implementations until they are used.
"""

from __future__ import annotations

from qmtl._lazy import lazy_exports

_EXPORTS = {
    "Module": "qmtl.ir.module", "Op": "qmtl.ir.module", "Output": "qmtl.ir.module",
    "Loc": "qmtl.ir.module", "Type": "qmtl.ir.types", "REGISTRY": "qmtl.ir.ops",
    "print_module": "qmtl.ir.printer", "parse_module": "qmtl.ir.parser",
    "verify": "qmtl.ir.verifier", "node_ids": "qmtl.ir.nodeid", "with_node_ids": "qmtl.ir.nodeid",
    "to_dag": "qmtl.ir.dag", "from_dag": "qmtl.ir.dag", "Diagnostic": "qmtl.ir.diagnostics",
    "CompileError": "qmtl.ir.diagnostics",
}

__all__, __getattr__ = lazy_exports(__name__, _EXPORTS)
