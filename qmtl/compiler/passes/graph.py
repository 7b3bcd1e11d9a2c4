"""Small graph utilities the rewriting passes share: liveness and value renaming."""

from __future__ import annotations

from dataclasses import replace

from qmtl.ir.module import Module, Op, Output


def live_values(module: Module) -> set[str]:
    """Every value reachable (through operands) from an output's value."""
    ops = module.op_map()
    live: set[str] = set()
    # declared inputs stay live: they draw region edges even when no op reads them any more
    stack = [v for o in module.outputs for v in (o.value, *o.inputs)]
    while stack:
        value = stack.pop()
        if value in live:
            continue
        live.add(value)
        op = ops.get(value)
        if op is not None:
            stack.extend(op.operands)
    return live


def output_values(module: Module) -> set[str]:
    return {o.value for o in module.outputs}


def resolve(renames: dict[str, str], value: str) -> str:
    """Follow a chain of renames (a → b → c) to its end."""
    seen = set()
    while value in renames and value not in seen:
        seen.add(value)
        value = renames[value]
    return value


def rename_operands(op: Op, renames: dict[str, str]) -> Op:
    if not renames:
        return op
    operands = tuple(resolve(renames, s) for s in op.operands)
    return op if operands == op.operands else op.with_(operands=operands)


def rename_outputs(outputs: tuple[Output, ...], renames: dict[str, str]) -> tuple[Output, ...]:
    """Re-point outputs (their value and their declared inputs) at renamed values."""
    if not renames:
        return outputs
    return tuple(replace(o, value=resolve(renames, o.value),
                         inputs=tuple(dict.fromkeys(resolve(renames, v) for v in o.inputs)))
                 for o in outputs)


def drop_newly_dead(before: Module, after: Module) -> Module:
    """Remove ops that were live in ``before`` but no longer are in ``after``.

    A rewrite that replaces a use (folding, CSE, an algebraic identity) can leave the ops it read
    without users.  Those ops *were* used by the strategy, so they are dropped here, silently, rather
    than left for DCE to report as the user's dead code (W201).
    """
    dead = live_values(before) - live_values(after)
    if not dead:
        return after
    kept: list[Op] = []
    used: set[str] = set()
    for op in reversed(after.ops):  # an op the user's own dead code still reads stays, for DCE to judge
        if op.result in dead and op.result not in used:
            continue
        kept.append(op)
        used.update(op.operands)
    return after.with_(ops=tuple(reversed(kept)))
