"""Hypothesis strategies for random *valid* IR modules, built from the op registry.

Other suites (passes, NodeIDs, codegen) import this::

    from tests.ir.gen import modules
    @given(modules(with_ids=True))
    def test_something(module): ...

``modules()`` builds a module on one clock: 1–3 sources (``stream_input`` / ``tag_query``) with random
tags, then a random chain/diamond of ops drawn from every registered op, each with random *valid*
attributes and operands of kinds the op accepts, and 1–3 outputs whose declared period covers their
look-back.  Every module it yields passes ``qmtl.ir.verifier.verify`` with no findings.

Float attributes are finite and never NaN, so generated modules compare equal to themselves after a
round trip (NaN != NaN); the printer tests cover NaN separately.
"""

from __future__ import annotations

import string
from typing import Callable

from hypothesis import strategies as st

from qmtl.ir.lookback import output_required_period
from qmtl.ir.ops import MATH_UFUNCS
from qmtl.ir.module import Loc, Module, Op, Output, make_attrs
from qmtl.ir.nodeid import with_node_ids
from qmtl.ir.ops import REGISTRY
from qmtl.ir.types import Type

Pool = list[tuple[str, Type]]
Draw = Callable
# What a builder returns: operand names and the attribute mapping, or None when the pool cannot feed it.
Built = tuple[tuple[str, ...], dict] | None

INTERVALS = (1, 60, 300, 3600, 86400)
BAR_FIELDS = ("open", "high", "low", "close", "volume")
TAG_WORDS = ("BTC", "ETH", "price", "1m", "crypto", "us-equity", "spot")

identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,10}", fullmatch=True)
# Names a printer must quote: anything, including quotes, backslashes, newlines and non-ASCII.
odd_names = st.text(min_size=0, max_size=8)
names = st.one_of(identifiers, identifiers, identifiers, odd_names)
finite_floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
small_ints = st.integers(-(2 ** 70), 2 ** 70)


def attr_values(max_leaves: int = 8) -> st.SearchStrategy:
    """Any attribute value the IR can hold (NaN excluded so equality holds)."""
    scalars = st.one_of(st.none(), st.booleans(), small_ints,
                        st.floats(allow_nan=False), st.text(max_size=10))
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=3).map(tuple),
                        max_leaves=max_leaves)


def types() -> st.SearchStrategy[Type]:
    dtypes = st.sampled_from(("f64", "i64", "bool"))
    columns = st.lists(st.tuples(names, st.one_of(dtypes, names)), max_size=3).map(tuple)
    return st.one_of(st.just(Type("bars")), st.just(Type("opaque")),
                     st.builds(Type, st.sampled_from(("series", "scalar")), dtypes),
                     columns.map(lambda cols: Type("frame", None, cols)))


def locs() -> st.SearchStrategy[Loc]:
    files = st.one_of(st.sampled_from(("examples/momentum.py", "strategy.py")), st.text(max_size=12))
    return st.builds(Loc, files, st.integers(1, 10_000), st.integers(0, 200))


# --- operand pickers ----------------------------------------------------------------------------------

def _pick(draw: Draw, pool: Pool, kinds: str) -> str | None:
    fits = [name for name, t in pool if t.kind in kinds.split("|")]
    return draw(st.sampled_from(fits)) if fits else None


def _picks(draw: Draw, pool: Pool, kinds: tuple[str, ...]) -> tuple[str, ...] | None:
    chosen = tuple(_pick(draw, pool, k) for k in kinds)
    return None if None in chosen else chosen  # type: ignore[return-value]


def _series_window(attrs: Callable[[Draw], dict]) -> Callable[[Draw, Pool], Built]:
    def build(draw: Draw, pool: Pool) -> Built:
        src = _pick(draw, pool, "series")
        return None if src is None else ((src,), attrs(draw))
    return build


def _elementwise(arity: int, attrs: Callable[[Draw], dict] = lambda d: {}) -> Callable[[Draw, Pool], Built]:
    def build(draw: Draw, pool: Pool) -> Built:
        operands = _picks(draw, pool, ("series|scalar",) * arity)
        return None if operands is None else (operands, attrs(draw))
    return build


