"""Storage backends behind one protocol (see :mod:`redline.store.base`), built by name.

:func:`open_store` looks the backend up in :mod:`redline.store.registry` and lets the class
build itself from the config; a backend whose optional dependency is missing, or a name this
build does not know, is a :class:`~redline.exceptions.ConfigError` naming the file and the key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from redline.exceptions import ConfigError
from redline.store.base import (
    Checkpointed,
    Describable,
    EventQuery,
    FleetRollups,
    ForkAware,
    GroupedCounts,
    KillRecord,
    Leadership,
    Prunable,
    SharedKillState,
    Store,
    StoredEvent,
    Verifiable,
)
from redline.store.memory import MemoryStore
from redline.store.registry import StoreFactory, backend_class

if TYPE_CHECKING:
    from redline.config import MonitorConfig

__all__ = [
    "Checkpointed",
    "Describable",
    "EventQuery",
    "FleetRollups",
    "ForkAware",
    "GroupedCounts",
    "KillRecord",
    "Leadership",
    "MemoryStore",
    "Prunable",
    "SharedKillState",
    "Store",
    "StoreFactory",
    "StoredEvent",
    "Verifiable",
    "open_store",
    "store_class",
]


def store_class(config: MonitorConfig, backend: str) -> StoreFactory:
    """The class of ``backend``, imported now; a ``ConfigError`` when it cannot be used."""
    where = f"{config.source or '<config>'}: storage.backend"
    try:
        cls: StoreFactory | None = backend_class(backend)
    except ImportError as exc:
        raise ConfigError([f"{where}: {backend}: {exc}"], file=config.source or None) from exc
    if cls is None:
        raise ConfigError(
            [f"{where}: {backend!r} is not available in this build (use 'memory')"],
            file=config.source or None,
        )
    return cls


def open_store(config: MonitorConfig, backend: str) -> Store:
    """Open the configured backend; optional engines are imported only when asked for."""
    return store_class(config, backend).from_config(config)
