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
import hashlib
import itertools
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Final

import msgspec

try:
    import psycopg
    from psycopg_pool import ConnectionPool
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the postgres store needs psycopg 3 and psycopg-pool: pip install 'redline[postgres]'"
    ) from exc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from redline.events import AgentEvent, category_of
from redline.exceptions import StoreError
from redline.store.base import EventQuery, KillRecord, StoredEvent
from redline.store.chain import (
    GENESIS,
    ChainRow,
    Checkpoint,
    Signer,
    VerifyReport,
    append_anchor,
    canonical_payload,
    chain_hash,
    read_anchor_file,
    verify_rows,
)
from redline.store.pg_migrations import (
    SchemaVersionError,
    check_version,
    lock_key,
    quote_schema,
    upgrade_connection,
)
from redline.store.sql import select_events
from redline.store.sqlite import PruneReport

__all__ = ["FleetRow", "FleetSnapshot", "PgPruneReport", "PostgresStore", "upgrade"]

log = logging.getLogger("redline")

_DAY: Final = 86_400
_PARTITIONS: Final = ("daily", "monthly")
_decode_event = msgspec.json.Decoder(AgentEvent).decode
_BOUND = re.compile(r"FROM \('?([^')]+)'?\) TO \('?([^')]+)'?\)")
_COPY_TYPES: Final = (
    "text",
    "int8",
    "float8",
    "text",
    "text",
    "text",
    "text",
    "text",
    "bytea",
    "text",
    "text",
    "text",
)
_KILL_COLUMNS: Final = "scope, target, reason, actor, created_at, expires_at, policy"
_ROLLUP_FIELDS: Final = (
    "events",
    "actions",
    "denials",
    "errors",
    "llm_calls",
    "tool_calls",
    "cost",
    "latency_sum",
    "latency_n",
    "tokens_in",
    "tokens_out",
    "tokens_cached",
)
_query_ids = itertools.count(1)


def upgrade(dsn: str, schema: str = "redline") -> list[int]:
    """Create or migrate the schema (``redline db upgrade``); returns the versions applied."""
    from redline.store.pg_migrations import upgrade as _upgrade

    try:
        return _upgrade(dsn, schema)
    except (psycopg.Error, SchemaVersionError) as exc:
        raise StoreError(f"postgres: upgrading schema {schema!r} failed: {exc}") from exc


class PgPruneReport(PruneReport, kw_only=True):
    """:class:`PruneReport` plus the partitions dropped whole and each stream's new anchor."""

    dropped_partitions: list[str] = msgspec.field(default_factory=list)
    anchors: dict[str, int] = msgspec.field(default_factory=dict)


class FleetRow(msgspec.Struct, kw_only=True):
    """One agent's (or the fleet's, ``agent="*"``) totals over a window, from the rollup."""

    agent: str
    events: int = 0
    actions: int = 0
    denials: int = 0
    errors: int = 0
    llm_calls: int = 0
    tool_calls: int = 0
    cost: float = 0.0
    latency_sum: float = 0.0
    latency_n: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_cached: int = 0
    denial_rate: float = 0.0
    error_rate: float = 0.0
    avg_latency_ms: float = 0.0
    cost_per_minute: float = 0.0
    events_per_minute: float = 0.0


class FleetSnapshot(msgspec.Struct, kw_only=True):
    """Fleet totals and per-agent rows over ``[since, now]`` (whole minutes, see the docs)."""

    window_seconds: float
    now: float
    since: float
    totals: FleetRow
    agents: list[FleetRow]

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON output."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


class _Inflight(msgspec.Struct):
    """A batch whose COMMIT may or may not have reached the server when the connection broke."""

    first: AgentEvent
    last: AgentEvent
    n: int
    seq: int
    hash: str


