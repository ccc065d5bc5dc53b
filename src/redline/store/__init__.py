"""Storage backends behind one protocol (see :mod:`redline.store.base`)."""

from __future__ import annotations

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
    raise ConfigError(
        [
            f"{config.source or '<config>'}: storage.backend: {backend!r} is not available in this "
            "build (use 'memory')"
        ],
        file=config.source or None,
    )
