"""Render a module's plan into Python source: Numba kernels, the gate kernel, and the Bytewax flow."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import jinja2
from blake3 import blake3

from qmtl.ir import ops as opreg
from qmtl.ir.module import Module, Op
from qmtl.ir.nodeid import with_node_ids

from .lower import Lowerer, ident, literal, _col
from .partition import Kernel, Plan, lookback_of, plan, push_inputs
from .split import split

_NUMPY_DTYPE = {"f64": "float64", "i64": "int64", "bool": "bool"}


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("qmtl.codegen", "templates"),
                              keep_trailing_newline=True, undefined=jinja2.StrictUndefined)


def digest(module: Module, unaligned: bool = False) -> str:
    """Hash of the module's NodeIDs in order, plus output names/periods (and which plan variant):
    the build cache key."""
    module = module if all(op.node_id for op in module.ops) else with_node_ids(module)
    h = blake3()
    if unaligned:
        h.update(b"variant:unaligned;")
    for op in module.ops:
        h.update(f"{op.result}={op.node_id};".encode())
    for o in module.outputs:
        h.update(f"out:{o.name}={o.value}@{o.period}/{o.interval};".encode())
    return h.hexdigest()[:32]


def generate(module: Module, unaligned: bool = False) -> str:
    """The generated Python module (source text) for ``module``; ``unaligned`` is the variant for
    run keys whose sources' timestamps differ (mixed nodes run per tick, see ``partition``).

    What the engine runs: nodes that read a tag query (and their downstream) are not in the flow
    (``split``); the text lists them and why, and holds the flow of the rest."""
    parts = split(module)
    return render(plan(parts.flow or module, unaligned), interpreted=parts.per_tick)


@dataclass
class _Counter:
    slot: int
    source: bool
    upstream: int | None = None
    present: int | None = None  # a source's index in SOURCES (its presence flags)


def _value_columns(op: Op) -> list[str] | None:
    return [c for c, _ in op.type.columns] if op.type.kind == "frame" else None


def _buffer_names(op: Op) -> list[str]:
    cols = _value_columns(op)
    base = ident(op.result)
    return [f"{base}__{_col(c)}" for c in cols] if cols is not None else [base]


def _buffer_dtype(op: Op) -> list[str]:
    if op.type.kind == "frame":
        return [_NUMPY_DTYPE[d] for _, d in op.type.columns]
    if op.type.kind in ("series", "scalar"):
        return [_NUMPY_DTYPE[op.type.dtype]]
    return ["object"]


def render(p: Plan, interpreted: dict[str, str] | None = None) -> str:
    module = p.module
    ops = module.op_map()
    region_index = {r.output.name: i for i, r in enumerate(p.regions)}
    value_region = {r.output.value: i for i, r in enumerate(p.regions)}
    source_index = {op.result: i for i, op in enumerate(p.sources)}
    regions, slot = [], 0
    for i, r in enumerate(p.regions):
        counters = []
        for v in r.inputs:
            is_source = opreg.REGISTRY[ops[v].name].kind == "source"
            counters.append(_Counter(slot, is_source, None if is_source else value_region[v],
                                     source_index.get(v)))
            slot += 1
        regions.append({"index": i, "name": r.output.name, "period": r.output.period,
                        "inputs": list(r.inputs), "counters": counters})
    buffers: dict[str, str] = {}
    for i in range(len(p.regions)):
        buffers[f"pres_{i}"] = "bool"
        buffers[f"emit_{i}"] = "bool"
    kernels, steps, errors = [], [], {}
    for step in _ordered_steps(p):
        if isinstance(step, Kernel):
            k = _render_kernel(step, p, region_index, value_region, source_index, buffers)
            kernels.append(k)
            errors[step.index] = k["errors"]
            steps.append({"kind": "kernel", "index": step.index, "call": k["call"]})
        else:
            for op in step.ops:
                for name, dtype in zip(_buffer_names(op), _buffer_dtype(op)):
                    buffers[name] = dtype
            steps.append({"kind": "per_tick", "region": step.output.name, "reason": step.reason})
    outputs = []
    for o in module.outputs:
        if o.name not in region_index:
            continue  # a source node: its bars are input, not output
        op = ops[o.value]
        names = _buffer_names(op)
        for name, dtype in zip(names, _buffer_dtype(op)):
            buffers.setdefault(name, dtype)
        outputs.append({"name": o.name, "buffers": names, "emit": f"emit_{region_index[o.name]}",
                        "columns": _value_columns(op)})
    mixed = [{"name": r.output.name, "reason": r.mixed} for r in p.regions if r.mixed and r.lowered]
    return _env().get_template("module.py.j2").render(
        name=module.name, digest=digest(module, p.unaligned), regions=regions, kernels=kernels,
        steps=steps, gate_slots=slot, buffers=sorted(buffers.items()), errors=errors, outputs=outputs,
        sources=[op.result for op in p.sources], unaligned=p.unaligned, mixed=mixed,
        interpreted=[{"name": n, "reason": r} for n, r in (interpreted or {}).items()])


def _ordered_steps(p: Plan):
    """Level by level across every clock: a node on one clock may read a node on another, and
    levels order dependencies (clocks do not)."""
    levels = sorted({k.level for k in p.kernels} | {lv for lv, _ in p.per_tick})
    for level in levels:
        for lv, region in p.per_tick:
            if lv == level:
                yield region
        for k in p.kernels:
            if k.level == level:
                yield k


def _render_kernel(k: Kernel, p: Plan, region_index: dict[str, int], value_region: dict[str, int],
                   source_index: dict[str, int], buffers: dict[str, str]) -> dict:
    module = p.module
    ops = module.op_map()
    inside = {op.result for op in k.ops}
    region_of = dict(k.region_of)
    args: list[str] = []
    call: list[str] = []

    def arg(name: str, call_expr: str) -> str:
        if name not in args:
            args.append(name)
            call.append(call_expr)
        return name

    def operand(v: str) -> str:
        src = ops[v]
        if src.name == "const":
            return literal(src.attr("value"))
        if v in inside:
            return ident(v)
        if src.type.kind == "frame":
            raise AssertionError("frames are read column by column")
        return arg("r_" + ident(v)[2:], f'rt.buf("{ident(v)}")') + "[t]"

    node_of = {r.node.name: r.node for r in p.regions}

    def presence_flag(v: str) -> str:
        """A boundary input's presence at tick t: a source's flag, or its node having emitted."""
        if v in source_index:
            return arg(f"sp_{source_index[v]}", f'rt.present("{v}")') + "[t]"
        name = f"emit_{value_region[v]}"
        return arg(name, f'rt.buf("{name}")') + "[t]"

    def pres(result: str) -> str:
        """When ``result`` pushes state: where the inputs its window reads are present (their own
        history), or where its region is (recursive ops, see ``partition``)."""
        r = region_of.get(result)
        if r is None:
            return "True"
        via = push_inputs(node_of[r], ops[result])
        if via is None:
            return arg(f"pres_{region_index[r]}", f'rt.buf("pres_{region_index[r]}")') + "[t]"
        return "(" + " and ".join(presence_flag(v) for v in sorted(via)) + ")"

    lowerer = Lowerer(operand, pres, lambda v: ops[v].type)
    body: list[str] = []
    for op in k.ops:
        if op.name == "const":
            continue
        if op.name == "column" and ops[op.operands[0]].type.kind == "bars":
            field = op.attr("name")
            name = arg(f"c_{ident(op.operands[0])[2:]}_{_col(field)}",
                       f'rt.col("{op.operands[0]}", "{field}")')
            body.append(f"{ident(op.result)} = {name}[t]  # {field} of {op.operands[0]}")
            continue
        if op.name == "column" and op.operands[0] not in inside:
            buf = f"{ident(op.operands[0])}__{_col(op.attr('name'))}"
            name = arg("r_" + buf[2:], f'rt.buf("{buf}")')
            body.append(f"{ident(op.result)} = {name}[t]")
            continue
        if op.name == "ewm_mean":
            members = {o.result for r in p.regions if r.node.name == region_of.get(op.result)
                       for o in r.node.ops}
            lowerer.ewm_mask[op.result] = lookback_of(op.operands[0], module, members)
        body.append(f"# {op.result} = {op.name}({', '.join(op.operands)})"
                    + (f"  [{op.loc}]" if op.loc else ""))
        body.extend(lowerer.lower(op))
    for v in k.writes:
        op = ops[v]
        for name, dtype in zip(_buffer_names(op), _buffer_dtype(op)):
            buffers[name] = dtype
            src = name if op.type.kind == "frame" else ident(v)
            if op.name == "const":
                src = literal(op.attr("value"))
            w = arg("w_" + name[2:], f'rt.buf("{name}")')
            body.append(f"{w}[t] = {src}")
    layout = lowerer.layout
    nodes = sorted({r for r in region_of.values()}) or ["(no node)"]
    summary = [f"{op.result} = {op.name}({', '.join(op.operands)})" for op in k.ops]
    return {"index": k.index, "nodes": nodes, "summary": summary, "args": args, "call": call,
            "body": body, "f_init": "[" + ", ".join(literal(float(x)) for x in layout.f_init) + "]",
            "i_init": layout.i_init,
            "errors": {i + 1: v for i, v in enumerate(lowerer.errors)}}