class PostgresStore:
    """Events, chains per writer process, kill state and fleet rollups in PostgreSQL."""

    backend = "postgres"
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

    # -- partitions -----------------------------------------------------------------------
    def _period(self, day: int) -> tuple[float, float, str]:
        """The partition ``[lo, hi)`` and name covering UTC day number ``day``."""
        try:
            date = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(days=day)
            if self.partition == "daily":
                return day * _DAY, (day + 1) * _DAY, f"events_p{date:%Y%m%d}"
            first = date.replace(day=1)
            nxt = (first + timedelta(days=32)).replace(day=1)
            return first.timestamp(), nxt.timestamp(), f"events_p{first:%Y%m}"
        except (OverflowError, ValueError):  # beyond datetime's range: plain day numbers
            return day * _DAY, (day + 1) * _DAY, f"events_d{day}".replace("-", "m")

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
        lo, hi = day * _DAY, (day + 1) * _DAY
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
        day = int(at // _DAY)
        days = [day]
        for _ in range(self.partitions_ahead):
            _lo, hi, _name = self._period(days[-1])
            days.append(int(hi // _DAY))
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

    # -- writing --------------------------------------------------------------------------
    def append(self, events: Sequence[AgentEvent]) -> None:
        """COPY a batch into this process's stream, with its rollup and maybe a checkpoint.

        Raises :class:`StoreError` when PostgreSQL is unreachable; the writer retries the same
        batch, and a batch whose commit did land before the connection broke is not stored twice.
        """
        if not events:
            return
        with self._write_lock:
            checkpoint = None
            try:
                conn = self._writer()
                if self._head is None:
                    self._load_head(conn)
                events = self._skip_landed(events)
                if not events:
                    return
                if time.monotonic() >= self._next_ahead:
                    self._next_ahead = time.monotonic() + 3600.0
                    self._ensure_days(conn, self._ahead_days())
                days = {int(e.timestamp // _DAY) for e in events}
                self._ensure_days(conn, days)
                assert self._head is not None
                seq, prev = self._head
                batch = _Batch(self.stream, seq, prev)
                with conn.transaction():
                    with conn.cursor() as cur:
                        with cur.copy(self._copy_sql) as copy:
                            copy.set_types(list(_COPY_TYPES))
                            write = copy.write_row
                            for row in batch.rows(events):
                                write(row)
                        last_seq, last_hash = batch.seq, batch.prev
                        # From here on a broken connection leaves the outcome unknown.
                        self._inflight = _Inflight(
                            events[0], events[-1], len(events), last_seq, last_hash
                        )
                        self._upsert_rollup(cur, batch.rollup)
                    checkpoint = self._maybe_checkpoint(conn, last_seq, last_hash)
                self._head = (last_seq, last_hash)
                self._inflight = None
                self._appended = True
            except psycopg.Error as exc:
                self._writer_failed(exc)
                raise StoreError(f"postgres ({self.schema}): append failed: {exc}") from exc
        if checkpoint is not None and self.anchor_path is not None:
            append_anchor(self.anchor_path, checkpoint)

    def _ahead_days(self) -> list[int]:
        days = [int(self._clock() // _DAY)]
        for _ in range(self.partitions_ahead):
            days.append(int(self._period(days[-1])[1] // _DAY))
        return days

    def _load_head(self, conn: psycopg.Connection[Any]) -> None:
        q = self._q
        if not self._registered:
            self._register(conn)
        row = conn.execute(
            f"SELECT seq, hash FROM {q}.events WHERE stream = %s ORDER BY seq DESC LIMIT 1",
            (self.stream,),
        ).fetchone()
        if row is None:
            row = conn.execute(
                f"SELECT anchor_seq, anchor_hash FROM {q}.streams WHERE stream = %s",
                (self.stream,),
            ).fetchone()
        self._head = (int(row[0]), str(row[1])) if row else (0, GENESIS)
        cp = conn.execute(
            f"SELECT max(seq) FROM {q}.checkpoints WHERE stream = %s", (self.stream,)
        ).fetchone()
        self._last_cp_seq = int(cp[0] or 0) if cp else 0

    def _register(self, conn: psycopg.Connection[Any]) -> None:
        """Record this process's stream (a clash of auto-made ids moves the id on by 1 µs)."""
        while True:
            row = conn.execute(
                f"INSERT INTO {self._q}.streams (stream, host, pid, started_at, public_key) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (stream) DO NOTHING RETURNING stream",
                (self.stream, self.host, self.pid, self.started_at, self.signer.public_key),
            ).fetchone()
            if row is not None or self._explicit_stream:
                break
            self.started_at += 1e-6
            self.stream = f"{self.host}:{self.pid}:{int(self.started_at * 1e6)}"
        self._registered = True

    def _skip_landed(self, events: Sequence[AgentEvent]) -> Sequence[AgentEvent]:
        """Drop the prefix that an ambiguous earlier commit did store (matched by identity)."""
        done = self._inflight
        self._inflight = None
        if done is None or self._head is None or self._head != (done.seq, done.hash):
            return events
        if len(events) >= done.n and events[0] is done.first and events[done.n - 1] is done.last:
            log.warning(
                "redline: a batch of %d events had been committed; not storing it twice", done.n
            )
            return events[done.n :]
        return events

    def _upsert_rollup(
        self, cur: psycopg.Cursor[Any], rollup: dict[tuple[int, str], list[float]]
    ) -> None:
        if not rollup:
            return
        keys = sorted(rollup)  # one lock order for every writer: no deadlocks
        columns: list[list[Any]] = [[k[0] for k in keys], [k[1] for k in keys]]
        for i, name in enumerate(_ROLLUP_FIELDS):
            is_float = name in ("cost", "latency_sum")
            columns.append([rollup[k][i] if is_float else int(rollup[k][i]) for k in keys])
        types = ["bigint", "text"] + [
            "float8" if n in ("cost", "latency_sum") else "bigint" for n in _ROLLUP_FIELDS
        ]
        fields = ", ".join(_ROLLUP_FIELDS)
        unnest = ", ".join(f"%s::{t}[]" for t in types)
        updates = ", ".join(f"{n} = r.{n} + EXCLUDED.{n}" for n in _ROLLUP_FIELDS)
        cur.execute(
            f"INSERT INTO {self._q}.rollup_minute AS r (minute, agent, {fields}) "
            f"SELECT * FROM unnest({unnest}) ON CONFLICT (minute, agent) DO UPDATE SET {updates}",
            columns,
        )

    def _maybe_checkpoint(
        self, conn: psycopg.Connection[Any], seq: int, head: str
    ) -> Checkpoint | None:
        now = self._clock()
        due = seq - self._last_cp_seq >= self.checkpoint_every or (
            now - self._last_cp_at >= self.checkpoint_interval and seq > self._last_cp_seq
        )
        return self._write_checkpoint(conn, seq, head, now) if due else None

    def _write_checkpoint(
        self, conn: psycopg.Connection[Any], seq: int, head: str, now: float
    ) -> Checkpoint:
        cp = self.signer.sign(self.stream, seq, head, now)
        conn.execute(
            f"INSERT INTO {self._q}.checkpoints (stream, seq, head_hash, created_at, signature, "
            "public_key) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (stream, seq) DO UPDATE SET "
            "head_hash = EXCLUDED.head_hash, created_at = EXCLUDED.created_at, "
            "signature = EXCLUDED.signature, public_key = EXCLUDED.public_key",
            (cp.stream, cp.seq, cp.head_hash, cp.created_at, cp.signature, cp.public_key),
        )
        self._last_cp_seq = seq
        self._last_cp_at = now
        return cp

    def checkpoint(self) -> Checkpoint | None:
        """Sign this stream's head now; ``None`` when this process has not appended anything."""
        with self._write_lock:
            if self._head is None and not self._appended:
                return None
            try:
                conn = self._writer()
                if self._head is None:
                    self._load_head(conn)
                assert self._head is not None
                seq, head = self._head
                if seq == 0:
                    return None
                cp: Checkpoint | None = None
                with conn.transaction():
                    if seq > self._last_cp_seq:
                        cp = self._write_checkpoint(conn, seq, head, self._clock())
                        fresh = True
                    else:
                        row = conn.execute(
                            "SELECT stream, seq, head_hash, created_at, signature, public_key "
                            f"FROM {self._q}.checkpoints WHERE stream = %s AND seq = %s",
                            (self.stream, seq),
                        ).fetchone()
                        cp = _checkpoint(row) if row else None
                        fresh = False
            except psycopg.Error as exc:
                self._writer_failed(exc)
                raise StoreError(f"postgres ({self.schema}): checkpoint failed: {exc}") from exc
        if cp is not None and fresh and self.anchor_path is not None:
            append_anchor(self.anchor_path, cp)
        return cp

    # -- reading --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _reading(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            self.last_error = f"{type(exc).__name__}: {exc}".strip()
            raise StoreError(f"postgres ({self.schema}): {exc}") from exc

    def query(self, query: EventQuery) -> Iterator[StoredEvent]:
        """Stream matching events (time then id order); tombstones are skipped."""
        sql, params = _select(self._sql_events, query, "id, payload, hash, prev_hash")
        small = query.limit is not None and query.limit <= 5_000
        return self._iter_rows(sql, params, server_side=not small)

    def _iter_rows(
        self, sql: str, params: list[Any], *, server_side: bool
    ) -> Iterator[StoredEvent]:
        with self._reading() as conn:
            if not server_side:
                rows = conn.execute(sql, params).fetchall()
                for id_, payload, h, prev in rows:
                    yield StoredEvent(seq=id_, event=_decode_event(payload), hash=h, prev_hash=prev)
                return
            with conn.transaction(), conn.cursor(name=f"redline_q{next(_query_ids)}") as cur:
                cur.itersize = 2_000
                cur.execute(sql, params)
                for id_, payload, h, prev in cur:
                    yield StoredEvent(seq=id_, event=_decode_event(payload), hash=h, prev_hash=prev)

    def count(self, query: EventQuery) -> int:
        """How many (non-erased) events match."""
        sql, params = _select(
            self._sql_events, msgspec.structs.replace(query, limit=None), "count(*)"
        )
        with self._reading() as conn:
            row = conn.execute(sql.split(" ORDER BY ")[0], params).fetchone()
        return int(row[0]) if row else 0

    def counts_by(self, column: str, query: EventQuery) -> dict[str, int]:
        """Event counts grouped by ``agent``, ``event_type``, ``category``, ``user``, ``session_id``."""
        if column not in ("agent", "event_type", "category", "user", "session_id"):
            raise ValueError(f"cannot group by {column!r}")
        col = '"user"' if column == "user" else column
        sql, params = _select(
            self._sql_events, msgspec.structs.replace(query, limit=None), f"{col}, count(*)"
        )
        sql = sql.split(" ORDER BY ")[0] + f" GROUP BY {col}"
        with self._reading() as conn:
            return {str(k): int(v) for k, v in conn.execute(sql, params).fetchall()}

    def head(self) -> tuple[int, str]:
        """``(id, hash)`` of the newest committed row in the fleet (``(0, GENESIS)`` when empty).

        ``id`` has a BRIN index (cheap to maintain at COPY speed), which cannot answer
        ``ORDER BY id DESC LIMIT 1``: the id sequence gives an upper bound, and the newest row is
        looked for below it in windows growing tenfold (ids of in-flight batches lie between).
        """
        q = self._q
        with self._reading() as conn:
            top = conn.execute(f"SELECT last_value, is_called FROM {q}.event_id_seq").fetchone()
            if top is None or not top[1]:
                return 0, GENESIS
            last = int(top[0])
            window = 10_000
            while True:
                row = conn.execute(
                    f"SELECT id, hash FROM {self._sql_events} WHERE id > %s AND id <= %s "
                    "ORDER BY id DESC LIMIT 1",
                    (last - window, last),
                ).fetchone()
                if row is not None:
                    return int(row[0]), str(row[1])
                if window > last:
                    return 0, GENESIS
                window *= 10

    def streams(self) -> list[dict[str, Any]]:
        """Every registered stream: id, host, pid, started_at, public key, anchor, closed_at."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT stream, host, pid, started_at, public_key, anchor_seq, anchor_hash, "
                f"closed_at FROM {self._q}.streams ORDER BY started_at, stream"
            ).fetchall()
        keys = ("stream", "host", "pid", "started_at", "public_key", "anchor_seq", "anchor_hash")
        return [{**dict(zip(keys, r[:7], strict=True)), "closed_at": r[7]} for r in rows]

    def checkpoints(self) -> list[Checkpoint]:
        """Every stored checkpoint of every stream, oldest first."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT stream, seq, head_hash, created_at, signature, public_key "
                f"FROM {self._q}.checkpoints ORDER BY created_at, stream, seq"
            ).fetchall()
        return [_checkpoint(r) for r in rows]

    def verify(
        self, *, public_key: str | None = None, anchors: Iterable[Checkpoint] | None = None
    ) -> VerifyReport:
        """Verify every stream's chain, checkpoints and anchors; one report per stream.

        ``anchors`` are checkpoints an auditor collected off-box (every host's anchor file); by
        default this store's ``anchor_path`` is read. A stream with rows but no registration, or
        known only from an anchor, fails. Top-level ``ok`` is every stream's ``ok``.
        """
        anchor_problem = None
        if anchors is None:
            anchors, anchor_problem = read_anchor_file(
                self.anchor_path, expected=self._has_checkpoints()
            )
        by_stream_anchor: dict[str, list[Checkpoint]] = {}
        for cp in anchors:
            by_stream_anchor.setdefault(cp.stream, []).append(cp)
        q = self._q
        reports: list[VerifyReport] = []
        with self._reading() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            registered = {
                str(r[0]): (int(r[1]), str(r[2]), r[3])
                for r in conn.execute(
                    f"SELECT stream, anchor_seq, anchor_hash, public_key FROM {q}.streams"
                ).fetchall()
            }
            present = {
                str(r[0])
                for r in conn.execute(
                    f"SELECT DISTINCT stream FROM {q}.checkpoints UNION "
                    f"SELECT stream FROM {q}.streams"
                ).fetchall()
            }
            with_rows = {
                str(r[0])
                for r in conn.execute(f"SELECT DISTINCT stream FROM {q}.events").fetchall()
            }
            cps: dict[str, list[Checkpoint]] = {}
            for r in conn.execute(
                "SELECT stream, seq, head_hash, created_at, signature, public_key "
                f"FROM {q}.checkpoints ORDER BY stream, seq"
            ).fetchall():
                cps.setdefault(str(r[0]), []).append(_checkpoint(r))
            names = sorted(present | with_rows | set(by_stream_anchor))
            for name in names:
                anchor_seq, anchor_hash, key = registered.get(name, (0, GENESIS, None))
                report = verify_rows(
                    self._chain_rows(conn, name),
                    anchor_seq=anchor_seq,
                    anchor_hash=anchor_hash,
                    checkpoints=cps.get(name, ()),
                    anchors=by_stream_anchor.get(name, ()),
                    public_key=public_key or key,
                    stream=name,
                    pinned=public_key is not None,
                )
                if name not in registered and report.ok:
                    report = VerifyReport(
                        ok=False,
                        checked=report.checked,
                        first_bad_seq=report.first_seq or 1,
                        damage="rewritten",
                        detail=f"stream {name} has rows but no writer registered it",
                        first_seq=report.first_seq,
                        last_seq=report.last_seq,
                        stream=name,
                    )
                reports.append(report)
        if anchor_problem is not None:
            reports.append(
                VerifyReport(
                    ok=False,
                    checked=0,
                    first_bad_seq=1,
                    damage=anchor_problem[0],
                    detail=anchor_problem[1],
                    stream=str(self.anchor_path),
                )
            )
        return _combine(reports, f"postgres:{self.schema}")

    def _has_checkpoints(self) -> bool:
        try:
            with self._pool.connection() as conn:
                return (
                    conn.execute(f"SELECT 1 FROM {self._q}.checkpoints LIMIT 1").fetchone()
                    is not None
                )
        except psycopg.Error as exc:
            raise StoreError(f"postgres ({self.schema}): cannot read checkpoints: {exc}") from exc

    def _chain_rows(self, conn: psycopg.Connection[Any], stream: str) -> Iterator[ChainRow]:
        with conn.cursor(name=f"redline_v{next(_query_ids)}") as cur:
            cur.itersize = 5_000
            cur.execute(
                "SELECT seq, prev_hash, hash, payload_sha256, payload, agent, event_type, ts, "
                f'session_id, "user", category FROM {self._sql_events} WHERE stream = %s '
                "ORDER BY seq",
                (stream,),
            )
            for r in cur:
                payload = r[4]
                columns = None
                if payload is not None:
                    payload = bytes(payload)
                    columns = _columns(payload, r[5], r[6], r[7], r[8], r[9])
                    columns["category"] = r[10]
                yield ChainRow(int(r[0]), r[1], r[2], r[3], payload, columns)

    # -- retention ------------------------------------------------------------------------
    def prune(self, cutoffs: dict[str, float], *, dry_run: bool = False) -> PgPruneReport:
        """Apply retention: drop whole partitions where possible, tombstone the rest.

        A partition is dropped when its upper bound is at or before the cutoff of every category
        with live rows in it (a category with no cutoff is kept forever) and, for every stream
        with rows in it, those rows are a prefix of what is left of the stream's chain; the
        stream's anchor then moves to the last dropped row. Other expired rows become tombstones
        (content and indexed values erased, seq and hashes kept), as in SQLite.
        """
        q = self._q
        erased: dict[str, int] = {}
        dropped_rows = 0
        dropped: list[str] = []
        anchors: dict[str, int] = {}
        with self._reading() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(self.schema, "prune"),))
            for category, cutoff in cutoffs.items():
                row = conn.execute(
                    f"SELECT count(*) FROM {q}.events WHERE category = %s AND ts < %s "
                    "AND payload IS NOT NULL",
                    (category, cutoff),
                ).fetchone()
                erased[category] = int(row[0]) if row else 0
            self._load_ranges(conn)
            for lo, hi, name in list(self._ranges):
                moved = self._droppable(conn, name, hi, cutoffs, dropped)
                if moved is None:
                    continue
                count = conn.execute(f"SELECT count(*) FROM {q}.{name}").fetchone()
                dropped_rows += int(count[0]) if count else 0
                dropped.append(name)
                for stream, (seq, h) in moved.items():
                    anchors[stream] = seq
                    if not dry_run:
                        conn.execute(
                            f"UPDATE {q}.streams SET anchor_seq = %s, anchor_hash = %s "
                            "WHERE stream = %s AND anchor_seq < %s",
                            (seq, h, stream, seq),
                        )
                if not dry_run:
                    conn.execute(f"ALTER TABLE {q}.events DETACH PARTITION {q}.{name}")
                    conn.execute(f"DROP TABLE {q}.{name}")
                    self._ranges.remove((lo, hi, name))
                    self._covered_days = {d for d in self._covered_days if self._covers(d)}
            if not dry_run:
                for category, cutoff in cutoffs.items():
                    conn.execute(
                        f"UPDATE {q}.events SET payload = NULL, agent = '', session_id = NULL, "
                        '"user" = NULL WHERE category = %s AND ts < %s AND payload IS NOT NULL',
                        (category, cutoff),
                    )
                if cutoffs:
                    conn.execute(
                        f"DELETE FROM {q}.rollup_minute WHERE minute + 60 <= %s",
                        (max(cutoffs.values()),),
                    )
        return PgPruneReport(
            dry_run=dry_run,
            erased=erased,
            dropped_rows=dropped_rows,
            anchor_seq=max(anchors.values(), default=0),
            dropped_partitions=dropped,
            anchors=anchors,
        )

    def _droppable(
        self,
        conn: psycopg.Connection[Any],
        name: str,
        hi: float,
        cutoffs: dict[str, float],
        going: list[str],
    ) -> dict[str, tuple[int, str]] | None:
        """Each stream's new anchor if partition ``name`` may be dropped whole, else ``None``.

        ``going`` are the older partitions this prune drops first (not yet, in a dry run).
        """
        q = self._q
        if not cutoffs or hi > max(cutoffs.values()):
            return None
        live = conn.execute(
            f"SELECT DISTINCT category FROM {q}.{name} WHERE payload IS NOT NULL"
        ).fetchall()
        if any(c not in cutoffs or hi > cutoffs[c] for (c,) in live):
            return None
        moved: dict[str, tuple[int, str]] = {}
        for stream, top in conn.execute(
            f"SELECT stream, max(seq) FROM {q}.{name} GROUP BY stream"
        ).fetchall():
            outside = conn.execute(
                f"SELECT 1 FROM {q}.events WHERE stream = %s AND seq < %s "
                "AND NOT tableoid = ANY(%s::regclass[]) LIMIT 1",
                (stream, top, [f"{q}.{n}" for n in (*going, name)]),
            ).fetchone()
            if outside is not None:
                return None  # a later partition holds older rows of this chain: not a prefix
            h = conn.execute(
                f"SELECT hash FROM {q}.{name} WHERE stream = %s AND seq = %s", (stream, top)
            ).fetchone()
            assert h is not None
            moved[str(stream)] = (int(top), str(h[0]))
        return moved

    # -- kill state -----------------------------------------------------------------------
    def load_kills(self) -> list[KillRecord]:
        """Every kill row."""
        with self._reading() as conn:
            rows = conn.execute(f"SELECT {_KILL_COLUMNS} FROM {self._q}.kills").fetchall()
        self._last_read_mono = time.monotonic()
        return [_kill(r) for r in rows]

    def put_kill(self, record: KillRecord) -> None:
        """Insert or replace a kill and ``NOTIFY`` its version, in one committed transaction."""
        self._kill_change(
            f"INSERT INTO {self._q}.kills ({_KILL_COLUMNS}, version) "
            f"VALUES (%s, %s, %s, %s, %s, %s, %s, nextval('{self._q}.kill_version_seq')) "
            "ON CONFLICT (scope, target) DO UPDATE SET reason = EXCLUDED.reason, "
            "actor = EXCLUDED.actor, created_at = EXCLUDED.created_at, "
            "expires_at = EXCLUDED.expires_at, policy = EXCLUDED.policy, "
            "version = EXCLUDED.version RETURNING version",
            record.as_row(),
        )

    def delete_kill(self, scope: str, target: str) -> None:
        """Remove a kill and ``NOTIFY`` a new version."""
        self._kill_change(
            f"WITH gone AS (DELETE FROM {self._q}.kills WHERE scope = %s AND target = %s) "
            f"SELECT nextval('{self._q}.kill_version_seq')",
            (scope, target),
        )

    def _kill_change(self, sql: str, params: tuple[Any, ...]) -> None:
        try:
            with self._pool.connection() as conn, conn.transaction():
                row = conn.execute(sql, params).fetchone()
                version = str(row[0]) if row else "0"
                conn.execute("SELECT pg_notify(%s, %s)", (self.channel, version))
        except psycopg.Error as exc:
            self.last_error = f"{type(exc).__name__}: {exc}".strip()
            raise StoreError(f"postgres ({self.schema}): writing kill state failed: {exc}") from exc

    def poll_kills(self) -> list[KillRecord] | None:
        """The kill table if it changed since the last poll (any host), else ``None``. Non-blocking.

        Drains NOTIFYs from the LISTEN connection (``timeout=0``); re-reads the table when one
        arrived, every ``reread_interval`` seconds, and after a reconnect. A lost connection is
        retried at most once a second; meanwhile :meth:`kill_state_age` grows.
        """
        if self._closed:
            return None
        now = time.monotonic()
        changed = False
        conn = self._lconn
        if conn is None:
            if now < self._listen_retry_at:
                return None
            try:
                conn = self._connect()
            except psycopg.Error as exc:
                self.last_error = f"{type(exc).__name__}: {exc}".strip()
                self._listen_retry_at = now + 1.0
                return None
            try:
                conn.execute(f"LISTEN {self.channel}")
            except psycopg.Error as exc:
                conn.close()
                self.last_error = f"{type(exc).__name__}: {exc}".strip()
                self._listen_retry_at = now + 1.0
                return None
            if self.listener_pid is not None:
                self.reconnects += 1
            self._lconn = conn
            self.listener_pid = conn.info.backend_pid
            changed = True  # notifications sent while we were away are lost: re-read
        else:
            try:
                for _note in conn.notifies(timeout=0):
                    changed = True
            except psycopg.Error as exc:
                self._drop_listener(exc)
                return None
        if not changed and (
            self._last_read_mono is not None and now - self._last_read_mono < self.reread_interval
        ):
            return None
        try:
            rows = conn.execute(f"SELECT {_KILL_COLUMNS} FROM {self._q}.kills").fetchall()
        except psycopg.Error as exc:
            self._drop_listener(exc)
            return None
        self._last_read_mono = time.monotonic()
        records = frozenset(_kill(r) for r in rows)
        first = self._last_records is None
        if records == self._last_records or (first and not records):
            self._last_records = records
            return None
        self._last_records = records
        return sorted(records, key=lambda r: r.key)

    def _drop_listener(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}".strip()
        conn, self._lconn = self._lconn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def kill_state_age(self) -> float:
        """Seconds since kill state was last read from PostgreSQL (``inf`` if never)."""
        last = self._last_read_mono
        return float("inf") if last is None else time.monotonic() - last

    # -- fleet ----------------------------------------------------------------------------
    def fleet_snapshot(
        self, window_seconds: float = 300.0, now: float | None = None
    ) -> FleetSnapshot:
        """Fleet totals and per-agent rows over the last ``window_seconds`` from the rollup.

        Resolution is one minute: every minute overlapping ``[now - window, now]`` counts.
        """
        at = self._clock() if now is None else now
        since = at - window_seconds
        first_minute = int(since // 60) * 60
        fields = ", ".join(f"sum({n})" for n in _ROLLUP_FIELDS)
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT agent, {fields} FROM {self._q}.rollup_minute "
                "WHERE minute >= %s AND minute <= %s GROUP BY agent ORDER BY agent",
                (first_minute, at),
            ).fetchall()
        minutes = max(window_seconds, 1.0) / 60.0
        agents = [_fleet_row(str(r[0]), r[1:], minutes) for r in rows]
        totals = [sum(float(r[i + 1] or 0) for r in rows) for i in range(len(_ROLLUP_FIELDS))]
        return FleetSnapshot(
            window_seconds=window_seconds,
            now=at,
            since=since,
            totals=_fleet_row("*", totals, minutes),
            agents=agents,
        )

    def try_lead(self, name: str) -> bool:
        """Whether this process leads ``name`` (a session advisory lock; kept until resigned).

        Call it periodically: it answers ``True`` while this process holds the lock, ``False``
        while another does, and tries again after a lost connection (which released the lock).
        """
        with self._lead_lock:
            conn = self._lead_conn
            try:
                if conn is None or conn.closed:
                    self._held.clear()
                    conn = self._lead_conn = self._connect()
                if name in self._held:
                    conn.execute("SELECT 1")
                    return True
                row = conn.execute(
                    "SELECT pg_try_advisory_lock(%s)", (lock_key(self.schema, f"lead:{name}"),)
                ).fetchone()
            except psycopg.Error as exc:
                self.last_error = f"{type(exc).__name__}: {exc}".strip()
                self._held.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                self._lead_conn = None
                return False
            if row and row[0]:
                self._held.add(name)
                return True
            return False

    def resign(self, name: str) -> None:
        """Give up leadership of ``name`` (if held)."""
        with self._lead_lock:
            if name not in self._held or self._lead_conn is None:
                return
            self._held.discard(name)
            with contextlib.suppress(psycopg.Error):
                self._lead_conn.execute(
                    "SELECT pg_advisory_unlock(%s)", (lock_key(self.schema, f"lead:{name}"),)
                )

    # -- misc -----------------------------------------------------------------------------
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


# -- helpers --------------------------------------------------------------------------------


class _Batch:
    """Chains a batch row by row, so COPY streams to the server while the rest is hashed.

    After iterating :meth:`rows`: ``seq``/``prev`` are the new head, ``rollup`` maps
    ``(minute, agent)`` to the counters of ``_ROLLUP_FIELDS``.
    """

    __slots__ = ("prev", "rollup", "seq", "stream")

    def __init__(self, stream: str, seq: int, prev: str) -> None:
        self.stream = stream
        self.seq = seq
        self.prev = prev
        self.rollup: dict[tuple[int, str], list[float]] = {}

    def rows(self, events: Sequence[AgentEvent]) -> Iterator[tuple[Any, ...]]:
        """The COPY rows of ``events``, in order."""
        sha = hashlib.sha256
        stream, seq, prev, rollup = self.stream, self.seq, self.prev, self.rollup
        for e in events:
            payload = canonical_payload(e)
            digest = sha(payload).hexdigest()
            seq += 1
            h = chain_hash(seq, prev, digest)
            agent, session, user, etype = e.agent, e.session_id, e.user, e.event_type
            if b"\\u0000" in payload:  # PostgreSQL text cannot hold NUL; the payload keeps it
                agent, etype = _nul(agent) or "", _nul(etype) or ""
                session, user = _nul(session), _nul(user)
            yield (
                stream,
                seq,
                e.timestamp,
                agent,
                etype,
                category_of(e.event_type),
                session,
                user,
                payload,
                digest,
                prev,
                h,
            )
            prev = h
            self.seq, self.prev = seq, prev
            key = (int(e.timestamp // 60) * 60, agent)
            r = rollup.get(key)
            if r is None:
                r = rollup[key] = [0.0] * 12
            r[0] += 1
            if etype == "action":
                r[1] += 1
            elif etype == "denial":
                r[2] += 1
            elif etype == "error":
                r[3] += 1
            elif etype == "llm_call":
                r[4] += 1
            elif etype == "tool_call":
                r[5] += 1
            if e.cost_usd is not None:
                r[6] += e.cost_usd
            if e.latency_ms is not None:
                r[7] += e.latency_ms
                r[8] += 1
            if e.tokens_in is not None:
                r[9] += e.tokens_in
            if e.tokens_out is not None:
                r[10] += e.tokens_out
            if e.tokens_cached is not None:
                r[11] += e.tokens_cached


def _nul(value: str | None) -> str | None:
    return value.replace("\x00", "\ufffd") if value is not None else None


def _columns(
    payload: bytes,
    agent: str,
    event_type: str,
    ts: float,
    session_id: str | None,
    user: str | None,
) -> dict[str, Any]:
    """The indexed columns as verification compares them with the payload.

    A NUL in a text field is stored as U+FFFD in its column (PostgreSQL text cannot hold it); such
    a column is compared as the payload's value when that is the only difference.
    """
    columns: dict[str, Any] = {
        "agent": agent,
        "event_type": event_type,
        "timestamp": ts,
        "session_id": session_id,
        "user": user,
    }
    if any(isinstance(v, str) and "\ufffd" in v for v in columns.values()):
        try:
            decoded = json.loads(payload)
        except ValueError:
            return columns
        for key, value in columns.items():
            original = decoded.get(key)
            if isinstance(value, str) and isinstance(original, str) and _nul(original) == value:
                columns[key] = original
    return columns


def _fleet_row(agent: str, sums: Sequence[Any], minutes: float) -> FleetRow:
    v = dict(zip(_ROLLUP_FIELDS, (float(x or 0) for x in sums), strict=True))
    ints = {k: int(x) for k, x in v.items() if k not in ("cost", "latency_sum")}
    events, actions, denials = v["events"], v["actions"], v["denials"]
    return FleetRow(
        agent=agent,
        cost=v["cost"],
        latency_sum=v["latency_sum"],
        **ints,
        denial_rate=denials / (actions + denials) if actions + denials else 0.0,
        error_rate=v["errors"] / events if events else 0.0,
        avg_latency_ms=v["latency_sum"] / v["latency_n"] if v["latency_n"] else 0.0,
        cost_per_minute=v["cost"] / minutes,
        events_per_minute=events / minutes,
    )


def _combine(reports: list[VerifyReport], name: str) -> VerifyReport:
    """One report over many streams: ``ok`` only if every stream is."""
    bad = next((r for r in reports if not r.ok), None)
    one = reports[0] if len(reports) == 1 else None
    checked = sum(r.checked for r in reports)
    if bad is not None:
        detail = f"stream {bad.stream}: {bad.detail}"
    else:
        detail = f"{len(reports)} stream(s), {checked} rows verified"
    return VerifyReport(
        ok=bad is None,
        checked=checked,
        first_bad_seq=bad.first_bad_seq if bad else None,
        damage=bad.damage if bad else None,
        detail=detail,
        checkpoints_checked=sum(r.checkpoints_checked for r in reports),
        anchors_checked=sum(r.anchors_checked for r in reports),
        first_seq=one.first_seq if one else None,
        last_seq=one.last_seq if one else None,
        head_hash=one.head_hash if one else None,
        stream=name,
        streams=reports,
    )


def _checkpoint(row: Sequence[Any]) -> Checkpoint:
    return Checkpoint(
        stream=row[0],
        seq=int(row[1]),
        head_hash=row[2],
        created_at=float(row[3]),
        signature=row[4],
        public_key=row[5],
    )


def _kill(r: Sequence[Any]) -> KillRecord:
    return KillRecord.from_row(r)


def _select(table: str, query: EventQuery, columns: str) -> tuple[str, list[Any]]:
    return select_events(
        query,
        columns,
        table=table,
        placeholder="%s",
        user_column='"user"',
        id_column="id",
        live_only_without_filters=False,
    )
