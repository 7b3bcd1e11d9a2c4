"""The one verdict on a DAG document, for the gateway (``POST /strategies``) and ``qmtl lint --ssa``.

``judge_dag`` checks, in this order, and stops at the first stage that fails:

1. structure — NodeIDs unique (E101), ops known (E104), inputs name nodes of the document (E102), no
   cycle (E103), outputs name nodes (E112).  Identity is recomputed in topological order (a node's ID
   covers its inputs' IDs), which needs all of this.
2. identity and invariants — every NodeID recomputed with ``qmtl.ir.nodeid.spec_node_id`` (the one
   definition the compiler uses too; a non-source node's ``interval`` and the ``schema_compat_id``
   are hashed, so changing them is tampering, E108), the checksum, and the IR verifier over the
   document rebuilt as a module (arity, attribute types, periods, clocks, types: E105–E113).

A ``Verdict`` carries both readings of the same result: ``rejection`` (the gateway's error, or None)
and ``diagnostics`` (lint's findings, located in the JSON text when ``text_locs`` is given).  It is
built so that they cannot disagree: there is a rejection exactly when there is an error diagnostic.

Only informational fields are read without being checked: ``name``, ``type`` (checked against the
op, E113), ``loc``; ``meta`` contributes only the op's declared non-identity attributes (others are
ignored, never read as op attributes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from qmtl.ir import ops as opreg
from qmtl.ir.dag import dag_checksum, from_dag, strategy_id
from qmtl.ir.diagnostics import Diagnostic
from qmtl.ir.module import Loc
from qmtl.ir.nodeid import spec_node_id
from qmtl.ir.verifier import verify

from ..gsg.store import Edge, GraphNode
from .errors import ApiError, describe_validation
from .models import DagDocument, DagNode, DagOutput, SubmitRequest


@dataclass(frozen=True)
class VerifiedDag:
    """A DAG whose every NodeID and checksum matched their recomputation and which the verifier passed."""

    nodes: tuple[DagNode, ...]  # in the submitted order
    checksum: str
    outputs: tuple[DagOutput, ...] = ()

    @property
    def strategy_id(self) -> str:
        """A strategy is its DAG *and* what it outputs: the same nodes with an output renamed or given
        another period is another strategy (resubmitting the same document is idempotent)."""
        return strategy_id(self.checksum, (o.model_dump() for o in self.outputs))

    def graph_nodes(self) -> list[GraphNode]:
        """Each node with its tags: a source's (what data it selects) and the labels of every output
        naming it (``Node(tags=...)``), so tag queries over the graph find both."""
        labels: dict[str, set[str]] = {}
        for o in self.outputs:
            labels.setdefault(o.node_id, set()).update(o.tags)
        return [GraphNode(n.node_id, n.op, n.interval, tuple(sorted(set(_tags(n)) | labels.get(n.node_id, set()))))
                for n in self.nodes]

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


class StructureError(ApiError):
    """A structural rejection; ``lint_code`` and the node (or output) index locate it for lint."""

    def __init__(self, code: str, message: str, lint_code: str, node: int | None = None,
                 output: int | None = None) -> None:
        super().__init__(400, code, message)
        self.lint_code, self.node, self.output = lint_code, node, output


@dataclass
class Verdict:
    dag: VerifiedDag | None
    rejection: ApiError | None
    diagnostics: list[Diagnostic] = field(default_factory=list)


def parse_dag_document(raw: Any, prefix: str = "dag") -> DagDocument:
    """Validate a decoded document against the model (strict types); ``E_SCHEMA`` names the field."""
    try:
        return DagDocument.model_validate(raw)
    except ValidationError as exc:
        raise ApiError(400, "E_SCHEMA", describe_validation(exc, prefix)) from None


def judge_dag(doc: DagDocument, text_locs: Any = None) -> Verdict:
    """The verdict on ``doc`` (see the module docstring); never raises for a bad document."""
    try:
        return _judge(doc, text_locs)
    except RecursionError:
        err = ApiError(400, "E_SCHEMA", "dag: nested too deeply")
        return Verdict(None, err, [Diagnostic("E107", err.message, None)])


def verify_dag(doc: DagDocument) -> VerifiedDag:
    """The gateway's reading: the verified DAG, or its rejection raised."""
    verdict = judge_dag(doc)
    if verdict.rejection is not None:
        raise verdict.rejection
    assert verdict.dag is not None
    return verdict.dag


def verify_submission(req: SubmitRequest) -> VerifiedDag:
    dag = verify_dag(req.dag)
    if req.checksum is not None and req.checksum != dag.checksum:
        raise ApiError(400, "E_CHECKSUM_MISMATCH", f"checksum: {req.checksum} does not match the checksum "
                                                   f"of the submitted NodeIDs {dag.checksum}")
    return dag