# --- attribute drawers (valid values only) ------------------------------------------------------------

def _periods(draw: Draw) -> dict:
    return draw(st.one_of(st.just({}), st.builds(lambda p: {"periods": p}, st.integers(1, 6))))


def _rolling(with_ddof: bool) -> Callable[[Draw], dict]:
    def attrs(draw: Draw) -> dict:
        window = draw(st.integers(1, 12))
        out: dict = {"window": window}
        if draw(st.booleans()):
            out["min_periods"] = draw(st.integers(1, window))
        if with_ddof and draw(st.booleans()):
            out["ddof"] = draw(st.integers(0, 1))
        return out
    return attrs


def _expanding(with_ddof: bool):
    def attrs(draw: Draw) -> dict:
        out = {"min_periods": draw(st.integers(0, 5))} if draw(st.booleans()) else {}
        if with_ddof and draw(st.booleans()):
            out["ddof"] = draw(st.integers(0, 1))
        return out
    return attrs


def _period(draw: Draw) -> dict:
    return {"period": draw(st.integers(1, 30))}


def _ewm(draw: Draw) -> dict:
    out = {"alpha": draw(st.floats(0.01, 1.0))}
    if draw(st.booleans()):
        out["adjust"] = draw(st.booleans())
    return out


def _macd(draw: Draw) -> dict:
    if not draw(st.booleans()):
        return {}
    fast = draw(st.integers(2, 12))
    return {"fast": fast, "slow": draw(st.integers(fast + 1, 30)), "signal": draw(st.integers(1, 9))}


def _clip(draw: Draw) -> dict:
    bound = st.one_of(st.integers(-100, 100), finite_floats)
    out = {}
    for key in ("lower", "upper"):
        if draw(st.booleans()):
            out[key] = draw(bound)
    return out


# --- builders for ops with a shape of their own --------------------------------------------------------

def _column(draw: Draw, pool: Pool) -> Built:
    src = _pick(draw, pool, "bars|frame|opaque")
    if src is None:
        return None
    t = dict(pool)[src]
    if t.kind == "frame":
        if not t.columns:
            return None
        return (src,), {"name": draw(st.sampled_from([c for c, _ in t.columns]))}
    return (src,), {"name": draw(st.sampled_from(BAR_FIELDS) if t.kind == "bars" else identifiers)}


def _const(draw: Draw, pool: Pool) -> Built:
    dtype = draw(st.sampled_from(("f64", "i64", "bool")))
    value = {"f64": finite_floats, "i64": st.integers(-1000, 1000), "bool": st.booleans()}[dtype]
    attrs = {"value": draw(value)}
    if dtype != "f64" or draw(st.booleans()):
        attrs["dtype"] = dtype
    return (), attrs


def _make_frame(draw: Draw, pool: Pool) -> Built:
    n = draw(st.integers(1, 3))
    operands = _picks(draw, pool, ("series|scalar",) * n)
    if operands is None:
        return None
    columns = draw(st.lists(identifiers, min_size=n, max_size=n, unique=True))
    return operands, {"columns": tuple(columns)}


def _py_call(draw: Draw, pool: Pool) -> Built:
    n = draw(st.integers(1, 3))
    operands = _picks(draw, pool, ("bars|series|frame|opaque",) * n)
    if operands is None:
        return None
    attrs = {"code_hash": "blake3:" + draw(st.text("0123456789abcdef", min_size=64, max_size=64)),
             "period": draw(st.integers(1, 30))}
    if draw(st.booleans()):
        attrs["fn"] = draw(identifiers)
    if draw(st.booleans()):
        attrs["reason"] = draw(st.sampled_from(("iterates a CacheView", "calls an unknown function")))
    if draw(st.booleans()):
        attrs["deterministic"] = True
    return operands, attrs


def _atr(draw: Draw, pool: Pool) -> Built:
    operands = _picks(draw, pool, ("series",) * 3)
    return None if operands is None else (operands, _period(draw))


