"""Checking a submitted DAG without user code: structure, then identity, then checksum.

Structure comes first because identity is recomputed in topological order (a node's ID covers its
inputs' IDs), which needs every input to exist and no cycle.  Identity is recomputed with
``qmtl.ir.nodeid.spec_node_id`` — the one definition the compiler uses too.
"""

from __future__ import annotations

from dataclasses import dataclass

from qmtl.ir import ops as opreg
from qmtl.ir.dag import dag_checksum
from qmtl.ir.nodeid import spec_node_id

from ..gsg.store import Edge, GraphNode
from .errors import ApiError
from .models import DagDocument, DagNode, SubmitRequest


@dataclass(frozen=True)
class VerifiedDag:
    """A DAG whose every NodeID and checksum matched their recomputation."""

    nodes: tuple[DagNode, ...]  # in the submitted order
    checksum: str

    def graph_nodes(self) -> list[GraphNode]:
        return [GraphNode(n.node_id, n.op, n.interval, _tags(n)) for n in self.nodes]

    def edges(self) -> list[Edge]:
        return [(src, n.node_id) for n in self.nodes for src in dict.fromkeys(n.inputs)]


@dataclass(frozen=True)
class Mismatch:
    index: int
    name: str | None
    claimed: str
    recomputed: str

    def describe(self) -> str:
        who = f"node {self.name!r} (dag.nodes[{self.index}])" if self.name else f"dag.nodes[{self.index}]"
        return f"{who}: NodeID {self.claimed} does not match its recomputed NodeID {self.recomputed}"


class NodeIdMismatch(ApiError):
    def __init__(self, mismatches: list[Mismatch]) -> None:
        first = mismatches[0].describe()
        more = f" (and {len(mismatches) - 1} more)" if len(mismatches) > 1 else ""
        super().__init__(400, "E_NODE_ID_MISMATCH", first + more,
                         [{"index": m.index, "name": m.name, "claimed": m.claimed,
                           "recomputed": m.recomputed} for m in mismatches])
        self.mismatches = mismatches


def _tags(node: DagNode) -> tuple[str, ...]:
    tags = node.params.get("tags") if opreg.REGISTRY[node.op].kind == "source" else None
    return tuple(sorted({str(t) for t in tags})) if isinstance(tags, list) else ()


def verify_submission(req: SubmitRequest) -> VerifiedDag:
    doc = req.dag
    index = _index_by_id(doc)
    _check_ops(doc)
    _check_inputs(doc, index)
    order = _topological_order(doc, index)
    _check_identity(doc, order)
    _check_outputs(doc, index)
    checksum = dag_checksum(n.node_id for n in doc.nodes)
    for field, claimed in (("dag.checksum", doc.checksum), ("checksum", req.checksum)):
        if claimed is not None and claimed != checksum:
            raise ApiError(400, "E_CHECKSUM_MISMATCH",
                           f"{field}: {claimed} does not match the checksum of the submitted NodeIDs "
                           f"{checksum}")
    return VerifiedDag(tuple(doc.nodes), checksum)


def _index_by_id(doc: DagDocument) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, node in enumerate(doc.nodes):
        if node.node_id in index:
            raise ApiError(400, "E_SCHEMA", f"dag.nodes[{i}].node_id: duplicate NodeID {node.node_id} "
                                            f"(first at dag.nodes[{index[node.node_id]}])")
        index[node.node_id] = i
    return index


def _check_ops(doc: DagDocument) -> None:
    for i, node in enumerate(doc.nodes):
        if node.op not in opreg.REGISTRY:
            raise ApiError(400, "E_SCHEMA", f"dag.nodes[{i}].op: unknown op {node.op!r}; the gateway "
                                            "cannot recompute the NodeID of an op it does not know")


def _check_inputs(doc: DagDocument, index: dict[str, int]) -> None:
    for i, node in enumerate(doc.nodes):
        for k, src in enumerate(node.inputs):
            if src not in index:
                raise ApiError(400, "E_SCHEMA", f"dag.nodes[{i}].inputs[{k}]: {src} is not a node of "
                                                "this DAG")


def _topological_order(doc: DagDocument, index: dict[str, int]) -> list[int]:
    """Kahn's algorithm over node indices; what is left over lies on (or behind) a cycle."""
    pending = [len(set(n.inputs)) for n in doc.nodes]
    users: list[list[int]] = [[] for _ in doc.nodes]
    for i, node in enumerate(doc.nodes):
        for src in set(node.inputs):
            users[index[src]].append(i)
    ready = [i for i, count in enumerate(pending) if count == 0]
    order: list[int] = []
    while ready:
        i = ready.pop()
        order.append(i)
        for j in users[i]:
            pending[j] -= 1
            if pending[j] == 0:
                ready.append(j)
    if len(order) < len(doc.nodes):
        stuck = sorted(set(range(len(doc.nodes))) - set(order))
        names = ", ".join(f"dag.nodes[{i}]" + (f" ({doc.nodes[i].name})" if doc.nodes[i].name else "")
                          for i in stuck[:5])
        raise ApiError(400, "E_CYCLE", f"the DAG has a cycle through {names}"
                                       + (f" and {len(stuck) - 5} more" if len(stuck) > 5 else ""))
    return order


def _check_identity(doc: DagDocument, order: list[int]) -> None:
    mismatches: list[Mismatch] = []
    for i in order:
        node = doc.nodes[i]
        try:
            recomputed = spec_node_id(node.op, node.inputs, node.interval, node.period, node.params,
                                      node.code_hash, node.schema_compat_id)
        except (TypeError, ValueError) as exc:
            raise ApiError(400, "E_SCHEMA", f"dag.nodes[{i}].params: {exc}") from None
        if recomputed != node.node_id:
            mismatches.append(Mismatch(i, node.name, node.node_id, recomputed))
    if mismatches:
        raise NodeIdMismatch(sorted(mismatches, key=lambda m: m.index))


def _check_outputs(doc: DagDocument, index: dict[str, int]) -> None:
    for k, out in enumerate(doc.outputs):
        if out.node_id not in index:
            raise ApiError(400, "E_SCHEMA", f"dag.outputs[{k}].node_id: {out.node_id} is not a node of "
                                            "this DAG")
        for j, node_id in enumerate(out.inputs):
            if node_id not in index:
                raise ApiError(400, "E_SCHEMA", f"dag.outputs[{k}].inputs[{j}]: {node_id} is not a node "
                                                "of this DAG")
