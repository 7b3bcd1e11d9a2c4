"""Response bodies of the gateway, as pydantic models, so the served OpenAPI describes every answer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class SubmissionDecision(BaseModel):
    """What a submission may act on in one world (``admission.admit``): the decision, or backtest."""

    effective_mode: str | None
    execution_domain: str
    orders_gated: bool
    reason: str | None
    as_of: str | None = None
    dataset_fingerprint: str | None = None


class NodeStatus(BaseModel):
    node_id: str
    name: str | None
    op: str
    status: str = Field(description="new | existing (already in the global strategy graph)")
    used_by: list[str] = Field(default_factory=list)
    artifact: str | None = Field(default=None, description="where a registered artifact holds this "
                                 "node's values on the submitted data (meta.node_fingerprints), if any")


class SubmitResponse(BaseModel):
    strategy_id: str
    created: bool
    checksum: str
    world_ids: list[str]
    execution_domains: dict[str, str]
    decisions: dict[str, SubmissionDecision]
    nodes: list[NodeStatus]
    reused: list[str]
    new: list[str]
    queue_map: dict[str, str]
    queues_by_world: dict[str, dict[str, str]]


class StoredStrategy(BaseModel):
    strategy_id: str
    checksum: str
    dag: dict[str, Any] = Field(description="the DAG document as submitted")
    world_ids: list[str]
    meta: dict[str, Any]
    nodes: list[NodeStatus]
    created_at: float


class ArtifactView(BaseModel):
    node_id: str
    fingerprint: str
    location: str
    bytes: int
    rows: int
    name: str
    strategy: str
    created_at: float
    used_by: list[str] = Field(description="strategies using this node that are bound to a world: "
                                           "while any is, gc keeps the artifact")


class ArtifactList(BaseModel):
    artifacts: list[ArtifactView]


class ArtifactsRecorded(BaseModel):
    recorded: int


class NodesFound(BaseModel):
    found: dict[str, list[str]] = Field(description="NodeID → the strategies using it, for the NodeIDs "
                                                    "the global strategy graph has")


class ArtifactsFound(BaseModel):
    found: dict[str, str] = Field(description="NodeID → location, for the (NodeID, fingerprint) pairs "
                                              "the index has")


class QueueRow(BaseModel):
    node_id: str
    queue: str
    world_id: str
    execution_domain: str
    op: str
    interval: int | None
    tags: list[str]


class QueuesByTag(BaseModel):
    tags: list[str]
    match_mode: str
    interval: int | None
    world_id: str | None
    queues: list[QueueRow]


class BusEvent(BaseModel):
    topic: str
    type: str
    data: dict[str, Any]
    idempotency_key: str
    seq: int


class PollAnswer(BaseModel):
    topic: str
    events: list[BusEvent]
    last_seq: int


class GatewayHealth(BaseModel):
    status: str
    strategies: int | None = None
    database: str | None = None
