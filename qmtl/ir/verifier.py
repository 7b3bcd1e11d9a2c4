"""The IR verifier: one function that says which invariant broke, and where.

``verify(module)`` returns every finding as a ``Diagnostic``; ``check(module)`` raises
``CompileError`` when any of them is an error.  The verifier never raises on bad input: lint feeds it
whatever text it parsed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .clocks import clock_of
from .diagnostics import CompileError, Diagnostic, errors
from .lookback import longest_path, output_required_period
from .module import Loc, Module, Op
from .nodeid import canonical_value, node_ids
from .ops import REGISTRY, AttrSpec, OpDef
from .run_clocks import mixed_clock_findings

if TYPE_CHECKING:
    from .parser import TextLocs

# Integer attributes that count bars or seconds: zero or less has no meaning (and would give a
# negative look-back).
_POSITIVE_INTS = ("window", "period", "interval", "fast", "slow", "signal")
_OUTPUT_KINDS = ("source", "traced", "opaque")  # source: a StreamInput/TagQueryNode output


def verify(module: Module, *, check_ids: bool = True,
           text_locs: "TextLocs | None" = None) -> list[Diagnostic]:
    """Check every invariant of ``module``; return one Diagnostic per violation, in module order.

    Invariants (the contract of ``qmtl.ir.module``), each with its code:

    * E101 every value is defined once (single assignment);
    * E102 every operand is defined, and defined *before* the op that reads it;
    * E103 an operand defined later that (transitively) reads this op is a cycle — reported once per
      cycle, naming its values;
    * E104 every op is registered in ``qmtl.ir.ops.REGISTRY``;
    * E105 operand count matches the op (``make_frame``: one column name per operand);
    * E106 each operand's kind is one the op accepts (``OpDef.accepts``), and the op can type them;
    * E107 attributes follow the op's schema: required present, none unknown or repeated, right
      Python types (``bool`` is not an ``int``), ``choices`` respected, bar counts ≥ 1, values with a
      canonical form;
    * E108 a printed ``node_id`` equals the recomputation (``qmtl.ir.nodeid.node_ids``), checked only
      on ops whose whole upstream is sound, and only when ``check_ids``;
    * E109 an output's declared period covers its look-back (``qmtl.ir.lookback.required_periods``);
    * E111 an opaque ``py_call`` is deterministic (``deterministic = false`` has no stable identity);
    * E112 outputs (and their declared inputs) name defined values, are named once, and have kind ``traced`` or ``opaque``;
    * E113 an op's printed type equals ``OpDef.result(operand types, attrs)``;
    * E320 sources do not mix the wall clock with the virtual clock (``qmtl.ir.run_clocks``).

    ``text_locs`` (``qmtl.ir.parser.TextLocs``) makes diagnostics point into IR text rather than at
    ``Op.loc`` — what lint wants when the file it checks is IR.
    """
    state = _State(module, text_locs)
    for index, op in enumerate(module.ops):
        _check_op(state, index, op)
    if check_ids:
        _check_node_ids(state)
    _check_outputs(state)
    for d in mixed_clock_findings(module):
        state.report(d.code, d.message, d.loc)
    return state.diagnostics


def check(module: Module, *, check_ids: bool = True) -> list[Diagnostic]:
    """``verify``, raising ``CompileError`` with every error; returns the non-error findings."""
    diags = verify(module, check_ids=check_ids)
    if errors(diags):
        raise CompileError(errors(diags))
    return diags


@dataclass
class _State:
    module: Module
    text_locs: "TextLocs | None"
    diagnostics: list[Diagnostic] = field(default_factory=list)
    first_def: dict[str, int] = field(default_factory=dict)
    duplicated: set[str] = field(default_factory=set)
    sound: set[str] = field(default_factory=set)  # values whose whole upstream passed every check
    clock: dict[str, int | None] = field(default_factory=dict)
    cycles_seen: set[frozenset[str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        for index, op in enumerate(self.module.ops):
            if op.result in self.first_def:
                self.duplicated.add(op.result)
            else:
                self.first_def[op.result] = index

    def op_loc(self, index: int) -> Loc | None:
        locs = self.text_locs.ops if self.text_locs is not None else None
        at = locs[index] if locs is not None and index < len(locs) else None
        return at if at is not None else self.module.ops[index].loc

    def report(self, code: str, message: str, loc: Loc | None, severity: str = "error") -> None:
        self.diagnostics.append(Diagnostic(code, message, loc, severity))


# --- per-op checks ------------------------------------------------------------------------------------

def _check_op(state: _State, index: int, op: Op) -> None:
    loc = state.op_loc(index)
    if state.first_def[op.result] != index:
        first = state.op_loc(state.first_def[op.result])
        state.report("E101", f"value %{op.result} is defined twice (first definition at {_where(first)})", loc)
        return
    operands_ok = _check_operands_defined(state, index, op, loc)
    opdef = REGISTRY.get(op.name)
    if opdef is None or opdef.internal:  # an internal op is the runtime's, never written by a user
        state.report("E104", f"unknown op {op.name!r} (defining %{op.result})", loc)
        return
    arity_ok = _check_arity(state, op, opdef, loc)
    kinds_ok = operands_ok and arity_ok and _check_operand_kinds(state, op, opdef, loc)
    attrs_ok = _check_attrs(state, op, opdef, loc)
    if kinds_ok and attrs_ok:
        _check_result_type(state, op, opdef, loc)
    if operands_ok:
        _check_clock(state, op, opdef, loc)
    if op.name == "py_call" and op.attr("deterministic", True) is False:
        unstable = op.attr("unstable", "")
        reason = (f"it reads {unstable}, which has no canonical form, so its NodeID cannot be stable"
                  if unstable else op.attr("reason", "") or "it reads a value with no canonical form")
        state.report("E111", f"opaque function {op.attr('fn', '') or op.result!r} is not deterministic: "
                             f"{reason}", loc)
    if operands_ok and attrs_ok and op.result not in state.duplicated and all(
            src in state.sound for src in op.operands):
        state.sound.add(op.result)


def _check_operands_defined(state: _State, index: int, op: Op, loc: Loc | None) -> bool:
    ok = True
    for src in op.operands:
        at = state.first_def.get(src)
        if at is not None and at < index and src not in state.duplicated:
            continue
        ok = False
        if src in state.duplicated and at is not None and at < index:
            continue  # E101 already said it; the operand is ambiguous, not undefined
        if at is None:
            state.report("E102", f"%{op.result} uses undefined value %{src}", loc)
            continue
        cycle = _cycle_through(state, op.result, src)
        if cycle is None:
            state.report("E102", f"%{op.result} uses %{src} before its definition "
                                 f"(defined at {_where(state.op_loc(at))})", loc)
        elif frozenset(cycle) not in state.cycles_seen:
            state.cycles_seen.add(frozenset(cycle))
            state.report("E103", "cycle: " + " -> ".join(f"%{v}" for v in cycle)
                         + " (each value reads the next)", loc)
    return ok


def _cycle_through(state: _State, start: str, src: str) -> list[str] | None:
    """A read-path ``start -> src -> … -> start``, or None when ``src`` does not lead back."""
    ops = state.module.ops
    stack: list[tuple[str, list[str]]] = [(src, [start, src])]
    visited: set[str] = set()
    while stack:
        value, path = stack.pop()
        if value == start:
            return path
        if value in visited or value not in state.first_def:
            continue
        visited.add(value)
        for nxt in ops[state.first_def[value]].operands:
            stack.append((nxt, path + [nxt]))
    return None


def _check_arity(state: _State, op: Op, opdef: OpDef, loc: Loc | None) -> bool:
    need, got = len(opdef.operands), len(op.operands)
    if (got < need) if opdef.variadic else (got != need):
        expected = f"at least {need}" if opdef.variadic else str(need)
        state.report("E105", f"{op.name} takes {expected} operand(s), got {got} (defining %{op.result})", loc)
        return False
    columns = op.attr("columns")
    if op.name == "make_frame" and isinstance(columns, tuple) and len(columns) != got:
        state.report("E105", f"make_frame has {len(columns)} column name(s) for {got} operand(s) "
                             f"(defining %{op.result})", loc)
        return False
    return True


def _check_operand_kinds(state: _State, op: Op, opdef: OpDef, loc: Loc | None) -> bool:
    ok = True
    for position, src in enumerate(op.operands):
        t = state.module.ops[state.first_def[src]].type
        if not opdef.accepts(position, t):
            allowed = (opdef.operands[-1] if position >= len(opdef.operands) else opdef.operands[position])
            state.report("E106", f"operand {position + 1} of {op.name} must be {allowed.replace('|', ' or ')}, "
                                 f"got %{src} : {t} (defining %{op.result})", loc)
            ok = False
    return ok


def _check_attrs(state: _State, op: Op, opdef: OpDef, loc: Loc | None) -> bool:
    problems = _attr_problems(op, opdef)
    for problem in problems:
        state.report("E107", f"{op.name} (defining %{op.result}): {problem}", loc)
    return not problems


def _attr_problems(op: Op, opdef: OpDef) -> list[str]:
    keys = [k for k, _ in op.attrs]
    problems = [f"attribute {k!r} given twice" for k in sorted({k for k in keys if keys.count(k) > 1})]
    problems += [f"missing required attribute {k!r}" for k, spec in opdef.attrs.items()
                 if spec.required and k not in keys]
    for key, value in op.attrs:
        spec = opdef.attrs.get(key)
        if spec is None:
            known = ", ".join(sorted(opdef.attrs)) or "none"
            problems.append(f"unknown attribute {key!r} (known: {known})")
        else:
            problems += _value_problems(key, value, spec)
    return problems


def _value_problems(key: str, value: object, spec: AttrSpec) -> list[str]:
    if not _has_type(value, spec.types):
        names = " or ".join(t.__name__ for t in spec.types)
        return [f"attribute {key!r} must be {names}, got {type(value).__name__} {value!r}"]
    if spec.choices is not None and value not in spec.choices:
        return [f"attribute {key!r} must be one of {', '.join(map(repr, spec.choices))}, got {value!r}"]
    if key in _POSITIVE_INTS and isinstance(value, int) and value < 1:
        return [f"attribute {key!r} must be at least 1, got {value}"]
    try:
        canonical_value(value)
    except (TypeError, ValueError, RecursionError):
        return [f"attribute {key!r} has no canonical form: {_short(value)}"]
    problem = spec.check(value)
    return [f"attribute {key!r} {problem}, got {_short(value)}"] if problem else []


def _short(value: object) -> str:
    try:
        text = repr(value)
    except RecursionError:
        return f"a {type(value).__name__} nested too deeply to show"
    return text if len(text) <= 60 else text[:57] + "..."


def _has_type(value: object, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


def _check_result_type(state: _State, op: Op, opdef: OpDef, loc: Loc | None) -> None:
    operand_types = tuple(state.module.ops[state.first_def[s]].type for s in op.operands)
    try:
        expected = opdef.result(operand_types, {**opdef.defaults(), **op.attr_dict})
    except Exception as e:  # the registry's typing rule rejects these operands (e.g. no such column)
        state.report("E106", f"{op.name} cannot type its operands (defining %{op.result}): {e}", loc)
        return
    if expected != op.type:
        state.report("E113", f"%{op.result} is printed as {op.type} but {op.name} gives {expected}", loc)


def _check_clock(state: _State, op: Op, opdef: OpDef, loc: Loc | None) -> None:
    """Record ``op``'s clock (``clocks.clock_of``); operands on several clocks are legal (as-of join)."""
    state.clock[op.result] = clock_of(op, (state.clock.get(s) for s in op.operands))


