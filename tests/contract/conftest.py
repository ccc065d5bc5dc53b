"""The backends the store contract runs on: memory, JSONL, SQLite and PostgreSQL.

``backend`` is parametrised over all four. Each :class:`Backend` opens stores on one place (a temp
file, or a fresh PostgreSQL schema in database ``test``, dropped afterwards) and, for the chained
ones, tampers with stored rows behind the store's back, as an attacker with file or database
access would.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from conftest import PG_DSN
from redline.store.base import Store
from redline.store.jsonl import JsonlStore
from redline.store.memory import MemoryStore
from redline.store.sqlite import SQLiteStore

BACKENDS = ("memory", "jsonl", "sqlite", "postgres")


class Backend:
    """One engine: ``open()`` a store on it; ``edit``/``delete`` a stored row by seq."""

    name: str

    def __init__(self) -> None:
        self._memory: MemoryStore | None = None

    def open(self, **kw: Any) -> Any:
        raise NotImplementedError

    def edit(self, seq: int) -> None:
        """Change row ``seq``'s content without fixing its hash."""
        raise NotImplementedError

    def delete(self, seq: int) -> None:
        """Remove row ``seq``."""
        raise NotImplementedError


class MemoryBackend(Backend):
    name = "memory"

    def open(self, **kw: Any) -> Store:
        # One process, one store: "reopening" returns the same object, as a monitor would share it.
        if self._memory is None:
            self._memory = MemoryStore(**kw)
        return self._memory


class JsonlBackend(Backend):
    name = "jsonl"

    def __init__(self, tmp: Path) -> None:
        super().__init__()
        self.path = tmp / "events.jsonl"

    def open(self, **kw: Any) -> Store:
        kw.pop("clock", None)
        return JsonlStore(self.path, **kw)

    def _rewrite(self, seq: int, change: Any) -> None:
        out = []
        for line in self.path.read_text().splitlines():
            obj = json.loads(line)
            if obj["seq"] == seq:
                obj = change(obj)
                if obj is None:
                    continue
            out.append(json.dumps(obj))
        self.path.write_text("\n".join(out) + "\n")

    def edit(self, seq: int) -> None:
        self._rewrite(seq, lambda o: {**o, "data": {"forged": True}})

    def delete(self, seq: int) -> None:
        self._rewrite(seq, lambda o: None)


class SQLiteBackend(Backend):
    name = "sqlite"

    def __init__(self, tmp: Path) -> None:
        super().__init__()
        self.path = tmp / "events.db"

    def open(self, **kw: Any) -> Store:
        kw.setdefault("checkpoint_every", 5)
        return SQLiteStore(self.path, **kw)

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        conn = sqlite3.connect(self.path)
        with conn:
            conn.execute(sql, params)
        conn.close()

    def edit(self, seq: int) -> None:
        self.execute("UPDATE events SET payload = ? WHERE seq = ?", (b'{"forged":true}', seq))

    def delete(self, seq: int) -> None:
        self.execute("DELETE FROM events WHERE seq = ?", (seq,))


class PostgresBackend(Backend):
    name = "postgres"

    def __init__(self, schema: str, tmp: Path) -> None:
        super().__init__()
        self.schema = schema
        self.key = str(tmp / "pg.key")

    def open(self, **kw: Any) -> Store:
        from redline.store.postgres import PostgresStore

        kw.setdefault("checkpoint_every", 5)
        kw.setdefault("signing_key_path", self.key)
        kw.setdefault("reread_interval", 0.05)
        return PostgresStore(PG_DSN, schema=self.schema, **kw)

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        import psycopg

        with psycopg.connect(PG_DSN) as conn:
            conn.execute(f"SET search_path TO {self.schema}")
            conn.execute(sql, params)  # type: ignore[arg-type]

    def edit(self, seq: int) -> None:
        self.execute("UPDATE events SET payload = %s WHERE seq = %s", (b'{"forged":true}', seq))

    def delete(self, seq: int) -> None:
        self.execute("DELETE FROM events WHERE seq = %s", (seq,))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each engine in turn (PostgreSQL in a schema of its own, dropped after the test)."""
    name = request.param
    if name == "memory":
        return MemoryBackend()
    if name == "jsonl":
        return JsonlBackend(tmp_path)
    if name == "sqlite":
        return SQLiteBackend(tmp_path)
    return PostgresBackend(request.getfixturevalue("pg_schema"), tmp_path)


@pytest.fixture
def store(backend: Backend) -> Any:
    """A store on ``backend``, closed after the test."""
    opened = backend.open()
    yield opened
    opened.close()
