"""The gateway's request boundary: pydantic models of a submission and the DAG document inside it.

Types are strict where identity depends on them: ``"60"`` is not ``60`` to a hash, so the gateway
refuses it by name instead of coercing it and then reporting a confusing NodeID mismatch.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, StringConstraints

from qmtl.ir.dag import SCHEMA
from qmtl.services.worldservice.envelopes import Mode

NODE_ID_PATTERN = r"^blake3:[0-9a-f]{64}$"
WORLD_ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$"
WorldId = Annotated[str, StringConstraints(strict=True, pattern=WORLD_ID_PATTERN)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class DagNode(_Model):
    node_id: str = Field(pattern=NODE_ID_PATTERN)
    op: StrictStr
    inputs: list[StrictStr] = Field(default_factory=list)
    interval: StrictInt | None = None
    period: StrictInt | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    code_hash: StrictStr | None = None
    schema_compat_id: StrictStr
    # informational, never hashed:
    name: StrictStr | None = None
    type: StrictStr | None = None
    loc: StrictStr | None = None
    meta: dict[str, Any] = Field(default_factory=dict)


class DagOutput(_Model):
    name: StrictStr
    node_id: str = Field(pattern=NODE_ID_PATTERN)
    period: StrictInt
    interval: StrictInt
    kind: StrictStr = "traced"
    # the NodeIDs of the node's declared inputs (its window edges; not hashed), sources have none
    inputs: list[Annotated[str, Field(pattern=NODE_ID_PATTERN)]] = Field(default_factory=list)
    # labels tag queries select this node's values by (``Node(tags=...)``; not hashed)
    tags: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(default_factory=list, max_length=64)


class DagDocument(_Model):
    schema_: Literal[SCHEMA] = Field(alias="schema")  # type: ignore[valid-type]
    strategy: StrictStr = "dag"
    nodes: list[DagNode] = Field(min_length=1)
    outputs: list[DagOutput] = Field(default_factory=list)
    checksum: StrictStr | None = None


NodeId = Annotated[str, StringConstraints(strict=True, pattern=NODE_ID_PATTERN)]
Fingerprint = Annotated[str, StringConstraints(strict=True, pattern=NODE_ID_PATTERN)]  # same form
_INT64 = 2**63 - 1


class SubmitMeta(_Model):
    """What the submitter says about the data behind the DAG (see ``qmtl.services.evidence``)."""

    #: a mode to lower the world's decision to (one of the modes: a typo is refused, never read as
    #: compute-only with a reason that blames the hint)
    hint: Mode | None = None
    as_of: StrictStr | None = Field(default=None, max_length=64)
    dataset_fingerprint: StrictStr | None = Field(default=None, max_length=256)
    synthetic_data: StrictBool = False
    # NodeID → the fingerprint of the data its values depend on (qmtl.runtime.reuse): the answer then
    # says, per node, which registered artifact holds its values on this data
    node_fingerprints: dict[NodeId, Fingerprint] = Field(default_factory=dict, max_length=20_000)


class ArtifactRecord(_Model):
    """One stored node value (``qmtl.runtime.artifacts``) as the runner that wrote it registers it."""

    node_id: NodeId
    fingerprint: Fingerprint
    location: StrictStr = Field(min_length=1, max_length=2048)
    bytes: StrictInt = Field(ge=0, le=_INT64)
    rows: StrictInt = Field(ge=0, le=_INT64)
    name: StrictStr = Field(default="", max_length=256)
    strategy: StrictStr = Field(default="", max_length=256)


class ArtifactRegistration(_Model):
    artifacts: list[ArtifactRecord] = Field(min_length=1, max_length=10_000)


class ArtifactLookup(_Model):
    nodes: dict[NodeId, Fingerprint] = Field(min_length=1, max_length=20_000)


class NodeLookup(_Model):
    node_ids: list[NodeId] = Field(min_length=1, max_length=20_000)


class SubmitRequest(_Model):
    dag: DagDocument
    world_ids: list[WorldId] = Field(min_length=1, max_length=64)
    checksum: StrictStr | None = None
    meta: SubmitMeta = Field(default_factory=SubmitMeta)

    def worlds(self) -> list[str]:
        """World ids in first-seen order without repeats (a repeat is not a second binding)."""
        return list(dict.fromkeys(self.world_ids))

