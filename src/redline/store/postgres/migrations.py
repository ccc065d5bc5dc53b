"""The PostgreSQL schema, as numbered migrations Redline applies itself.

Every migration runs once, in order, inside one transaction, and is recorded in
``<schema>.schema_migrations`` (``version``, ``name``, ``applied_at``). :func:`upgrade` is
idempotent and safe to call from many processes at once: a transaction-level advisory lock keyed
by the schema name serialises the upgraders, and the second one finds nothing left to do. Writers
call it when they open the store (``PostgresStore(auto_upgrade=True)``, the default); operators
who deny DDL to writers run ``upgrade(dsn, schema)`` (the CLI's ``redline db upgrade``) instead.

Tables (see docs/fleet.md for why they look like this). Indexed text columns use ``COLLATE "C"``:
equality is the same under any deterministic collation, and byte comparison keeps index
maintenance cheap at COPY speed (a ``C.UTF-8`` or ``en_US.UTF-8`` database would compare with
``strcoll``).

* ``streams``: one row per writer process: its chain's id (host, pid, start time), the public key
  that signs its checkpoints, and the anchor its chain starts from after retention.
* ``events``: partitioned by ``RANGE (ts)`` (epoch seconds). ``id`` is the fleet-wide row id
  (``StoredEvent.seq``, what cursors page by); ``(stream, seq)`` is the row's place in its
  writer's hash chain. Partitions are created by the store, ahead of time and on demand.
* ``checkpoints``: signed heads, per stream.
* ``kills``: the kill-switch table; ``version`` comes from ``kill_version_seq`` and is the payload
  of the ``NOTIFY`` sent in the same transaction as every change.
* ``rollup_minute``: per agent and minute, the counters the fleet view reads
  (``PostgresStore.fleet_snapshot``); writers upsert it in the transaction of each batch.
* ``meta``: key/value facts about the schema.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any, Final

import psycopg

from redline.control.budgets.sql import POSTGRES_MIGRATION
from redline.store.chain import GENESIS

__all__ = [
    "LATEST",
    "MIGRATIONS",
    "SchemaVersionError",
    "applied_versions",
    "check_version",
    "lock_key",
    "quote_schema",
    "upgrade",
    "upgrade_connection",
]

_SCHEMA_NAME: Final = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

#: ``(version, name, statements)``; ``{s}`` is the quoted schema. Never edit a released one:
#: add the next number.
MIGRATIONS: Final[tuple[tuple[int, str, tuple[str, ...]], ...]] = (
    (
        1,
        "events, streams, checkpoints, kills",
        (
            "CREATE TABLE IF NOT EXISTS {s}.meta (key text PRIMARY KEY, value text NOT NULL)",
            """CREATE TABLE IF NOT EXISTS {s}.streams (
                stream      text COLLATE "C" PRIMARY KEY,
                host        text NOT NULL,
                pid         integer NOT NULL,
                started_at  double precision NOT NULL,
                public_key  text,
                anchor_seq  bigint NOT NULL DEFAULT 0,
                anchor_hash text NOT NULL DEFAULT '"""
            + GENESIS
            + """',
                closed_at   double precision
            )""",
            "CREATE SEQUENCE IF NOT EXISTS {s}.event_id_seq",
            """CREATE TABLE IF NOT EXISTS {s}.events (
                id             bigint NOT NULL DEFAULT nextval('{s}.event_id_seq'),
                stream         text COLLATE "C" NOT NULL,
                seq            bigint NOT NULL,
                ts             double precision NOT NULL,
                agent          text COLLATE "C" NOT NULL,
                event_type     text COLLATE "C" NOT NULL,
                category       text COLLATE "C" NOT NULL,
                session_id     text COLLATE "C",
                "user"         text COLLATE "C",
                payload        bytea,
                payload_sha256 text NOT NULL,
                prev_hash      text NOT NULL,
                hash           text NOT NULL
            ) PARTITION BY RANGE (ts)""",
            "CREATE INDEX IF NOT EXISTS ix_events_stream_seq ON {s}.events (stream, seq)",
            "CREATE INDEX IF NOT EXISTS ix_events_agent_ts ON {s}.events (agent, ts)",
            "CREATE INDEX IF NOT EXISTS ix_events_session_ts ON {s}.events (session_id, ts) "
            "WHERE session_id IS NOT NULL",
            "CREATE INDEX IF NOT EXISTS ix_events_type_ts ON {s}.events (event_type, ts)",
            "CREATE INDEX IF NOT EXISTS ix_events_ts ON {s}.events (ts)",
            'CREATE INDEX IF NOT EXISTS ix_events_user_ts ON {s}.events ("user", ts) '
            'WHERE "user" IS NOT NULL',
            # Cursors (``after_seq``/``before_seq``) page by id; ids grow with time, so a BRIN
            # index answers them for almost nothing at insert time.
            "CREATE INDEX IF NOT EXISTS ix_events_id ON {s}.events USING brin (id)",
            """CREATE TABLE IF NOT EXISTS {s}.checkpoints (
                stream     text COLLATE "C" NOT NULL,
                seq        bigint NOT NULL,
                head_hash  text NOT NULL,
                created_at double precision NOT NULL,
                signature  text NOT NULL,
                public_key text NOT NULL,
                PRIMARY KEY (stream, seq)
            )""",
            "CREATE SEQUENCE IF NOT EXISTS {s}.kill_version_seq",
            """CREATE TABLE IF NOT EXISTS {s}.kills (
                scope      text NOT NULL,
                target     text NOT NULL,
                reason     text NOT NULL DEFAULT '',
                actor      text NOT NULL DEFAULT '',
                created_at double precision NOT NULL,
                expires_at double precision,
                policy     text,
                version    bigint NOT NULL,
                PRIMARY KEY (scope, target)
            )""",
        ),
    ),
    (
        2,
        "per-minute fleet rollup",
        (
            """CREATE TABLE IF NOT EXISTS {s}.rollup_minute (
                minute        bigint NOT NULL,
                agent         text COLLATE "C" NOT NULL,
                events        bigint NOT NULL DEFAULT 0,
                actions       bigint NOT NULL DEFAULT 0,
                denials       bigint NOT NULL DEFAULT 0,
                errors        bigint NOT NULL DEFAULT 0,
                llm_calls     bigint NOT NULL DEFAULT 0,
                tool_calls    bigint NOT NULL DEFAULT 0,
                cost          double precision NOT NULL DEFAULT 0,
                latency_sum   double precision NOT NULL DEFAULT 0,
                latency_n     bigint NOT NULL DEFAULT 0,
                tokens_in     bigint NOT NULL DEFAULT 0,
                tokens_out    bigint NOT NULL DEFAULT 0,
                tokens_cached bigint NOT NULL DEFAULT 0,
                PRIMARY KEY (minute, agent)
            )""",
        ),
    ),
    (
        3,
        "latency histograms in the rollup (history p50/p95)",
        (
            "ALTER TABLE {s}.rollup_minute "
            "ADD COLUMN IF NOT EXISTS latency_hist jsonb NOT NULL DEFAULT '{}'::jsonb",
        ),
    ),
    (4, "budget ledger (spend per period bucket, reservations in flight)", POSTGRES_MIGRATION),
)
#: The newest schema version this build knows.
LATEST: Final = MIGRATIONS[-1][0]


