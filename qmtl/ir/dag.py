"""The canonical DAG document: what `qmtl compile --emit json` prints and the gateway accepts.

It is the IR with names resolved to NodeIDs: every node lists its identity fields (exactly the ones
``qmtl.ir.nodeid`` hashes) so a reader can recompute every NodeID without user code, plus
informational fields (``name``, ``type``, ``loc``, ``meta``) that are not part of identity.
"""

from __future__ import annotations

import functools
from typing import Any

from . import ops as opreg
from .module import Loc, Module, Op, Output, make_attrs
from .types import Type
from .clocks import clocks
from .nodeid import canonical_bytes, canonical_value, digest, identity_fields, node_ids
from .parser import IRSyntaxError, parse_type
from .printer import print_type

SCHEMA = "qmtl.dag/1"


def to_dag(module: Module) -> dict[str, Any]:
    ids = node_ids(module)
    clock = clocks(module)
    nodes = []
    for op in module.ops:
        f = identity_fields(op, clock[op.result])
        opdef = opreg.REGISTRY[op.name]
        meta = {k: v for k, v in op.attrs if k in opdef.attrs and not opdef.attrs[k].identity}
        nodes.append({
            "node_id": ids[op.result], "op": op.name, "inputs": [ids[s] for s in op.operands],
            "interval": f["interval"], "period": f["period"], "params": canonical_value(f["params"]),
            "code_hash": f["code_hash"], "schema_compat_id": f["schema_compat_id"],
            "name": op.result, "type": print_type(op.type),
            "loc": str(op.loc) if op.loc else None, "meta": canonical_value(meta),
        })
    outputs = [{"name": o.name, "node_id": ids[o.value], "period": o.period, "interval": o.interval,
                "kind": o.kind, "inputs": [ids.get(v, v) for v in o.inputs],
                **({"tags": list(o.tags)} if o.tags else {})} for o in module.outputs]
    return {"schema": SCHEMA, "strategy": module.name, "nodes": nodes, "outputs": outputs,
            "checksum": dag_checksum(n["node_id"] for n in nodes)}


def dag_checksum(node_ids_: Any) -> str:
    """Checksum of a DAG: the digest of its sorted NodeIDs (order of nodes does not matter)."""
    return digest(canonical_bytes(sorted(node_ids_)))


def strategy_id(checksum: str, outputs: Any) -> str:
    """The content-derived id of a strategy: its DAG's checksum *and* what it outputs (``outputs``:
    ``name, node_id, period, interval, kind`` per output), so the same nodes with an output renamed
    or given another period are another strategy.  The gateway files submissions under it and a live
    process keys its orders and state by it, so both must compute it here, the one definition."""
    outs = sorted((o["name"], o["node_id"], o["period"], o["interval"], o.get("kind", "traced")) for o in outputs)
    text = "qmtl.strategy/2:" + checksum + ";" + ";".join(f"{n}={i}@{p}/{iv}:{k}" for n, i, p, iv, k in outs)
    return digest(text.encode())


def from_dag(doc: dict[str, Any]) -> Module:
    """Rebuild a module from a DAG document.  Operands are resolved by NodeID; an input that names no
    node is kept as the raw NodeID, so the verifier reports it (E102) instead of this failing."""
    names = _value_names(doc["nodes"])
    # every NodeID is resolved up front, so an input naming a *later* node becomes a use before
    # definition (the verifier reports the cycle, E103) rather than an unknown value
    by_id: dict[str, str] = {}
    for n, name in zip(doc["nodes"], names):
        by_id.setdefault(n["node_id"], name)
    ops: list[Op] = []
    for i, (n, name) in enumerate(zip(doc["nodes"], names)):
        attrs = dict(n.get("params") or {})
        attrs.update(n.get("meta") or {})
        opdef = opreg.REGISTRY.get(n["op"])
        if opdef is not None and opdef.kind == "source" and n.get("interval") is not None:
            attrs["interval"] = n["interval"]
        if n.get("period") is not None:
            attrs["period"] = n["period"]
        if n.get("code_hash") is not None:
            attrs["code_hash"] = n["code_hash"]
        operands = tuple(by_id.get(x, x) for x in n.get("inputs", []))
        ops.append(Op(name, n["op"], operands, make_attrs(attrs), _node_type(n.get("type", "opaque"), i),
                      _parse_loc(n.get("loc")), n.get("node_id")))
    outputs = tuple(Output(o["name"], by_id.get(o["node_id"], o["node_id"]), int(o["period"]), int(o["interval"]),
                           o.get("kind", "traced"),
                           inputs=tuple(by_id.get(x, x) for x in o.get("inputs") or ()),
                           tags=tuple(sorted({str(t) for t in o.get("tags") or ()})))
                    for o in doc.get("outputs", []))
    return Module(doc.get("strategy", "dag"), tuple(ops), outputs)


def _value_names(nodes: list[dict[str, Any]]) -> list[str]:
    """One SSA name per node: its ``name``, made unique (names are labels in a DAG, not identity)."""
    out: list[str] = []
    taken: set[str] = set()
    for i, n in enumerate(nodes):
        name = n.get("name") or f"n{i}"
        if name in taken:
            name = f"{name}_{i}"
        taken.add(name)
        out.append(name)
    return out


def _node_type(text: Any, index: int) -> Type:
    """A node's ``type`` field, read by the IR grammar (one spelling for the text form and the DAG)."""
    if not isinstance(text, str):
        raise ValueError(f"nodes[{index}].type must be a string, got {text!r}")
    try:
        return _parsed_type(text)
    except IRSyntaxError as exc:
        raise ValueError(f"nodes[{index}].type {text!r}: {exc.diagnostic.message}") from None


@functools.lru_cache(maxsize=1024)
def _parsed_type(text: str) -> Type:
    """Types are frozen values and a DAG spells a handful of them hundreds of times: parse each once
    (the grammar parse was most of the gateway's per-submission verification time)."""
    return parse_type(text)


def _parse_loc(text: str | None) -> Loc | None:
    if not text:
        return None
    parts = text.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return Loc(parts[0], int(parts[1]), int(parts[2]))
    file, _, line = text.rpartition(":")
    return Loc(file, int(line)) if line.isdigit() else Loc(text, 0)