def _risk_control(draw: Draw, pool: Pool) -> Built:
    operands = _picks(draw, pool, ("series",) * 2)
    if operands is None:
        return None
    attrs = {"max_position": draw(st.floats(0.5, 10.0))}
    if draw(st.booleans()):
        attrs["max_notional"] = draw(st.floats(1.0, 1e6))
    return operands, attrs


#: canonical session sets (``qmtl.ir.sessions.canonical_sessions``), a zone with DST among them
SESSION_SETS = (("00:00-24:00 UTC",), ("Mon,Tue,Wed,Thu,Fri 09:30-16:00 America/New_York",),
                ("00:00-01:00 UTC", "22:00-02:00 Europe/London"))


def _timing_gate(draw: Draw, pool: Pool) -> Built:
    src = _pick(draw, pool, "series")
    return None if src is None else ((src,), {"sessions": draw(st.sampled_from(SESSION_SETS))})


def _execution(draw: Draw, pool: Pool) -> Built:
    operands = _picks(draw, pool, ("series",) * 3)
    if operands is None:
        return None
    attrs = {"initial_cash": draw(st.floats(1.0, 1e6))}
    for key in ("fee_bps", "slippage_bps"):
        if draw(st.booleans()):
            attrs[key] = draw(st.floats(0.0, 50.0))
    return operands, attrs


BUILDERS: dict[str, Callable[[Draw, Pool], Built]] = {
    "risk_control": _risk_control, "timing_gate": _timing_gate, "execution": _execution,
    "column": _column, "const": _const, "make_frame": _make_frame, "py_call": _py_call, "atr": _atr,
    "clip": _elementwise(1, _clip),
    "fillna": _elementwise(1, lambda d: {"value": d(st.one_of(st.integers(-5, 5), finite_floats))}),
    "astype": _elementwise(1, lambda d: {"dtype": d(st.sampled_from(("f64", "i64", "bool")))}),
    "where": _elementwise(3),
    "pct_change": _series_window(_periods), "diff": _series_window(_periods),
    "shift": _series_window(_periods),
    "ewm_mean": _series_window(_ewm), "ema": _series_window(_period), "rsi": _series_window(_period),
    "macd": _series_window(_macd),
    **{f"rolling_{s}": _series_window(_rolling(s in ("std", "var")))
       for s in ("mean", "sum", "min", "max", "std", "var")},
    **{name: _elementwise(2) for name in ("add", "sub", "mul", "div", "pow", "gt", "ge", "lt", "le", "eq",
                                           "ne", "and", "or", "maximum", "minimum")},
    **{name: _elementwise(1) for name in ("neg", "abs", "not", "log", "exp", "sqrt", "sign")},
    **{name: _elementwise(1) for name in MATH_UFUNCS},
    "value_of": lambda draw, pool: (lambda src: None if src is None else ((src,), {}))(_pick(draw, pool, "opaque")),
    **{name: _series_window(lambda d: {}) for name in ("cumsum", "cumprod", "cummax", "cummin", "ffill")},
    **{f"expanding_{s}": _series_window(_expanding(s in ("std", "var")))
       for s in ("mean", "sum", "min", "max", "std", "var")},
}
SOURCES = ("stream_input", "tag_query")


# --- modules ------------------------------------------------------------------------------------------

def _source(draw: Draw, interval: int) -> tuple[str, dict]:
    tags = tuple(draw(st.lists(st.one_of(st.sampled_from(TAG_WORDS), st.text(max_size=6)), max_size=3)))
    if draw(st.sampled_from(SOURCES + ("stream_input",) * 3)) == "tag_query":
        attrs = {"tags": tags or ("BTC",), "interval": interval}
        if draw(st.booleans()):
            attrs["match_mode"] = draw(st.sampled_from(("any", "all")))
        return "tag_query", attrs
    attrs = {"interval": interval}
    if tags or draw(st.booleans()):
        attrs["tags"] = tags
    return "stream_input", attrs


