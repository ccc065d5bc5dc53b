"""The PostgreSQL store's base: configuration, connections, the pool, and time partitions.

Every other part of :class:`~redline.store.postgres.PostgresStore` (writes, queries,
verification, retention, kill state, fleet rollups) is a mixin over this class, which owns the
state they share: the DSN and schema, the pool for queries and kill changes, the writer's
connection, and the catalogue of ``events`` partitions (the writer creates them on demand,
retention drops them, both under an advisory lock so two processes never race).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Final

import msgspec
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg_pool import ConnectionPool

from redline.events import AgentEvent
from redline.exceptions import StoreError
from redline.store.base import EventQuery, KillRecord
from redline.store.chain import Signer
from redline.store.postgres.migrations import (
    SchemaVersionError,
    check_version,
    lock_key,
    quote_schema,
    upgrade_connection,
)
from redline.store.sql import select_events

__all__ = ["DAY", "PgCore", "decode_event", "pg_select", "query_ids"]  # and _Inflight, for tests

log = logging.getLogger("redline")

#: Seconds in a UTC day: partitions are whole days (or whole months of them).
DAY: Final = 86_400
_PARTITIONS: Final = ("daily", "monthly")
_BOUND = re.compile(r"FROM \('?([^')]+)'?\) TO \('?([^')]+)'?\)")
decode_event = msgspec.json.Decoder(AgentEvent).decode
#: Names for server-side cursors (unique within the process).
query_ids = itertools.count(1)


class _Inflight(msgspec.Struct):
    """A batch whose COMMIT may or may not have reached the server when the connection broke."""

    first: AgentEvent
    last: AgentEvent
    n: int
    seq: int
    hash: str


class PgCore:
    """Connections, pool, signer and partitions: what every part of the store shares."""

    backend = "postgres"
    persistent = True
    readonly = False

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "redline",
        partition: str = "daily",
        partitions_ahead: int = 3,
        checkpoint_every: int = 10_000,
        checkpoint_interval: float = 60.0,
        signing_key_path: str | os.PathLike[str] | None = None,
        anchor_path: str | os.PathLike[str] | None = None,
        stream: str | None = None,
        clock: Any = None,
        reread_interval: float = 2.0,
        pool_size: int = 8,
        connect_timeout: float = 5.0,
        auto_upgrade: bool = True,
    ) -> None:
        if partition not in _PARTITIONS:
            raise ValueError(f"storage.partition: expected one of {_PARTITIONS}, got {partition!r}")
        if not dsn:
            raise ValueError("storage.dsn: the postgres store needs a DSN (or REDLINE_PG_DSN)")
        self.dsn = dsn
        self.schema = schema
        self._q = q = quote_schema(schema)
        self.partition = partition
        self.partitions_ahead = partitions_ahead
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval = checkpoint_interval
        self.reread_interval = reread_interval
        self.anchor_path = Path(anchor_path) if anchor_path else None
        self._key_path = Path(signing_key_path) if signing_key_path else None
        self._clock = clock.time if clock is not None else time.time
        self._connect_kwargs: dict[str, Any] = {
            "connect_timeout": max(2, int(connect_timeout)),
            "application_name": "redline",
        }
        #: The NOTIFY channel kill changes are announced on.
        self.channel = "redline_kill" if schema == "redline" else f"redline_kill_{schema}"[:63]
        self.host = os.uname().nodename
        self.pid = os.getpid()
        self.started_at = time.time()
        self._explicit_stream = stream is not None
        #: This process's chain: ``host:pid:start-µs`` unless given.
        self.stream = stream or f"{self.host}:{self.pid}:{int(self.started_at * 1e6)}"
        self._signer: Signer | None = None
        self._sql_events = f"{q}.events"
        self._copy_sql = (
            f"COPY {q}.events (stream, seq, ts, agent, event_type, category, session_id, "
            '"user", payload, payload_sha256, prev_hash, hash) FROM STDIN (FORMAT BINARY)'
        )

        # Writer state (the writer thread, or whoever holds ``_write_lock``).
        self._write_lock = threading.Lock()
        self._wconn: psycopg.Connection[Any] | None = None
        self._registered = False
        self._head: tuple[int, str] | None = None
        self._inflight: _Inflight | None = None
        self._last_cp_seq = 0
        self._last_cp_at = self._clock()
        self._appended = False
        self._ranges: list[tuple[float, float, str]] = []
        self._covered_days: set[int] = set()
        self._ranges_stale = False
        self._next_ahead = 0.0

        # Kill state (the monitor's tick thread).
        self._lconn: psycopg.Connection[Any] | None = None
        self._listen_retry_at = 0.0
        self._last_read_mono: float | None = None
        self._last_records: frozenset[KillRecord] | None = None
        #: Backend pid of the LISTEN connection (``None`` until the first poll).
        self.listener_pid: int | None = None

        # Leadership (any thread, under ``_lead_lock``).
        self._lead_lock = threading.Lock()
        self._lead_conn: psycopg.Connection[Any] | None = None
        self._held: set[str] = set()

        #: Connections re-established after a failure (writer and listener).
        self.reconnects = 0
        self.last_error: str | None = None
        self._closed = False

        self._pool_size = max(2, pool_size)
        self._connect_timeout = connect_timeout
        self._pool = self._new_pool()
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
            with self._pool.connection() as conn:
                if auto_upgrade:
                    upgrade_connection(conn, schema)
                else:
                    check_version(conn, schema)
                self._load_ranges(conn)
            if auto_upgrade:
                self.ensure_partitions()
        except (psycopg.Error, SchemaVersionError) as exc:
            self._pool.close()
            raise StoreError(f"postgres ({schema}): cannot open the store: {exc}") from exc

    def upgrade(self) -> list[int]:
        """Apply any missing migrations to this store's schema; returns the versions applied."""
        try:
            with self._pool.connection() as conn:
                return upgrade_connection(conn, self.schema)
        except (psycopg.Error, SchemaVersionError) as exc:
            raise StoreError(f"postgres ({self.schema}): upgrade failed: {exc}") from exc

    # -- connections ----------------------------------------------------------------------
    def _new_pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        return ConnectionPool(
            self.dsn,
            min_size=1,
            max_size=self._pool_size,
            open=False,
            kwargs={**self._connect_kwargs, "autocommit": True},
            check=ConnectionPool.check_connection,
            timeout=self._connect_timeout,
            name=f"redline-{self.schema}",
            num_workers=1,
        )

    def after_fork(self) -> None:
        """In a forked child: its own connections, pool and chain stream.

        The parent's sockets are abandoned, not closed (closing would end the parent's
        sessions). The child appends to a new stream (``host:pid:start``), as every writer does,
        so the two processes never fork one chain.
        """
        if self._closed:
            return
        self.pid = os.getpid()
        self.started_at = time.time()
        if not self._explicit_stream:
            self.stream = f"{self.host}:{self.pid}:{int(self.started_at * 1e6)}"
        self._write_lock = threading.Lock()
        self._wconn = None
        self._registered = False
        self._head = None
        self._inflight = None
        self._last_cp_seq = 0
        self._last_cp_at = self._clock()
        self._appended = False
        self._lconn = None
        self._listen_retry_at = 0.0
        self._last_read_mono = None
        self._last_records = None
        self.listener_pid = None
        self._lead_lock = threading.Lock()
        self._lead_conn = None
        self._held = set()
        self._pool = self._new_pool()
        self._pool.open(wait=False)

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn, autocommit=True, **self._connect_kwargs)

    def _writer(self) -> psycopg.Connection[Any]:
        if os.getpid() != self.pid:
            # A forked child sharing the parent's stream would fork the chain (and its socket).
            raise StoreError(
                "postgres: this store was opened by another process (before a fork); "
                "open a new PostgresStore in the child"
            )
        conn = self._wconn
        if conn is not None and not conn.closed:
            return conn
        lost = conn is not None
        self._wconn = conn = self._connect()
        self._head = None  # re-read: the last commit may or may not have landed
        if lost:
            self.reconnects += 1
            log.warning("redline: reconnected to postgres (%s)", self.schema)
        return conn

    def _writer_failed(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}".strip()
        conn = self._wconn
        if conn is not None and (conn.broken or conn.closed):
            with contextlib.suppress(Exception):
                conn.close()
            self._head = None
        else:
            self._inflight = None  # the transaction was rolled back: nothing landed
        # A partition may have been dropped by another process's retention: look again.
        self._covered_days.clear()
        self._ranges_stale = True

    @property
    def signer(self) -> Signer:
        """The checkpoint key: ``signing_key_path`` (created 0600 on first use) or per process."""
        if self._signer is None:
            if self._key_path is not None:
                self._signer = Signer.from_file(self._key_path)
            else:
                self._signer = Signer(Ed25519PrivateKey.generate())
        return self._signer

    # -- reading --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _reading(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            self.last_error = f"{type(exc).__name__}: {exc}".strip()
            raise StoreError(f"postgres ({self.schema}): {exc}") from exc

    # -- partitions -----------------------------------------------------------------------
    def _period(self, day: int) -> tuple[float, float, str]:
        """The partition ``[lo, hi)`` and name covering UTC day number ``day``."""
        try:
            date = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(days=day)
            if self.partition == "daily":
                return day * DAY, (day + 1) * DAY, f"events_p{date:%Y%m%d}"
            first = date.replace(day=1)
            nxt = (first + timedelta(days=32)).replace(day=1)
            return first.timestamp(), nxt.timestamp(), f"events_p{first:%Y%m}"
        except (OverflowError, ValueError):  # beyond datetime's range: plain day numbers
            return day * DAY, (day + 1) * DAY, f"events_d{day}".replace("-", "m")

    def _load_ranges(self, conn: psycopg.Connection[Any]) -> None:
        rows = conn.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)",
            (self._sql_events,),
        ).fetchall()
        ranges = []
        for name, bound in rows:
            m = _BOUND.search(bound or "")
            if m is None:
                continue
            lo = -float("inf") if m.group(1) == "MINVALUE" else float(m.group(1))
            hi = float("inf") if m.group(2) == "MAXVALUE" else float(m.group(2))
            ranges.append((lo, hi, str(name)))
        self._ranges = sorted(ranges)

    def _covers(self, day: int) -> bool:
        lo, hi = day * DAY, (day + 1) * DAY
        return any(a <= lo and hi <= b for a, b, _ in self._ranges)

    def _ensure_days(self, conn: psycopg.Connection[Any], days: Iterable[int]) -> None:
        missing = set(days) - self._covered_days
        if missing and self._ranges_stale:
            self._load_ranges(conn)
            self._ranges_stale = False
        for day in sorted(missing):
            if not self._covers(day):
                self._create_partition(conn, day)
            self._covered_days.add(day)

    def _create_partition(self, conn: psycopg.Connection[Any], day: int) -> None:
        lo, hi, name = self._period(day)
        q = self._q
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(self.schema, "partitions"),))
            self._load_ranges(conn)
            if self._covers(day):
                return
            # CREATE + ATTACH takes SHARE UPDATE EXCLUSIVE on the parent, which does not block
            # other writers' COPY (CREATE ... PARTITION OF would take ACCESS EXCLUSIVE).
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {q}.{name} (LIKE {q}.events INCLUDING DEFAULTS)"
            )
            conn.execute(
                f"ALTER TABLE {q}.events ATTACH PARTITION {q}.{name} "
                f"FOR VALUES FROM ({lo!r}) TO ({hi!r})"
            )
            self._ranges = sorted([*self._ranges, (lo, hi, name)])
        log.info("redline: created partition %s.%s", self.schema, name)

    def ensure_partitions(self, now: float | None = None) -> list[str]:
        """Create the partitions for now and ``partitions_ahead`` periods on; returns all names."""
        at = self._clock() if now is None else now
        day = int(at // DAY)
        days = [day]
        for _ in range(self.partitions_ahead):
            _lo, hi, _name = self._period(days[-1])
            days.append(int(hi // DAY))
        with self._write_lock:
            try:
                conn = self._writer()
                self._ensure_days(conn, days)
            except psycopg.Error as exc:
                self._writer_failed(exc)
                raise StoreError(f"postgres ({self.schema}): creating partitions failed") from exc
            self._next_ahead = time.monotonic() + 3600.0
            return [name for _lo, _hi, name in self._ranges]

    def partitions(self) -> list[tuple[str, float, float]]:
        """``(name, lo, hi)`` of every partition of ``events``, oldest first (from the catalog)."""
        with self._reading() as conn:
            self._load_ranges(conn)
        return [(name, lo, hi) for lo, hi, name in self._ranges]


def pg_select(table: str, query: EventQuery, columns: str) -> tuple[str, list[Any]]:
    """The event query in PostgreSQL's spelling (``%s``, ``"user"``, ids break ties)."""
    return select_events(
        query,
        columns,
        table=table,
        placeholder="%s",
        user_column='"user"',
        id_column="id",
        live_only_without_filters=False,
    )
