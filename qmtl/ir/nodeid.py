"""Content-addressed identity: NodeIDs and ComputeKeys (DESIGN.md "Identity").

``NodeID = "blake3:" + hex(blake3(canonical bytes))`` where the canonical bytes are compact, key-sorted
JSON of exactly these fields::

    {"code_hash", "inputs", "interval", "op", "params", "period", "schema_compat_id"}

* ``inputs`` are the operands' NodeIDs, in operand order, sorted only for commutative ops;
* ``params`` are the op's identity attributes (``AttrSpec.identity``) without ``interval``,
  ``code_hash`` and — for ``period_dependent`` ops — ``period``, which have fields of their own
  (``ema``'s ``period`` is its span, an ordinary parameter);
* ``period`` is set only for ops whose values depend on the window length (``period_dependent``);
* ``interval`` is the op's clock: a source's declared interval, else the clock of its inputs.

Nothing else goes in: not value names, not source locations, not the world.  The gateway calls
``spec_node_id`` on the fields of a submitted DAG, so one function defines identity for both sides.
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping, Sequence

from blake3 import blake3

from . import ops as opreg
from .clocks import clocks
from .module import Module, Op

PREFIX = "blake3:"
_OWN_FIELDS = ("interval", "period", "code_hash")
_OWN_FIELDS_NO_PERIOD = ("interval", "code_hash")


def canonical_value(v: Any) -> Any:
    """A JSON value with one spelling per meaning: tuples → lists, -0.0 → 0.0, non-finite → strings."""
    t = type(v)  # exact-type fast paths first: this runs for every field of every op hashed
    if t is str or t is int or t is bool or v is None:
        return v
    if t is tuple or t is list:
        return [canonical_value(x) for x in v]
    if t is dict:
        return {str(k): canonical_value(x) for k, x in v.items()}
    return _canonical_other(v)


def _canonical_other(v: Any) -> Any:
    """Floats and subclasses of the basic types (numpy scalars, enums, other mappings)."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return 0.0 if v == 0 else v
    if isinstance(v, (list, tuple)):
        return [canonical_value(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): canonical_value(x) for k, x in v.items()}
    raise TypeError(f"value {v!r} of type {type(v).__name__} has no canonical form")


# One encoder for every call: ``json.dumps`` with options builds a new encoder each time, which cost
# more than the encoding itself for the small specs hashed here.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_bytes(obj: Any) -> bytes:
    return _ENCODER.encode(canonical_value(obj)).encode()


def digest(data: bytes) -> str:
    return PREFIX + blake3(data).hexdigest()


def spec_node_id(op: str, inputs: Sequence[str], interval: int | None, period: int | None,
                 params: Mapping[str, Any], code_hash: str | None,
                 schema_compat_id: str = opreg.SCHEMA_COMPAT_ID) -> str:
    """The NodeID of one node given its canonical fields (shared by compiler, lint and gateway)."""
    opdef = opreg.REGISTRY.get(op)
    ins = sorted(inputs) if (opdef is not None and opdef.commutative) else list(inputs)
    spec = {"op": op, "inputs": ins, "interval": interval, "period": period,
            "params": dict(params), "code_hash": code_hash, "schema_compat_id": schema_compat_id}
    return digest(canonical_bytes(spec))


def identity_fields(op: Op, interval: int | None) -> dict[str, Any]:
    """The canonical fields of ``op`` other than its inputs (see the module docstring)."""
    opdef = opreg.REGISTRY[op.name]
    # ``period`` has a field of its own only where it is the node's window (``period_dependent``);
    # elsewhere an attribute named ``period`` is an ordinary parameter (``ema``'s span: ema(5) and
    # ema(20) must not share a NodeID).
    own = _OWN_FIELDS if opdef.period_dependent else _OWN_FIELDS_NO_PERIOD
    params = {k: v for k, v in op.attrs
              if k not in own and (k not in opdef.attrs or opdef.attrs[k].identity)}
    period = op.attr("period") if opdef.period_dependent else None
    return {"op": op.name, "interval": interval, "period": period, "params": params,
            "code_hash": op.attr("code_hash"), "schema_compat_id": opdef.schema_compat_id}


def op_node_id(op: Op, interval: int | None, input_ids: Sequence[str]) -> str:
    """The NodeID of ``op`` on clock ``interval`` reading values whose NodeIDs are ``input_ids``.

    Remembered per ``Op`` object: ops are immutable, and a compile hashes the same op objects several
    times (the passes' identity tables, then the final ``with_node_ids``), so the repeats are lookups.
    The memo is keyed by object identity (plus the interval and inputs), never by equality, because
    equal attribute tuples can still hash differently (``1`` vs ``1.0`` vs ``True``)."""
    inputs = tuple(input_ids)
    entry = _OP_IDS.get(id(op))
    if entry is not None and entry[0] is op and entry[1] == interval and entry[2] == inputs:
        return entry[3]
    f = identity_fields(op, interval)
    node_id = spec_node_id(f["op"], inputs, f["interval"], f["period"], f["params"], f["code_hash"],
                           f["schema_compat_id"])
    if len(_OP_IDS) >= _OP_IDS_MAX:
        _OP_IDS.clear()
    _OP_IDS[id(op)] = (op, interval, inputs, node_id)  # holding ``op`` keeps its id from being reused
    return node_id


_OP_IDS: dict[int, tuple[Op, int | None, tuple[str, ...], str]] = {}
_OP_IDS_MAX = 50_000


def forget_memoised_ids() -> None:
    """Drop the per-op memo.  The frontend calls this when it starts tracing a strategy: the ops of the
    previous compile will not be hashed again, and holding them would keep them alive (and make the
    cyclic collector scan them) for the rest of the process."""
    _OP_IDS.clear()


def node_ids(module: Module) -> dict[str, str]:
    """value name → NodeID for every op, computed in one pass (ops are in definition order)."""
    ids: dict[str, str] = {}
    clock = clocks(module)
    for op in module.ops:
        ids[op.result] = op_node_id(op, clock[op.result], [ids[s] for s in op.operands])
    return ids


def with_node_ids(module: Module) -> Module:
    """The same module with every ``Op.node_id`` filled in."""
    ids = node_ids(module)
    return module.with_(ops=tuple(op.with_(node_id=ids[op.result]) for op in module.ops))


def compute_key(node_id: str, world: str, domain: str, as_of: str | None, partition: str | None) -> str:
    """Runtime-state isolation key: the same node in two worlds or domains never shares state."""
    return digest(canonical_bytes({"node_id": node_id, "world": world, "domain": domain,
                                   "as_of": as_of, "partition": partition}))


def compute_key(node_id: str, world: str, domain: str, as_of: str | None, partition: str) -> str:
    """``ComputeKey = blake3(NodeID, world, execution_domain, as_of, partition)`` (docs/design.md
    "Shared execution"): what runtime state is scoped by.  A NodeID is the same everywhere; state
    computed for one world, domain, point in time or partition must never serve another."""
    return digest(canonical_bytes({"node_id": node_id, "world": world, "domain": domain, "as_of": as_of,
                                   "partition": partition}))