def _value_name(draw: Draw, taken: set[str]) -> str:
    base = draw(names)
    name = base
    while name in taken:
        name = f"{base}_{len(taken)}"
    taken.add(name)
    return name


def _add_op(draw: Draw, ops: list[Op], pool: Pool, taken: set[str], name: str, operands: tuple[str, ...],
            attrs: dict, with_locs: bool | None) -> None:
    opdef = REGISTRY[name]
    frozen = make_attrs(attrs)
    try:
        result_type = opdef.result(tuple(dict(pool)[s] for s in operands), {**opdef.defaults(), **dict(frozen)})
    except TypeError:  # operands the op's type rule rejects (``bool - bool``): no op this time
        return
    loc = draw(locs()) if (draw(st.booleans()) if with_locs is None else with_locs) else None
    result = _value_name(draw, taken)
    ops.append(Op(result, name, operands, frozen, result_type, loc))
    pool.append((result, result_type))


@st.composite
def modules(draw: Draw, *, with_ids: bool = False, with_locs: bool | None = None, max_ops: int = 12,
            op_names: tuple[str, ...] | None = None) -> Module:
    """A random valid module.

    ``with_ids`` fills every ``Op.node_id``; ``with_locs`` True/False forces locations on every op /
    none (default: random per op); ``op_names`` restricts the non-source ops drawn.
    """
    interval = draw(st.sampled_from(INTERVALS))
    ops: list[Op] = []
    pool: Pool = []
    taken: set[str] = set()
    for _ in range(draw(st.integers(1, 3))):
        name, attrs = _source(draw, interval)
        _add_op(draw, ops, pool, taken, name, (), attrs, with_locs)
        if name == "stream_input" and draw(st.booleans()):  # seed series so windowed ops have input
            _add_op(draw, ops, pool, taken, "column", (ops[-1].result,),
                    {"name": draw(st.sampled_from(BAR_FIELDS))}, with_locs)
    choices = sorted(op_names or BUILDERS)
    for _ in range(draw(st.integers(0, max_ops))):
        name = draw(st.sampled_from(choices))
        built = BUILDERS[name](draw, pool)
        if built is None:  # the pool cannot feed this op yet: read a column instead
            name, built = "column", _column(draw, pool)
        if built is not None:
            _add_op(draw, ops, pool, taken, name, built[0], built[1], with_locs)
    module = Module(draw(names), tuple(ops), _outputs(draw, ops, interval))
    return with_node_ids(module) if with_ids else module


def _outputs(draw: Draw, ops: list[Op], interval: int) -> tuple[Output, ...]:
    values = draw(st.lists(st.sampled_from([op.result for op in ops]), min_size=1, max_size=3, unique=True))
    out_names = draw(st.lists(names, min_size=len(values), max_size=len(values), unique=True))
    by_name = {op.result: op for op in ops}
    position = {op.result: i for i, op in enumerate(ops)}
    sources = [op.result for op in ops if op.name in ("stream_input", "tag_query")]
    declared = []
    for v in values:
        if v in sources:
            declared.append(())
            continue
        # declared inputs: earlier sources and earlier outputs' values (empty = the legacy rule)
        earlier = [u for u in dict.fromkeys(sources + values) if position[u] < position[v]]
        declared.append(tuple(draw(st.lists(st.sampled_from(earlier), unique=True, max_size=3)))
                        if earlier else ())
    # Look-back depends on each output's window edges, so compute it with the outputs in place.
    provisional = Module("m", tuple(ops), tuple(Output(n, v, 1, interval, inputs=i)
                                                 for n, v, i in zip(out_names, values, declared)))
    outputs = []
    for out in provisional.outputs:
        opaque = by_name[out.value].name == "py_call"
        reason = draw(st.sampled_from(("", "iterates a CacheView"))) if opaque else ""
        need = output_required_period(provisional, out)
        outputs.append(Output(out.name, out.value, need + draw(st.integers(0, 5)), interval,
                              "opaque" if opaque else "traced", reason, out.inputs))
    return tuple(outputs)
