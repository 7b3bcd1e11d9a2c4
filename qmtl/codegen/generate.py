"""Render a module's plan into Python source: Numba kernels, the per-tick steps and the Bytewax flow.

Inside a kernel every value is a pair of locals: ``p_<v>`` (it has an entry at this tick) and
``v_<v>`` (its latest entry, carried across ticks and, through the state arrays, across batches, so
a slower operand is read as of its last closed bar).  An op runs under ``if p_<v>:``; its presence is
that of its operands on its clock (the union; an absent one reads NaN), see docs/design.md.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import jinja2
from blake3 import blake3

from qmtl.ir import ops as opreg
from qmtl.ir.clocks import same_clock
from qmtl.ir.module import Module, Op
from qmtl.ir.nodeid import with_node_ids

from .lower import Lowerer, col_ident, column_part, ident, literal
from .plan import Gate, Kernel, Plan, PyStep, fills_in_python, plan
from .split import split

_NUMPY_DTYPE = {"f64": "float64", "i64": "int64", "bool": "bool"}


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("qmtl.codegen", "templates"),
                              keep_trailing_newline=True, undefined=jinja2.StrictUndefined)


@lru_cache(maxsize=1)
def _generator_version() -> bytes:
    """Hash of the code generator's own sources: a generated module is only reused by the generator
    that wrote it (after an upgrade, a stale module in the build cache would run the old lowering)."""
    here = Path(__file__).resolve().parent
    h = blake3()
    for path in sorted(here.glob("*.py")) + sorted((here / "templates").glob("*.j2")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.digest()


def digest(module: Module) -> str:
    """Hash of the generator version, the module's NodeIDs in order, and its outputs (names,
    periods, inputs): the build cache key."""
    module = module if all(op.node_id for op in module.ops) else with_node_ids(module)
    h = blake3(_generator_version())
    for op in module.ops:
        h.update(f"{op.result}={op.name}:{op.node_id};".encode())  # a stored op keeps its NodeID
    for o in module.outputs:
        h.update(f"out:{o.name}={o.value}@{o.period}/{o.interval}<{','.join(o.inputs)};".encode())
    return h.hexdigest()[:32]


def generate(module: Module) -> str:
    """The generated Python module (source text) for ``module``.

    Nodes that read a tag query (and their downstream) are not in the flow (``split``): they need
    every instrument at once; the text lists them and why, and holds the flow of the rest."""
    parts = split(module)
    return render(plan(parts.flow or module), interpreted=parts.per_tick)


def value_buffers(op: Op) -> list[tuple[str, str]]:
    """(buffer name, numpy dtype) of a value's per-batch buffers: one per frame column, else one."""
    base = "b" + ident(op.result)[1:]
    if op.type.kind == "frame":
        return [(f"{base}__{column_part(c)}", _NUMPY_DTYPE[d]) for c, d in op.type.columns]
    if op.type.kind in ("series", "scalar"):
        return [(base, _NUMPY_DTYPE[op.type.dtype])]
    return [(base, "object")]


def presence_buffer(value: str) -> str:
    return "bp" + ident(value)[1:]


def emit_buffer(gate: Gate) -> str:
    return f"emit_{gate.index}"


def render(p: Plan, interpreted: dict[str, str] | None = None) -> str:
    module = p.module
    ops = module.op_map()
    gate_of = p.gate_of()
    tids = _timeline_ids(p)
    buffers: dict[str, str] = {emit_buffer(g): "bool" for g in p.gates}
    written_in_python = [v for st in p.py_steps for v in (st.op.result, *(c.result for c in st.columns))]
    for v in sorted(p.exported) + written_in_python:  # a py_call step always fills its buffers
        for name, dtype in value_buffers(ops[v]):
            buffers[name] = dtype
        buffers[presence_buffer(v)] = "bool"
    kernels, steps, errors = [], [], {}
    shared: dict[tuple, int] = {}
    states: list[dict] = []
    for step in p.steps:
        if isinstance(step, Kernel):
            k = _render_kernel(step, p, tids, ops, gate_of)
            states.append(k)
            same = _share(k, shared)
            if same is None:
                kernels.append(k)
            errors[step.index] = k["errors"]
            steps.append({"kind": "kernel", "index": step.index, "call": k["call"],
                          "fn": k["index"] if same is None else same})
        else:
            steps.append({"kind": step.op.name, "value": step.op.result, "fn": str(step.op.attr("fn") or ""),
                          "reason": str(step.op.attr("reason") or ""),
                          "node_id": str(step.op.attr("node_id") or "")})
    outputs = []
    for g in p.gates:
        op = ops.get(g.value)
        bufs = [n for n, _ in value_buffers(op)] if op is not None and g.value in p.exported else []
        cols = [c for c, _ in op.type.columns] if op is not None and op.type.kind == "frame" else None
        outputs.append({"name": g.name, "buffers": bufs, "emit": emit_buffer(g), "columns": cols,
                        "clock": g.clock, "value": g.value})
    py_steps = {s.op.result: {"columns": [(c.result, c.attr("name")) for c in s.columns]}
                for s in p.py_steps}
    return _env().get_template("module.py.j2").render(
        name=module.name, digest=digest(module), kernels=kernels, states=states, steps=steps,
        buffers=sorted(buffers.items()), errors=errors, outputs=outputs, py_steps=py_steps,
        sources=[op.result for op in p.sources],
        interpreted=[{"name": n, "reason": r} for n, r in (interpreted or {}).items()])


