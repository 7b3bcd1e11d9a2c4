"""``Strategy``: the class a user subclasses; ``setup()`` declares the nodes."""

from __future__ import annotations

from typing import ClassVar, Iterable

from .errors import SDKArgumentError
from .nodes import Node


class Strategy:
    """Subclass and implement ``setup()``, which calls ``self.add_nodes([...])``.

    ``default_interval`` / ``default_period`` apply to nodes that omit them (see ``qmtl.runtime.sdk.nodes``).
    """

    default_interval: ClassVar[int | str | None] = None
    default_period: ClassVar[int | None] = None

    def setup(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement setup()")

    @property
    def nodes(self) -> list[Node]:
        """Nodes added so far, in the order they were added (each once)."""
        return list(self.__dict__.setdefault("_nodes", []))

    def add_nodes(self, nodes: Node | Iterable[Node]) -> None:
        items = [nodes] if isinstance(nodes, Node) else list(nodes)
        added: list[Node] = self.__dict__.setdefault("_nodes", [])
        # identities of ``added``, so adding n nodes costs O(n) rather than O(n²) comparisons
        seen: set[int] = self.__dict__.setdefault("_node_ids", {id(n) for n in added})
        for node in items:
            if not isinstance(node, Node):
                raise SDKArgumentError(f"add_nodes() takes SDK nodes, got {type(node).__name__}")
            if id(node) not in seen:
                seen.add(id(node))
                added.append(node)

    def reset_nodes(self) -> None:
        """Forget added nodes (the frontend calls this before running ``setup()``)."""
        self.__dict__["_nodes"] = []
        self.__dict__["_node_ids"] = set()
