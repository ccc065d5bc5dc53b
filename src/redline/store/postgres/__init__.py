"""The fleet store: PostgreSQL shared by every agent worker on every host.

:class:`PostgresStore` is assembled from one module per job, each a mixin over
:class:`~redline.store.postgres._core.PgCore` (connections, pool, partitions):

* ``_writes``: COPY into this process's stream, rollup upsert, checkpoints, exactly-once retries;
* ``_queries``: streamed queries, counts, the fleet head, streams, checkpoints;
* ``_verify``: every stream's chain, checkpoints and anchors;
* ``_retention``: partition drops and tombstones;
* ``_kills``: kill state by LISTEN/NOTIFY, leadership by advisory lock;
* ``_fleet``: per-minute rollups for the fleet view;
* ``migrations``: the versioned schema.

Importing this package without psycopg raises an ``ImportError`` that names the extra, which
:func:`redline.store.open_store` turns into a :class:`~redline.exceptions.ConfigError`.
"""

from __future__ import annotations

try:
    import psycopg  # noqa: F401  (imported here so a missing extra fails with one clear message)
    import psycopg_pool  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the postgres store needs psycopg 3 and psycopg-pool: pip install 'redline[postgres]'"
    ) from exc

from redline.store.base import FleetRow, FleetSnapshot
from redline.store.postgres._retention import PgPruneReport
from redline.store.postgres._store import PostgresStore, upgrade

__all__ = ["FleetRow", "FleetSnapshot", "PgPruneReport", "PostgresStore", "upgrade"]