_LOCAL = re.compile(r"\b(?:v|p|b|bp|emit|sp|c|r|w)_\w+")


def _share(k: dict, seen: dict[tuple, int]) -> int | None:
    """Rename ``k``'s locals and arguments positionally; if a kernel with the same code was rendered
    already, return its index (its jitted function serves both: Numba compiles it once), else
    remember this one and return None.  Repetitive strategies (many nodes doing the same thing to
    different inputs) compile in the time of their distinct kernels."""
    names: dict[str, str] = {}

    def rename(line: str) -> str:
        return _LOCAL.sub(lambda m: names.setdefault(m.group(0), f"x{len(names)}"), line)

    args = [rename(a) for a in k["args"]]
    lines = [rename(line) for line in k["init"] + k["head"] + k["body"] + k["save"]
             if not line.lstrip().startswith("#")]
    key = (tuple(args), tuple(lines), k["f_init"], tuple(k["i_init"]))
    if key in seen:
        return seen[key]
    seen[key] = k["index"]
    return None


def _timeline_ids(p: Plan) -> dict[str, frozenset[str]]:
    """value → the sources whose presence makes up its presence (equal ids: equal presence)."""
    ops = p.module.op_map()
    tids: dict[str, frozenset[str]] = {}
    for op in p.module.ops:
        kind = opreg.REGISTRY[op.name].kind
        if kind == "source" or fills_in_python(op):
            tids[op.result] = frozenset({op.result})
            continue
        mine = p.clock.get(op.result)
        on = [tids[s] for s in op.operands if ops[s].name != "const" and same_clock(p.clock.get(s), mine)]
        tids[op.result] = frozenset().union(*on) if on else frozenset()
    return tids


