"""Storage backends behind one protocol (see :mod:`redline.store.base`)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from redline.exceptions import ConfigError
from redline.store.base import EventQuery, KillRecord, Store, StoredEvent
from redline.store.memory import MemoryStore

if TYPE_CHECKING:
    from redline.config import MonitorConfig

__all__ = ["EventQuery", "KillRecord", "MemoryStore", "Store", "StoredEvent", "open_store"]


def open_store(config: MonitorConfig, backend: str) -> Store:
    """Open the configured backend; optional engines are imported only when asked for."""
    st = config.storage
    if backend == "memory":
        return MemoryStore(max_events=st.max_events)
    if backend == "sqlite":
        from redline.store.sqlite import SQLiteStore

        assert st.path is not None
        return SQLiteStore(
            st.path,
            signing_key_path=st.signing_key_path or None,
            anchor_path=st.anchor_path or None,
            checkpoint_every=st.checkpoint_every,
            checkpoint_interval=st.checkpoint_interval_seconds,
            synchronous=st.synchronous,
        )
    if backend == "postgres":
        try:
            from redline.store.postgres import PostgresStore
        except ImportError as exc:
            raise ConfigError(
                [f"{config.source or '<config>'}: storage.backend: postgres: {exc}"],
                file=config.source or None,
            ) from exc
        return PostgresStore(
            st.dsn or os.environ.get("REDLINE_PG_DSN", ""),
            schema=st.schema or os.environ.get("REDLINE_PG_SCHEMA") or "redline",
            partition=st.partition,
            partitions_ahead=st.partitions_ahead,
            signing_key_path=st.signing_key_path or None,
            anchor_path=st.anchor_path or None,
            checkpoint_every=st.checkpoint_every,
            checkpoint_interval=st.checkpoint_interval_seconds,
            reread_interval=config.kill_switch.reread_interval_seconds,
        )
    if backend == "jsonl":
        from redline.store.jsonl import JsonlStore

        assert st.path is not None
        return JsonlStore(st.path, kill_state_path=config.kill_switch.state_path or None)
    raise ConfigError(
        [
            f"{config.source or '<config>'}: storage.backend: {backend!r} is not available in this "
            "build (use 'memory')"
        ],
        file=config.source or None,
    )