# --- whole-module checks ------------------------------------------------------------------------------

def _check_node_ids(state: _State) -> None:
    """E108 on sound ops only: a broken upstream makes the recomputed ID meaningless (and may crash)."""
    sound_ops = tuple(op for op in state.module.ops if op.result in state.sound)
    try:
        expected = node_ids(Module(state.module.name, sound_ops))
    except Exception as e:  # noqa: BLE001 - the verifier must never raise; say what went wrong
        state.report("E108", f"cannot recompute NodeIDs: {e}", None)
        return
    for index, op in enumerate(state.module.ops):
        if op.node_id is not None and op.result in expected and state.first_def.get(op.result) == index \
                and op.node_id != expected[op.result]:
            state.report("E108", f"%{op.result} has id {op.node_id} but its content hashes to "
                                 f"{expected[op.result]}", state.op_loc(index))


def _check_outputs(state: _State) -> None:
    module = state.module
    seen: set[str] = set()
    for index, out in enumerate(module.outputs):
        loc = _output_loc(state, index)
        if out.name in seen:
            state.report("E112", f"output @{out.name} is declared twice", loc)
        seen.add(out.name)
        if out.kind not in _OUTPUT_KINDS:
            state.report("E112", f"output @{out.name} has kind {out.kind!r}; expected "
                                 f"{' or '.join(map(repr, _OUTPUT_KINDS))}", loc)
        for v in out.inputs:
            if v not in state.first_def:
                state.report("E112", f"output @{out.name} declares input %{v}, which is not a defined value",
                             loc)
        if len(set(out.inputs)) != len(out.inputs):
            state.report("E112", f"output @{out.name} declares an input twice", loc)
        if out.value not in state.first_def:
            state.report("E112", f"output @{out.name} names undefined value %{out.value}", loc)
            continue
        need = output_required_period(module, out)
        if isinstance(out.period, int) and out.period < need:
            path = " -> ".join(f"%{v}" for v in longest_path(module, out.value, out))
            state.report("E109", f"output @{out.name} declares period {out.period} but needs {need} bars "
                                 f"(longest look-back path: {path})", loc)


def _output_loc(state: _State, index: int) -> Loc | None:
    locs = state.text_locs.outputs if state.text_locs is not None else None
    if locs is not None and index < len(locs) and locs[index] is not None:
        return locs[index]
    at = state.first_def.get(state.module.outputs[index].value)
    return state.op_loc(at) if at is not None else None


def _where(loc: Loc | None) -> str:
    return str(loc) if loc is not None else "an op with no location"