def _judge(doc: DagDocument, text_locs: Any) -> Verdict:
    def op_loc(i: int | None) -> Loc | None:
        return text_locs.ops[i] if text_locs is not None and i is not None and i < len(text_locs.ops) else None

    try:
        index = _index_by_id(doc)
        _check_ops(doc)
        _check_inputs(doc, index)
        order = _topological_order(doc, index)
        _check_outputs(doc, index)
    except StructureError as exc:
        loc = op_loc(exc.node)
        if exc.output is not None and text_locs is not None and exc.output < len(text_locs.outputs):
            loc = text_locs.outputs[exc.output]
        return Verdict(None, exc, [Diagnostic(exc.lint_code, exc.message, loc)])
    try:
        mismatches = _identity(doc, order)
        findings = _verifier_findings(doc, text_locs)
    except (TypeError, ValueError) as exc:  # a value with no canonical form, an unreadable type
        err = ApiError(400, "E_SCHEMA", f"dag: {exc}")
        return Verdict(None, err, [Diagnostic("E107", err.message, None)])
    errors = [d for d in findings if d.severity == "error"]
    checksum = dag_checksum(n.node_id for n in doc.nodes)
    rejection: ApiError | None = None
    if mismatches:
        rejection = NodeIdMismatch(sorted(mismatches, key=lambda m: m.index))
        if not any(d.code == "E108" for d in errors):  # lint must name what the gateway refuses
            findings += [Diagnostic("E108", m.describe(), op_loc(m.index)) for m in mismatches]
    elif errors:
        rejection = ApiError(400, "E_DAG_INVALID", f"{errors[0].code}: {errors[0].message}"
                             + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
                             [{"code": d.code, "message": d.message} for d in errors])
    elif doc.checksum is not None and doc.checksum != checksum:
        rejection = ApiError(400, "E_CHECKSUM_MISMATCH", f"dag.checksum: {doc.checksum} does not match the "
                                                         f"checksum of the submitted NodeIDs {checksum}")
        findings.append(Diagnostic("E108", rejection.message, None))
    if rejection is not None:
        return Verdict(None, rejection, findings)
    return Verdict(VerifiedDag(tuple(doc.nodes), checksum, tuple(doc.outputs)), None, findings)


def _verifier_findings(doc: DagDocument, text_locs: Any) -> list[Diagnostic]:
    """The IR verifier over the document rebuilt as a module (structure already known sound).  NodeIDs
    are not checked again: ``_identity`` recomputed every one, and its mismatches become E108."""
    raw = doc.model_dump(by_alias=True, exclude_none=True)
    for node in raw["nodes"]:
        specs = opreg.REGISTRY[node["op"]].attrs
        node["meta"] = {k: v for k, v in node.get("meta", {}).items()
                        if k in specs and not specs[k].identity and k not in node.get("params", {})}
    return verify(from_dag(raw), check_ids=False, text_locs=text_locs)


def _tags(node: DagNode) -> tuple[str, ...]:
    tags = node.params.get("tags") if opreg.REGISTRY[node.op].kind == "source" else None
    return tuple(sorted({str(t) for t in tags})) if isinstance(tags, list) else ()


def _index_by_id(doc: DagDocument) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, node in enumerate(doc.nodes):
        if node.node_id in index:
            raise StructureError("E_SCHEMA", f"dag.nodes[{i}].node_id: duplicate NodeID {node.node_id} "
                                             f"(first at dag.nodes[{index[node.node_id]}])", "E101", node=i)
        index[node.node_id] = i
    return index


def _check_ops(doc: DagDocument) -> None:
    for i, node in enumerate(doc.nodes):
        if node.op not in opreg.REGISTRY or opreg.REGISTRY[node.op].internal:
            raise StructureError("E_SCHEMA", f"dag.nodes[{i}].op: unknown op {node.op!r}; the gateway cannot "
                                             "recompute the NodeID of an op it does not know", "E104", node=i)


def _check_inputs(doc: DagDocument, index: dict[str, int]) -> None:
    for i, node in enumerate(doc.nodes):
        for k, src in enumerate(node.inputs):
            if src not in index:
                raise StructureError("E_SCHEMA", f"dag.nodes[{i}].inputs[{k}]: {src} is not a node of this DAG",
                                     "E102", node=i)


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
        raise StructureError("E_CYCLE", f"the DAG has a cycle through {names}"
                             + (f" and {len(stuck) - 5} more" if len(stuck) > 5 else ""), "E103", node=stuck[0])
    return order


def _identity(doc: DagDocument, order: list[int]) -> list[Mismatch]:
    mismatches: list[Mismatch] = []
    for i in order:
        node = doc.nodes[i]
        recomputed = spec_node_id(node.op, node.inputs, node.interval, node.period, node.params,
                                  node.code_hash, node.schema_compat_id)
        if recomputed != node.node_id:
            mismatches.append(Mismatch(i, node.name, node.node_id, recomputed))
    return mismatches


def _check_outputs(doc: DagDocument, index: dict[str, int]) -> None:
    for k, out in enumerate(doc.outputs):
        if out.node_id not in index:
            raise StructureError("E_SCHEMA", f"dag.outputs[{k}].node_id: {out.node_id} is not a node of this DAG",
                                 "E112", output=k)
        for j, node_id in enumerate(out.inputs):
            if node_id not in index:
                raise StructureError("E_SCHEMA", f"dag.outputs[{k}].inputs[{j}]: {node_id} is not a node "
                                                 "of this DAG", "E112", output=k)
