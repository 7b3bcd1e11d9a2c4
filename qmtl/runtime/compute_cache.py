"""Runtime state scoped by ``ComputeKey`` (docs/design.md "Shared execution").

Artifacts are the only values shared across worlds and execution domains (read-only, keyed by NodeID
and dataset).  Anything else a run keeps — its per-world results — lives here, keyed by
``compute_key(node_id, world, domain, as_of, partition)``, so a lookup from another world, domain,
point in time or dataset misses.  Every entry also remembers its own context; a lookup that lands on
an entry of another context is a policy violation: it is counted in
``qmtl_cross_context_cache_hits_total`` (whose objective is zero) and refused, never served.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

from prometheus_client import Counter

from qmtl.ir.nodeid import compute_key

CROSS_CONTEXT_HITS = Counter("qmtl_cross_context_cache_hits_total",
                             "Lookups of runtime state that reached an entry of another world, execution "
                             "domain, as_of or partition (refused; the objective is zero)")


@dataclass(frozen=True)
class RunContext:
    world: str
    domain: str
    as_of: str | None
    partition: str  # the dataset (its fingerprint) or another partition of it


class CrossContextHit(RuntimeError):
    """An entry of another context was reached (a key collision or a caller's bug): refused."""


class ComputeCache:
    """A bounded, thread-safe map ``ComputeKey → value`` (least recently used entries go first)."""

    def __init__(self, capacity: int = 256, key: Callable[..., str] = compute_key) -> None:
        self._entries: OrderedDict[str, tuple[str, RunContext, Any]] = OrderedDict()
        self._capacity = capacity
        self._key = key
        self._lock = threading.Lock()

    def get(self, node_id: str, context: RunContext) -> Any | None:
        key = self._key(node_id, context.world, context.domain, context.as_of, context.partition)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] != node_id or entry[1] != context:
                CROSS_CONTEXT_HITS.inc()
                raise CrossContextHit(f"runtime state for {entry[0]} in {entry[1]} was reached from "
                                      f"{node_id} in {context}")
            self._entries.move_to_end(key)
            return entry[2]

    def put(self, node_id: str, context: RunContext, value: Any) -> None:
        key = self._key(node_id, context.world, context.domain, context.as_of, context.partition)
        with self._lock:
            self._entries[key] = (node_id, context, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)
