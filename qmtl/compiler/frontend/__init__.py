"""The frontend: a ``Strategy`` → raw (not yet canonical) SSA IR, by tracing (see ``tracer``)."""

from __future__ import annotations

from .result import FrontendResult
from .tracer import trace

__all__ = ["FrontendResult", "trace"]