class SchemaVersionError(Exception):
    """The schema is missing migrations (``auto_upgrade`` off) or is newer than this build."""


def quote_schema(schema: str) -> str:
    """``schema`` as a quoted identifier; only ``[a-z_][a-z0-9_]*`` (≤ 63) is accepted."""
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(
            f"storage.schema: {schema!r} is not a plain lower-case identifier ([a-z_][a-z0-9_]*)"
        )
    return f'"{schema}"'


def lock_key(schema: str, purpose: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``purpose`` within ``schema``."""
    digest = hashlib.sha256(f"redline:{schema}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def applied_versions(conn: psycopg.Connection[Any], schema: str) -> list[int]:
    """The versions recorded in ``schema`` (empty when the schema or table does not exist)."""
    q = quote_schema(schema)
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{q}.schema_migrations",)).fetchone()
    if not row or not row[0]:
        return []
    rows = conn.execute(f"SELECT version FROM {q}.schema_migrations ORDER BY version").fetchall()
    return [int(r[0]) for r in rows]


def upgrade_connection(
    conn: psycopg.Connection[Any],
    schema: str,
    migrations: Sequence[tuple[int, str, tuple[str, ...]]] = MIGRATIONS,
) -> list[int]:
    """Apply the missing migrations on ``conn`` (autocommit or not); returns those applied."""
    q = quote_schema(schema)
    done: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(schema, "migrate"),))
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {q}")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {q}.schema_migrations ("
            "version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        have = set(applied_versions(conn, schema))
        if have and max(have) > LATEST:
            raise SchemaVersionError(
                f"schema {schema!r} is at version {max(have)}, newer than this Redline "
                f"({LATEST}): upgrade Redline"
            )
        for version, name, statements in migrations:
            if version in have:
                continue
            for statement in statements:
                conn.execute(statement.replace("{s}", q))
            conn.execute(
                f"INSERT INTO {q}.schema_migrations (version, name) VALUES (%s, %s)",
                (version, name),
            )
            done.append(version)
    return done


def check_version(conn: psycopg.Connection[Any], schema: str) -> None:
    """Raise :class:`SchemaVersionError` unless ``schema`` is exactly at :data:`LATEST`."""
    have = applied_versions(conn, schema)
    current = max(have, default=0)
    if current < LATEST:
        raise SchemaVersionError(
            f"schema {schema!r} is at version {current}, this Redline needs {LATEST}: run "
            "`redline db upgrade` (or open the store with auto_upgrade=True)"
        )
    if current > LATEST:
        raise SchemaVersionError(
            f"schema {schema!r} is at version {current}, newer than this Redline ({LATEST})"
        )


def upgrade(dsn: str, schema: str = "redline") -> list[int]:
    """Create or migrate Redline's tables in ``schema``; returns the versions applied now.

    Idempotent; concurrent callers wait for each other. This is what ``redline db upgrade``
    runs.
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        return upgrade_connection(conn, schema)
