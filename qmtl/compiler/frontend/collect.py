"""Which SDK nodes a strategy has, in what order to lower them, and what they are called.

Nodes are the ones ``setup()`` added plus everything they read (``input=``, nodes inside ``expr=``),
ordered inputs-first.  A node an opaque compute function closes over is ordered before it when that
is possible, so its NodeID is known when the function's ``code_hash`` is computed.

Names: an explicit ``name=`` wins (two nodes may not share one); otherwise the variable that held the
node in ``setup()``, else the compute function's name, else the node kind — de-duplicated with
``_2``, ``_3`` … in collection order, so the same strategy always gets the same names.
"""

from __future__ import annotations

import sys
import types
from typing import Any, Callable, Iterable

from qmtl.ir.diagnostics import Diagnostic
from qmtl.runtime.sdk.nodes import Node


class CycleError(Exception):
    def __init__(self, node: Node):
        self.node = node
        super().__init__(f"node {node.name or node.kind!r} depends on itself through its inputs")


def ordered_nodes(roots: Iterable[Node]) -> list[Node]:
    """Every node reachable through inputs, each after its inputs (and after closed-over nodes)."""
    members: dict[int, Node] = {}
    stack = list(roots)
    while stack:
        node = stack.pop()
        if id(node) not in members:
            members[id(node)] = node
            stack.extend(node.inputs)
    order: list[Node] = []
    state: dict[int, str] = {}
    # depth-first with an explicit stack (a chain of any length, declared in any order): each entry
    # is a node and the iterator over what must come before it
    for root in roots:
        if id(root) in state:
            continue
        state[id(root)] = "visiting"
        stack = [(root, _before(root, members))]
        while stack:
            node, pending = stack[-1]
            for dep, is_input in pending:
                if is_input and state.get(id(dep)) == "visiting":
                    raise CycleError(dep)
                if id(dep) not in state:
                    state[id(dep)] = "visiting"
                    stack.append((dep, _before(dep, members)))
                    break
            else:
                stack.pop()
                state[id(node)] = "done"
                order.append(node)
    return order


def _before(node: Node, members: dict[int, Node]):
    """What must be ordered before ``node``: its inputs, then the member nodes its function closes over."""
    for dep in node.inputs:
        yield dep, True
    for dep in closure_nodes(node.compute_fn):
        if id(dep) in members:
            yield dep, False


def closure_nodes(fn: Callable[..., Any] | None) -> list[Node]:
    """SDK nodes held directly in a function's closure cells or the globals it names."""
    if not isinstance(fn, types.FunctionType):
        return []
    found: list[Node] = []
    for cell in fn.__closure__ or ():
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if isinstance(value, Node):
            found.append(value)
    for name in fn.__code__.co_names:
        value = fn.__globals__.get(name)
        if isinstance(value, Node):
            found.append(value)
    return found


def assign_names(nodes: list[Node], variables: dict[int, str]) -> tuple[dict[int, str], list[Diagnostic]]:
    """id(node) → its name; explicit duplicates are E304 errors at the second node."""
    names: dict[int, str] = {}
    taken: dict[str, Node] = {}
    diags: list[Diagnostic] = []
    for node in nodes:
        if node.name is not None:
            if node.name in taken:
                diags.append(Diagnostic("E304", f"two nodes are named {node.name!r}; node names must be "
                                        "unique", node.loc))
            taken.setdefault(node.name, node)
            names[id(node)] = node.name
    for node in nodes:
        if id(node) in names:
            continue
        base = variables.get(id(node)) or _function_name(node) or node.kind
        name, k = base, 1
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        taken[name] = node
        names[id(node)] = name
    return names, diags


def _function_name(node: Node) -> str | None:
    fn = node.compute_fn
    name = getattr(fn, "__name__", None)
    return name if name and name.isidentifier() else None


def run_capturing_locals(method: Callable[[], Any]) -> dict[int, str]:
    """Call a bound method; return id(node) → the local variable that held it when it returned.

    A profile hook catches the method's frame on its first event and removes itself at once, so the
    thousands of calls a large ``setup()`` makes run unhooked.  A finished frame keeps its locals
    (the frame object owns them once it outlives its execution), so they are read after the call.
    """
    code = getattr(getattr(method, "__func__", None), "__code__", None)
    frames: list[types.FrameType] = []
    previous = sys.getprofile()

    def profiler(frame: types.FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is code and not frames:
            frames.append(frame)
            sys.setprofile(previous)
        if previous is not None:
            previous(frame, event, arg)

    sys.setprofile(profiler)
    try:
        method()
    finally:
        sys.setprofile(previous)
    captured = frames[0].f_locals if frames else {}
    out: dict[int, str] = {}
    for name, value in captured.items():
        if isinstance(value, Node) and name != "self":
            out.setdefault(id(value), name)
    return out
