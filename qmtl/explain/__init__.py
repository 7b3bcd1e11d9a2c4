"""Seeing what the compiler decided: per-node explanations (``qmtl explain``), DAG pictures
(``qmtl compile --emit svg|html``).  Sits above codegen and runtime: it reads the compiled module and
its plan and asks stores and gateways only when told to."""

from .nodes import Explanation, NodeReport, explain

__all__ = ["Explanation", "NodeReport", "explain"]
