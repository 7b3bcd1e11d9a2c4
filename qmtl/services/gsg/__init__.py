"""The global strategy graph (GSG): every node ever submitted, its edges and which strategies use it.

``GraphStore`` is the one seam; ``SqlGraphStore`` (SQLite embedded default, PostgreSQL) and
``Neo4jGraphStore`` implement it.
"""

from .store import GraphNode, GraphStore
from .sql import SqlGraphStore

__all__ = ["GraphNode", "GraphStore", "SqlGraphStore"]
