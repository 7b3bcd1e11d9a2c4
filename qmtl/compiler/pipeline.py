"""The compiler driver: strategy → frontend → passes (verified) → NodeIDs → ``CompiledStrategy``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qmtl.ir.diagnostics import CompileError, errors
from qmtl.ir.nodeid import with_node_ids

from .compiled import CompiledStrategy
from .frontend import trace
from .loader import load_strategy
from .passes import PIPELINE
from .passes.base import PassContext


def compile(target: Any, strategy: str | None = None) -> CompiledStrategy:
    """Compile a ``Strategy`` subclass (or instance, or a path to a strategy file).

    Raises ``CompileError`` carrying every error found (with file:line locations); warnings and notes
    are kept on the result.
    """
    source_file = None
    if isinstance(target, (str, Path)):
        source_file = str(target)
        target = load_strategy(Path(target), strategy)
    result = trace(target)
    ctx = PassContext(diagnostics=list(result.diagnostics))
    if errors(ctx.diagnostics):
        raise CompileError(errors(ctx.diagnostics))
    module = result.module
    for run_pass in PIPELINE:
        module = run_pass(module, ctx)
    if errors(ctx.diagnostics):
        raise CompileError(errors(ctx.diagnostics))
    module = with_node_ids(module)
    compiled = CompiledStrategy(
        name=module.name, module=module, functions=result.functions, sdk_nodes=result.sdk_nodes,
        diagnostics=ctx.diagnostics, required_period=ctx.required_period,
        source_file=source_file or result.source_file)
    for name, node in result.sdk_nodes.items():
        if name in compiled.node_ids:
            node.node_id = compiled.node_ids[name]
    return compiled
