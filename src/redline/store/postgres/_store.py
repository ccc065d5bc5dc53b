"""The fleet store: PostgreSQL shared by every agent worker on every host.

What differs from the embedded SQLite store, and why (docs/fleet.md has the long form):

* **One chain per writer process, not one for the fleet.** Each process appends to its own
  *stream* (``host:pid:start-µs``, registered in ``streams``): ``seq`` counts within the stream
  and the head lives in the writer's memory, so writers never wait for each other. Each stream has
  its own signed checkpoints; :meth:`PostgresStore.verify` walks every stream and reports each in
  ``VerifyReport.streams`` (top-level ``ok`` is all of them). ``StoredEvent.seq`` is the
  fleet-wide row id, which cursors (``after_seq``/``before_seq``) page by.
* **Bulk insert with COPY** on a dedicated writer connection, in one transaction with the stream's
  checkpoint and the per-minute rollup upsert (``fleet_snapshot`` reads it).
* **Partitions by time** (``daily`` or ``monthly`` on ``ts``), created ahead and on demand;
  retention drops a whole partition when everything in it expired and it is a prefix of every
  chain in it, and otherwise tombstones rows as SQLite does.
* **Kill switches by LISTEN/NOTIFY.** A change commits and ``NOTIFY``\\ s in one transaction;
  :meth:`PostgresStore.poll_kills` drains notifications without blocking from a dedicated
  connection and re-reads the table every ``reread_interval`` seconds and after every reconnect
  (notifications sent while disconnected are lost). :meth:`kill_state_age` says how fresh the
  state is, so a monitor can fail closed when PostgreSQL is unreachable.
* **Survives a restart.** A failed append raises :class:`~redline.exceptions.StoreError` (the
  background writer keeps the batch and retries); the next append reconnects, re-reads the head,
  and skips a batch whose commit had in fact gone through, so nothing is stored twice.

Connections: a :class:`psycopg_pool.ConnectionPool` for queries and kill changes, one connection
for the writer thread, one for LISTEN and kill re-reads (also the writer thread: ``poll_kills`` is
called from the monitor's tick), and one for advisory-lock leadership (:meth:`try_lead`).
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

import psycopg

from redline.exceptions import StoreError
from redline.store.postgres._fleet import Fleet
from redline.store.postgres._kills import Kills
from redline.store.postgres._queries import Queries
from redline.store.postgres._retention import Retention
from redline.store.postgres._verify import Verification
from redline.store.postgres._writes import Writes
from redline.store.postgres.migrations import SchemaVersionError

if TYPE_CHECKING:
    from redline.config import MonitorConfig

__all__ = ["PostgresStore", "upgrade"]


def upgrade(dsn: str, schema: str = "redline") -> list[int]:
    """Create or migrate the schema (``redline db upgrade``); returns the versions applied."""
    from redline.store.postgres.migrations import upgrade as _upgrade

    try:
        return _upgrade(dsn, schema)
    except (psycopg.Error, SchemaVersionError) as exc:
        raise StoreError(f"postgres: upgrading schema {schema!r} failed: {exc}") from exc


class PostgresStore(Writes, Retention, Queries, Verification, Kills, Fleet):
    """Events, chains per writer process, kill state and fleet rollups in PostgreSQL."""

    @classmethod
    def from_config(cls, config: MonitorConfig) -> PostgresStore:
        """The store ``storage`` describes; ``REDLINE_PG_DSN`` / ``REDLINE_PG_SCHEMA`` fill gaps."""
        st = config.storage
        return cls(
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

    def info(self) -> dict[str, Any]:
        """Counts, heads, partitions and connection health (for ``status`` and readiness)."""
        q = self._q
        with self._reading() as conn:
            total, live = conn.execute(
                f"SELECT count(*), count(payload) FROM {q}.events"
            ).fetchone() or (0, 0)
            streams = conn.execute(f"SELECT count(*) FROM {q}.streams").fetchone()
            cps = conn.execute(f"SELECT count(*) FROM {q}.checkpoints").fetchone()
            size = conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
                "WHERE inhparent = to_regclass(%s)",
                (self._sql_events,),
            ).fetchone()
            version = conn.execute(f"SELECT max(version) FROM {q}.schema_migrations").fetchone()
            self._load_ranges(conn)
        seq, head = self.head()
        return {
            "path": f"postgres:{self.schema}",
            "backend": "postgres",
            "schema": self.schema,
            "schema_version": int(version[0]) if version and version[0] is not None else 0,
            "events": int(total),
            "erased": int(total) - int(live),
            "head_seq": seq,
            "head_hash": head,
            "stream": self.stream,
            "stream_head_seq": self._head[0] if self._head else None,
            "streams": int(streams[0]) if streams else 0,
            "checkpoints": int(cps[0]) if cps else 0,
            "partitions": len(self._ranges),
            "bytes": int(size[0]) if size else 0,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
            "kill_state_age": self.kill_state_age(),
            "listener_pid": self.listener_pid,
        }

    def close(self) -> None:
        """Sign this stream's head (if it appended), mark the stream closed, close everything.

        Idempotent; a store that only read or changed kill state signs nothing.
        """
        if self._closed:
            return
        self._closed = True
        if self._appended:
            with contextlib.suppress(StoreError):
                self.checkpoint()
            with contextlib.suppress(psycopg.Error), self._write_lock:
                if self._wconn is not None and not self._wconn.closed:
                    self._wconn.execute(
                        f"UPDATE {self._q}.streams SET closed_at = %s WHERE stream = %s",
                        (self._clock(), self.stream),
                    )
        for conn in (self._wconn, self._lconn, self._lead_conn):
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
        self._wconn = self._lconn = self._lead_conn = None
        self._pool.close()
