"""What the frontend hands to the rest of the compiler."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from qmtl.ir.diagnostics import Diagnostic
from qmtl.ir.module import Module


@dataclass
class FrontendResult:
    """The raw (not yet canonical) module of one strategy plus what only Python objects can hold.

    * ``functions``: ``code_hash`` → the Python callable a ``py_call`` op stands for (the runtime calls
      it per tick with a ``CacheView``);
    * ``sdk_nodes``: output name → the SDK node object, so the compiler can stamp ``node.node_id`` on it
      after hashing (a ``CacheView`` resolves ``view[node]`` through that attribute);
    * ``diagnostics``: tracing notes (why a node fell back to opaque) and errors with locations.
    """

    module: Module
    functions: dict[str, Callable[..., Any]] = field(default_factory=dict)
    sdk_nodes: dict[str, Any] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    source_file: str | None = None
