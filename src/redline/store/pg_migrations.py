"""The PostgreSQL schema migrations, now :mod:`redline.store.postgres.migrations` (kept importable
here for code written against the earlier layout)."""

from __future__ import annotations

from redline.store.postgres.migrations import (
    LATEST,
    MIGRATIONS,
    SchemaVersionError,
    applied_versions,
    check_version,
    lock_key,
    quote_schema,
    upgrade,
    upgrade_connection,
)

__all__ = [
    "LATEST",
    "MIGRATIONS",
    "SchemaVersionError",
    "applied_versions",
    "check_version",
    "lock_key",
    "quote_schema",
    "upgrade",
    "upgrade_connection",
]
