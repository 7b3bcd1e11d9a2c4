"""The graph-store seam: what the gateway needs from the global strategy graph, and nothing more."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterable, Sequence

Edge = tuple[str, str]  # (upstream node_id, downstream node_id)


@dataclass(frozen=True, slots=True)
class GraphNode:
    """A node as the GSG keeps it: identity plus what tag queries select on.

    Names are per strategy and not part of identity, so they are not stored here; ``tags`` is empty
    for every node that is not a source.
    """

    node_id: str
    op: str
    interval: int | None = None
    tags: tuple[str, ...] = ()


class GraphStore(ABC):
    """Content-addressed and append-only: upserting a node that exists only adds a user of it."""

    @abstractmethod
    def upsert(self, strategy_id: str, nodes: Sequence[GraphNode], edges: Sequence[Edge]) -> None:
        """Add nodes and edges (idempotent) and record that ``strategy_id`` uses every node."""

    @abstractmethod
    def existing(self, node_ids: Iterable[str]) -> dict[str, list[str]]:
        """For each of ``node_ids`` already in the graph: the sorted ids of strategies using it."""

    @abstractmethod
    def dependents(self, node_id: str) -> list[str]:
        """Every node downstream of ``node_id`` (transitively), sorted; empty for a leaf or unknown id."""

    def by_tag(self, tags: Sequence[str], match_mode: str = "any",
               interval: int | None = None) -> list[GraphNode]:
        """Source nodes whose tags match: ``any`` shares at least one tag, ``all`` has every tag.

        Checked and normalised here once, so every backend answers the same for a bad mode or no tags.
        """
        if match_mode not in ("any", "all"):
            raise ValueError(f"match_mode must be 'any' or 'all', got {match_mode!r}")
        wanted = sorted(set(tags))
        return self._select_by_tag(wanted, match_mode == "all", interval) if wanted else []

    @abstractmethod
    def _select_by_tag(self, tags: list[str], require_all: bool,
                       interval: int | None) -> list[GraphNode]:
        """``by_tag`` for distinct, sorted, non-empty ``tags``, in node_id order."""

    def close(self) -> None:
        """Release connections (no-op by default)."""