def _render_kernel(k: Kernel, p: Plan, tids: dict[str, frozenset[str]], ops: dict[str, Op],
                   gate_of: dict[str, Gate]) -> dict:
    inside = {op.result for op in k.ops}
    source_index = {op.result: i for i, op in enumerate(p.sources)}
    args: list[str] = []
    call: list[str] = []
    head: list[str] = []   # per tick, before the ops: external values and presences
    read: set[str] = set()

    def arg(name: str, call_expr: str) -> str:
        if name not in args:
            args.append(name)
            call.append(call_expr)
        return name

    def external(v: str) -> None:
        """Make ``p_v``/``v_v`` (frame columns) available at tick t for a value from outside."""
        if v in inside or v in read:
            return
        read.add(v)
        op = ops[v]
        pv = "p" + ident(v)[1:]
        if v in source_index:
            head.append(f"{pv} = {arg(f'sp_{source_index[v]}', f'rt.present({v!r})')}[t]")
            return
        if op.name == "const":
            return
        head.append(f"{pv} = {arg(presence_buffer(v), f'rt.buf({presence_buffer(v)!r})')}[t]")
        if op.type.kind == "opaque":
            return  # rows of Python objects: kernels read only their presence (and columns, as numbers)
        names = value_buffers(op)
        if op.type.kind == "frame":
            for (name, _), (c, _) in zip(names, op.type.columns):
                head.append(f"{col_ident(v, c)} = {arg(name, f'rt.buf({name!r})')}[t]")
        else:
            head.append(f"{ident(v)} = {arg(names[0][0], f'rt.buf({names[0][0]!r})')}[t]")

    def presence(v: str) -> str:
        if ops[v].name == "const":
            return "True"
        external(v)
        return "p" + ident(v)[1:]

    current: dict[str, str] = {}

    def operand(v: str) -> str:
        src = ops[v]
        if src.name == "const":
            return literal(src.attr("value"))
        external(v)
        if src.type.kind == "frame":
            return ident(v)  # never read whole: ``column`` reads its ``v_<frame>__<col>`` local
        mine = current["op"]
        if same_clock(p.clock.get(v), p.clock.get(mine)) and tids.get(v) != tids.get(mine):
            return f"({ident(v)} if {presence(v)} else np.nan)"  # joined on ts: absent reads NaN
        return ident(v)

    lowerer = Lowerer(operand, lambda v: ops[v].type, lambda v: ops[v].name == "const",
                      time_expr=lambda: arg("tclose", "rt.close_instants()") + "[t]")
    layout = lowerer.layout
    body: list[str] = []
    for item in k.items:
        if isinstance(item, Gate):
            body.extend(_gate_lines(item, gate_of, arg, presence, layout))
            continue
        op = item
        current["op"] = op.result
        pv = "p" + ident(op.result)[1:]
        mine = p.clock.get(op.result)
        on = [s for s in op.operands if ops[s].name != "const" and same_clock(p.clock.get(s), mine)]
        body.append(f"# {op.result} = {op.name}({', '.join(op.operands)})" + (f"  [{op.loc}]" if op.loc else ""))
        body.append(f"{pv} = " + (" or ".join(dict.fromkeys(presence(s) for s in on)) if on else "True"))
        if op.name == "column" and ops[op.operands[0]].type.kind == "bars":
            field = op.attr("name")
            src = op.operands[0]
            name = arg(f"c_{ident(src)[2:]}_{column_part(field)}", f'rt.col("{src}", "{field}")')
            lines = [f"{ident(op.result)} = {name}[t]"]
        else:
            if op.name == "column" and ops[op.operands[0]].type.kind == "frame":
                external(op.operands[0])
            lines = lowerer.lower(op)
        body.append(f"if {pv}:")
        body.extend("    " + line for line in lines)
        for local, dtype in _locals(op):
            layout.carry(local, dtype)
        if op.result in p.exported:  # read by a later step or collected as a node's rows
            body.append(f"{arg(presence_buffer(op.result), f'rt.buf({presence_buffer(op.result)!r})')}[t] = {pv}")
            locals_ = [col_ident(op.result, c) for c, _ in op.type.columns] if op.type.kind == "frame" \
                else [ident(op.result)]
            for (name, _), local in zip(value_buffers(op), locals_):
                body.append(f"{arg(name, f'rt.buf({name!r})')}[t] = {local}")
    init = []
    for local, dtype, slot in layout.carried:
        init.append(f"{local} = " + {"f64": f"sf[{slot}]", "i64": f"si[{slot}]", "bool": f"si[{slot}] != 0"}[dtype])
    save = [(f"sf[{slot}] = {local}" if dtype == "f64" else f"si[{slot}] = {local}")
            for local, dtype, slot in layout.carried]
    nodes = sorted({g.name for g in k.gates})
    summary = [f"{op.result} = {op.name}({', '.join(op.operands)})" for op in k.ops]
    return {"index": k.index, "level": k.level, "nodes": nodes, "summary": summary, "args": args,
            "call": call, "init": init, "head": head, "body": body, "save": save,
            "f_init": "[" + ", ".join(literal(float(x)) for x in layout.f_init) + "]",
            "i_init": layout.i_init, "errors": {i + 1: v for i, v in enumerate(lowerer.errors)}}


def _locals(op: Op) -> list[tuple[str, str]]:
    """The locals an op defines and their dtypes (frame columns: one each)."""
    if op.type.kind == "frame":
        return [(col_ident(op.result, c), d) for c, d in op.type.columns]
    return [(ident(op.result), op.type.dtype or "f64")]


def _gate_lines(g: Gate, by_value: dict[str, Gate], arg, presence, layout) -> list[str]:
    lines = [f"# node {g.name}: emits where its inputs on its {g.clock}s clock emit, after "
             f"{g.period} entries of each"]
    conds = []
    for i, (v, fast) in enumerate(zip(g.inputs, g.fast)):
        if v in by_value and by_value[v].index != g.index:
            e = arg(emit_buffer(by_value[v]), f"rt.buf({emit_buffer(by_value[v])!r})") + "[t]"
        else:
            e = presence(v)
        count = layout.scalar("i64", 0)
        lines.append(f"if {e}:")
        lines.append(f"    {count} += 1")
        if fast:
            conds.append(e)
        conds.append(f"{count} >= {g.period}")
    value_present = presence(g.value)
    if g.value_slower:
        seen = layout.scalar("i64", 0)
        lines.append(f"if {value_present}:")
        lines.append(f"    {seen} = 1")
        conds.append(f"{seen} > 0")
    else:
        conds.append(value_present)
    em = arg(emit_buffer(g), f"rt.buf({emit_buffer(g)!r})")
    lines.append(f"{em}[t] = " + " and ".join(dict.fromkeys(conds)))
    return lines
