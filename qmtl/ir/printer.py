"""The IR's text form: ``print_module(module) -> str``, the inverse of ``qmtl.ir.parser.parse_module``.

The text is canonical — one spelling per module — so ``parse_module(print_module(m)) == m`` and
``print_module(parse_module(t)) == t`` for canonical ``t``.  That is what makes a dump usable as a
test fixture, a lint input and a diff.  Choices that keep it canonical:

* one definition per line, two-space indent, attributes sorted by key and omitted when empty;
* floats always carry a ``.`` or an exponent (``repr``), so ``1`` and ``1.0`` survive the trip;
* strings are JSON; names that are not identifiers are JSON-quoted (``@"my node"``, ``%"0"``);
* ``loc(...)`` always has line and column, and is omitted (like ``id``) when absent.

Every module ``Module`` can hold prints, including ones the verifier rejects (undefined operands,
unknown ops), because lint parses broken text and reports on it.
"""

from __future__ import annotations

import json
import math
import re

from .module import AttrValue, Loc, Module, Op, Output
from .types import Type

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_NODE_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]*:[0-9a-f]+")


def print_module(module: Module) -> str:
    """The canonical text of ``module`` (ends with a newline)."""
    lines = [f"module {symbol(module.name)} {{"]
    lines += ["  " + print_op(op) for op in module.ops]
    lines += ["  " + print_output(out) for out in module.outputs]
    lines.append("}")
    return "\n".join(lines) + "\n"


def print_op(op: Op) -> str:
    """One definition: ``%r = name(%a, %b) {k = v} : type loc("f":l:c) id blake3:…``."""
    operands = ", ".join(value_name(v) for v in op.operands)
    text = f"{value_name(op.result)} = {name(op.name)}({operands})"
    if op.attrs:
        text += " " + print_attrs(op.attrs)
    text += " : " + print_type(op.type)
    if op.loc is not None:
        text += " " + print_loc(op.loc)
    if op.node_id is not None:
        node_id = op.node_id
        text += " id " + (node_id if _NODE_ID.fullmatch(node_id) else json.dumps(node_id, ensure_ascii=False))
    return text


def print_output(out: Output) -> str:
    attrs: dict[str, AttrValue] = {"interval": out.interval, "kind": out.kind, "period": out.period}
    if out.reason:
        attrs["reason"] = out.reason
    if out.tags:
        attrs["tags"] = tuple(out.tags)
    fields = [f"{k} = {print_value(v)}" for k, v in attrs.items()]
    if out.inputs:  # value references, not attribute values: printed here, sorted in with the rest
        fields.append("inputs = [" + ", ".join(value_name(v) for v in out.inputs) + "]")
    fields.sort()
    return f"output {symbol(out.name)} = {value_name(out.value)} {{{', '.join(fields)}}}"


def print_attrs(attrs: tuple[tuple[str, AttrValue], ...]) -> str:
    items = sorted(attrs, key=lambda kv: kv[0])
    return "{" + ", ".join(f"{name(k)} = {print_value(v)}" for k, v in items) + "}"


def print_value(v: AttrValue) -> str:
    """An attribute value; bool is tested before int because ``bool`` subclasses ``int``."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _float(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(print_value(x) for x in v) + "]"
    raise TypeError(f"attribute value {v!r} of type {type(v).__name__} has no IR spelling "
                    "(allowed: None, bool, int, float, str, tuple)")


def _float(v: float) -> str:
    if math.isnan(v):
        return "nan"
    return repr(v)  # repr gives '0.0', '1e-08', 'inf', '-inf': always distinguishable from an int


def print_type(t: Type) -> str:
    if t.kind == "frame":
        return "frame<" + ", ".join(f"{name(c)}: {name(d)}" for c, d in t.columns) + ">"
    if t.kind in ("series", "scalar"):
        return f"{t.kind}<{name(t.dtype or '')}>"
    return t.kind


def print_loc(loc: Loc) -> str:
    return f"loc({json.dumps(loc.file, ensure_ascii=False)}:{loc.line}:{loc.col})"


def name(text: str) -> str:
    """An identifier as is, anything else as a JSON string."""
    return text if _IDENT.fullmatch(text) else json.dumps(text, ensure_ascii=False)


def value_name(text: str) -> str:
    return "%" + name(text)


def symbol(text: str) -> str:
    return "@" + name(text)
