"""Writing: COPY a chained batch into this process's stream, its rollup and its checkpoint.

Each writer process appends to its own stream, so the head lives in memory and writers never
wait for each other. A batch is one transaction: COPY (rows hashed while they stream), the
per-minute rollup upsert, and a checkpoint when one is due. A connection that breaks after the
COPY leaves the outcome unknown; :class:`_Inflight` remembers the batch so the retry skips it if
the commit had in fact landed (nothing is stored twice).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any, Final

import psycopg

from redline.events import AgentEvent, category_of
from redline.exceptions import StoreError
from redline.store._history import LatencyHistogram
from redline.store.chain import GENESIS, Checkpoint, append_anchor, canonical_payload, chain_hash
from redline.store.postgres._core import DAY, PgCore, _Inflight
from redline.store.postgres._fleet import ROLLUP_FIELDS
from redline.store.sql import checkpoint_from_row

__all__ = ["Writes"]

log = logging.getLogger("redline")

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


class Writes(PgCore):
    """``append``, ``checkpoint`` and the stream registration behind them."""

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
                days = {int(e.timestamp // DAY) for e in events}
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
                        self._upsert_rollup(cur, batch.rollup, batch.hist)
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
        days = [int(self._clock() // DAY)]
        for _ in range(self.partitions_ahead):
            days.append(int(self._period(days[-1])[1] // DAY))
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
        self,
        cur: psycopg.Cursor[Any],
        rollup: dict[tuple[int, str], list[float]],
        hist: dict[tuple[int, str], LatencyHistogram] | None = None,
    ) -> None:
        if not rollup:
            return
        keys = sorted(rollup)  # one lock order for every writer: no deadlocks
        columns: list[list[Any]] = [[k[0] for k in keys], [k[1] for k in keys]]
        for i, name in enumerate(ROLLUP_FIELDS):
            is_float = name in ("cost", "latency_sum")
            columns.append([rollup[k][i] if is_float else int(rollup[k][i]) for k in keys])
        types = ["bigint", "text"] + [
            "float8" if n in ("cost", "latency_sum") else "bigint" for n in ROLLUP_FIELDS
        ]
        # Latency histograms (history p50/p95), merged key by key in SQL.
        empty = LatencyHistogram()
        columns.append([(hist or {}).get(k, empty).to_text() for k in keys])
        types.append("jsonb")
        fields = ", ".join((*ROLLUP_FIELDS, "latency_hist"))
        unnest = ", ".join(f"%s::{t}[]" for t in types)
        updates = ", ".join(f"{n} = r.{n} + EXCLUDED.{n}" for n in ROLLUP_FIELDS)
        updates += (
            ", latency_hist = (SELECT coalesce(jsonb_object_agg(k, "
            "coalesce((r.latency_hist->>k)::bigint, 0) + "
            "coalesce((EXCLUDED.latency_hist->>k)::bigint, 0)), '{}'::jsonb) FROM "
            "(SELECT jsonb_object_keys(r.latency_hist) UNION "
            "SELECT jsonb_object_keys(EXCLUDED.latency_hist)) AS keys(k))"
        )
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
                        cp = checkpoint_from_row(row) if row else None
                        fresh = False
            except psycopg.Error as exc:
                self._writer_failed(exc)
                raise StoreError(f"postgres ({self.schema}): checkpoint failed: {exc}") from exc
        if cp is not None and fresh and self.anchor_path is not None:
            append_anchor(self.anchor_path, cp)
        return cp


class _Batch:
    """Chains a batch row by row, so COPY streams to the server while the rest is hashed.

    After iterating :meth:`rows`: ``seq``/``prev`` are the new head, ``rollup`` maps
    ``(minute, agent)`` to the counters of ``ROLLUP_FIELDS``.
    """

    __slots__ = ("hist", "prev", "rollup", "seq", "stream")

    def __init__(self, stream: str, seq: int, prev: str) -> None:
        self.stream = stream
        self.seq = seq
        self.prev = prev
        self.rollup: dict[tuple[int, str], list[float]] = {}
        self.hist: dict[tuple[int, str], LatencyHistogram] = {}

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
                lat = self.hist.get(key)
                if lat is None:
                    lat = self.hist[key] = LatencyHistogram()
                lat.add(e.latency_ms)
            if e.tokens_in is not None:
                r[9] += e.tokens_in
            if e.tokens_out is not None:
                r[10] += e.tokens_out
            if e.tokens_cached is not None:
                r[11] += e.tokens_cached


def _nul(value: str | None) -> str | None:
    return value.replace("\x00", "\ufffd") if value is not None else None
