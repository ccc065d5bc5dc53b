"""The storage backends, by name, in the lazy ``"module:Class"`` form the alert channels use.

The config's choice list for ``storage.backend`` comes from here, and :func:`backend_class`
imports a backend's module only when it is asked for, so ``Monitor()`` with the memory store
never imports sqlite3's wrappers or psycopg.

A backend class is a :class:`StoreFactory`: it says whether it is ``persistent`` before anything
is opened (the CLI refuses a memory-only config that way) and builds itself from the config with
``from_config``, so :func:`redline.store.open_store` has no per-backend branches.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from redline.config import MonitorConfig
    from redline.store.base import Store

__all__ = ["STORE_BACKENDS", "StoreFactory", "backend_class"]

#: ``storage.backend`` → ``"module:Class"`` under :mod:`redline.store`.
STORE_BACKENDS: dict[str, str] = {
    "memory": "memory:MemoryStore",
    "jsonl": "jsonl:JsonlStore",
    "sqlite": "sqlite:SQLiteStore",
    "postgres": "postgres:PostgresStore",
}


class StoreFactory(Protocol):
    """What the registry needs of a backend class (its class object, not an instance)."""

    #: The name it is registered under.
    backend: str
    #: Whether its events and kill state outlive the process (see :class:`~redline.store.Store`).
    persistent: bool

    def from_config(self, config: MonitorConfig) -> Store:
        """A store as ``config.storage`` (and the kill switch settings it needs) describe."""
        ...


def backend_class(name: str) -> Any:
    """The class of backend ``name`` (imported now); ``None`` for a name this build lacks.

    Raises ``ImportError`` when the backend's optional dependency is missing (PostgreSQL
    without the ``postgres`` extra).
    """
    target = STORE_BACKENDS.get(name)
    if target is None:
        return None
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(f"redline.store.{module_name}")
    return getattr(module, class_name)
