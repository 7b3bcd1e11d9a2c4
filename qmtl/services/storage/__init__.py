"""Storage seams the services share: one small SQL ``Database`` over SQLite (dev) and PostgreSQL (prod)."""

from .sql import Database, DatabaseError, RetryableConflict

__all__ = ["Database", "DatabaseError", "RetryableConflict"]
