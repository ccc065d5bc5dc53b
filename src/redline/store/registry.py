"""The storage backends, by name, in the lazy ``"module:Class"`` form the alert channels use.

The config's choice list for ``storage.backend`` comes from here, and :func:`backend_class`
imports a backend's module only when it is asked for, so ``Monitor()`` with the memory store
never imports sqlite3's wrappers or psycopg.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["STORE_BACKENDS", "backend_class"]

#: ``storage.backend`` → ``"module:Class"`` under :mod:`redline.store`.
STORE_BACKENDS: dict[str, str] = {
    "memory": "memory:MemoryStore",
    "jsonl": "jsonl:JsonlStore",
    "sqlite": "sqlite:SQLiteStore",
    "postgres": "postgres:PostgresStore",
}


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
