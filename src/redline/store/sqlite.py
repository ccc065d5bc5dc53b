"""The embedded default: one SQLite file in WAL mode, hash-chained, with signed checkpoints.

Layout (schema version 1):

* ``events``: one row per event: ``seq`` (the chain position), indexed columns (``ts``, ``agent``,
  ``event_type``, ``category``, ``session_id``, ``user``), the canonical ``payload`` (``NULL`` once
  retention has erased it: a tombstone), ``payload_sha256``, ``prev_hash`` and ``hash``.
* ``checkpoints``: signed heads (see :mod:`redline.store.chain`).
* ``prune_records``: ``id`` and ``body``, one signed account per prune that erased or dropped
  rows (see :mod:`redline.store.prune_records`); ``verify`` accepts a tombstone, a chain that
  starts after seq 1, or a checkpoint below its start only where one of these accounts for it.
* ``kills``: the kill-switch table every monitor on this file obeys.
* ``meta``: schema version, the chain anchor after a prune, the signer's public key, and
  ``kill_version`` (bumped with every kill change, so pollers notice cheaply).

Several processes may write the same file: each batch is appended inside ``BEGIN IMMEDIATE`` after
reading the current head, so the chain stays one chain. Kill changes from any process are seen by
polling ``PRAGMA data_version`` (changes when another connection commits) from the monitor's
background thread, then ``kill_version``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec

from redline.events import AgentEvent, category_of
from redline.exceptions import StoreError
from redline.store import _history_sqlite, _prune_sqlite
from redline.store._history import HistoryPoint, from_events
from redline.store.base import KILL_COLUMNS, EventQuery, KillRecord, PruneReport, StoredEvent
from redline.store.chain import (
    GENESIS,
    ChainRow,
    Checkpoint,
    Signer,
    VerifyReport,
    append_anchor,
    canonical_payload,
    chain_hash,
    load_anchors,
    read_anchor_file,
    verify_rows,
)
from redline.store.prune_records import PruneLedger, default_actor
from redline.store.sql import GROUPABLE_COLUMNS, checkpoint_from_row, select_events

if TYPE_CHECKING:
    from redline.config import MonitorConfig

__all__ = ["PruneReport", "SQLiteStore"]

log = logging.getLogger("redline")

SCHEMA_VERSION: Final = 1
_SCHEMA: Final = (
    """
CREATE TABLE IF NOT EXISTS events (
    seq            INTEGER PRIMARY KEY,
    ts             REAL    NOT NULL,
    agent          TEXT    NOT NULL,
    event_type     TEXT    NOT NULL,
    category       TEXT    NOT NULL,
    session_id     TEXT,
    user           TEXT,
    payload        BLOB,
    payload_sha256 TEXT    NOT NULL,
    prev_hash      TEXT    NOT NULL,
    hash           TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_events_agent_ts   ON events(agent, ts);
CREATE INDEX IF NOT EXISTS ix_events_session_ts ON events(session_id, ts) WHERE session_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS ix_events_type_ts    ON events(event_type, ts);
CREATE INDEX IF NOT EXISTS ix_events_ts         ON events(ts);
CREATE INDEX IF NOT EXISTS ix_events_user_ts    ON events(user, ts) WHERE user IS NOT NULL;
CREATE TABLE IF NOT EXISTS checkpoints (
    seq        INTEGER PRIMARY KEY,
    stream     TEXT NOT NULL,
    head_hash  TEXT NOT NULL,
    created_at REAL NOT NULL,
    signature  TEXT NOT NULL,
    public_key TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS kills (
    scope      TEXT NOT NULL,
    target     TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    actor      TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    expires_at REAL,
    policy     TEXT,
    PRIMARY KEY (scope, target)
);
CREATE TABLE IF NOT EXISTS prune_records (id INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES ('kill_version', '0');
INSERT OR IGNORE INTO meta(key, value) VALUES ('anchor_seq', '0');
INSERT OR IGNORE INTO meta(key, value) VALUES ('anchor_hash', '"""
    + GENESIS
    + """');
"""
)
_INSERT: Final = (
    "INSERT INTO events (seq, ts, agent, event_type, category, session_id, user, payload, "
    "payload_sha256, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)
_decode_event = msgspec.json.Decoder(AgentEvent).decode
_sha256 = hashlib.sha256


class SQLiteStore:
    """Events, checkpoints and kill state in one SQLite file."""

    backend = "sqlite"
    persistent = True

    @classmethod
    def from_config(cls, config: MonitorConfig) -> SQLiteStore:
        """The file at ``storage.path``, with the config's checkpoint, key and anchor settings."""
        st = config.storage
        assert st.path is not None
        return cls(
            st.path,
            signing_key_path=st.signing_key_path or None,
            anchor_path=st.anchor_path or None,
            checkpoint_every=st.checkpoint_every,
            checkpoint_interval=st.checkpoint_interval_seconds,
            synchronous=st.synchronous,
            retention_days=msgspec.structs.asdict(config.retention),
        )

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        signing_key_path: str | os.PathLike[str] | None = None,
        anchor_path: str | os.PathLike[str] | None = None,
        checkpoint_every: int = 10_000,
        checkpoint_interval: float = 60.0,
        synchronous: str = "NORMAL",
        clock: Any = None,
        readonly: bool = False,
        retention_days: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        # The retention rule (days per category) each prune record names beside its cutoffs.
        self._retention_days: dict[str, Any] = dict(retention_days or {})
        self.readonly = readonly
        self._clock = clock.time if clock is not None else time.time
        self.stream = f"{os.uname().nodename}:{os.getpid()}:{int(time.time())}"
        self._synchronous = synchronous.upper()
        if not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            raise StoreError(f"{self.path}: no such store")
        self._key_path = Path(signing_key_path) if signing_key_path else Path(f"{self.path}.key")
        self.anchor_path = Path(anchor_path) if anchor_path else None
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval = checkpoint_interval
        self._signer: Signer | None = None
        self._local = threading.local()
        self._control_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._write_conn: sqlite3.Connection | None = None
        self._poll_conn: sqlite3.Connection | None = None
        self._last_data_version: int | None = None
        self._last_kill_version: str | None = None
        self._last_read_mono: float | None = None
        self._last_cp_seq = 0
        self._last_cp_at = self._clock()
        self._appended = False
        self._verified_to: tuple[int, str] | None = None
        self.integrity_alarms = 0
        self._closed = False
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        try:
            conn = self._connect()
            if not readonly:
                conn.executescript(_SCHEMA)
                _history_sqlite.ensure(conn)
                conn.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                conn.commit()
            row = conn.execute("SELECT max(seq) FROM checkpoints").fetchone()
            self._last_cp_seq = int(row[0] or 0)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the store: {exc}") from exc

    # -- connections ----------------------------------------------------------------------
    def after_fork(self) -> None:
        """In a forked child: new connections, new locks, a stream of its own.

        SQLite connections must not cross a fork. The parent's are abandoned, not closed:
        closing them here could disturb the parent's transactions on the shared file.
        """
        self._local = threading.local()
        self._control_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._conns_lock = threading.Lock()
        self._conns = []
        self._write_conn = None
        self._poll_conn = None
        self._last_data_version = None
        self._last_kill_version = None
        self._verified_to = None
        self.stream = f"{os.uname().nodename}:{os.getpid()}:{int(time.time())}"

    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            conn = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, timeout=30.0, check_same_thread=False
            )
        else:
            conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA busy_timeout=30000")
        with self._conns_lock:
            self._conns.append(conn)
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _writer(self) -> sqlite3.Connection:
        if self._write_conn is None:
            self._write_conn = self._connect()
            self._write_conn.isolation_level = None
            _history_sqlite.prepare(self._write_conn)
        return self._write_conn

    @property
    def signer(self) -> Signer:
        """The checkpoint key (created on first use, next to the database by default)."""
        if self._signer is None:
            self._signer = Signer.from_file(self._key_path)
        return self._signer

    # -- writing --------------------------------------------------------------------------
    def append(self, events: Sequence[AgentEvent]) -> None:
        """Chain and commit a batch; the head is read under the write lock (multi-process safe)."""
        with self._write_lock:
            self._append(events)

    def _append(self, events: Sequence[AgentEvent]) -> None:
        if not events:
            return
        conn = self._writer()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                head = conn.execute(
                    "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                if head is None:
                    meta = dict(
                        conn.execute(
                            "SELECT key, value FROM meta WHERE key IN ('anchor_seq', 'anchor_hash')"
                        ).fetchall()
                    )
                    seq, prev = int(meta.get("anchor_seq", 0)), meta.get("anchor_hash", GENESIS)
                else:
                    seq, prev = int(head[0]), str(head[1])
                start = (seq, prev)
                rows = []
                for e in events:
                    payload = canonical_payload(e)
                    digest = _sha256(payload).hexdigest()
                    seq += 1
                    h = chain_hash(seq, prev, digest)
                    rows.append(
                        (
                            seq,
                            e.timestamp,
                            e.agent,
                            e.event_type,
                            category_of(e.event_type),
                            e.session_id,
                            e.user,
                            payload,
                            digest,
                            prev,
                            h,
                        )
                    )
                    prev = h
                conn.executemany(_INSERT, rows)
                _history_sqlite.add(conn, events)  # per-minute rollups, same transaction
                checkpoint = self._maybe_checkpoint(conn, seq, prev, start)
                conn.execute("COMMIT")
                self._appended = True
                if self._verified_to == start:
                    self._verified_to = (seq, prev)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: append failed: {exc}") from exc
        if checkpoint is not None and self.anchor_path is not None:
            append_anchor(self.anchor_path, checkpoint)

    def _maybe_checkpoint(
        self, conn: sqlite3.Connection, seq: int, head: str, start: tuple[int, str]
    ) -> Checkpoint | None:
        now = self._clock()
        due = seq - self._last_cp_seq >= self.checkpoint_every or (
            now - self._last_cp_at >= self.checkpoint_interval and seq > self._last_cp_seq
        )
        if not due or not self._consistent_to(conn, *start):
            return None
        self._verified_to = start
        return self._write_checkpoint(conn, seq, head, now)

    def _consistent_to(self, conn: sqlite3.Connection, head_seq: int, head_hash: str) -> bool:
        """Whether the chain links, hash by hash, from what this store trusts up to ``head``.

        A checkpoint vouches for every row before it, so the writer signs only a head it wrote
        itself or whose rows since the last trusted point (its own last head, else the newest
        checkpoint, else the anchor) recompute and link. Otherwise it refuses, counts an
        integrity alarm and logs: signing would launder a rewritten chain.
        """
        if self._verified_to == (head_seq, head_hash):
            return True
        if self._verified_to is not None and self._verified_to[0] <= head_seq:
            start_seq, start_hash = self._verified_to
        else:
            cp = conn.execute(
                "SELECT seq, head_hash FROM checkpoints WHERE seq <= ? ORDER BY seq DESC LIMIT 1",
                (head_seq,),
            ).fetchone()
            if cp is not None:
                start_seq, start_hash = int(cp[0]), str(cp[1])
            else:
                meta = self._meta(conn)
                start_seq = int(meta.get("anchor_seq", 0))
                start_hash = meta.get("anchor_hash", GENESIS)
            if start_seq > 0:
                row = conn.execute("SELECT hash FROM events WHERE seq = ?", (start_seq,)).fetchone()
                if row is not None and str(row[0]) != start_hash:
                    return self._alarm(start_seq)
        prev, expect = start_hash, start_seq + 1
        rows = conn.execute(
            "SELECT seq, prev_hash, hash, payload_sha256 FROM events "
            "WHERE seq > ? AND seq <= ? ORDER BY seq",
            (start_seq, head_seq),
        )
        for seq, prev_hash, h, digest in rows:
            if seq != expect or prev_hash != prev or chain_hash(seq, prev_hash, digest) != h:
                return self._alarm(seq)
            prev, expect = h, expect + 1
        if expect != head_seq + 1 or prev != head_hash:
            return self._alarm(expect)
        self._verified_to = (head_seq, head_hash)
        return True

    def _alarm(self, seq: int) -> bool:
        self.integrity_alarms += 1
        log.error(
            "redline: %s: the chain does not verify at row %d; refusing to sign a checkpoint "
            "over it (run `redline verify`)",
            self.path,
            seq,
        )
        return False

    def _write_checkpoint(
        self, conn: sqlite3.Connection, seq: int, head: str, now: float
    ) -> Checkpoint:
        cp = self.signer.sign(self.stream, seq, head, now)
        conn.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('public_key', ?)", (cp.public_key,)
        )
        conn.execute(
            "INSERT OR REPLACE INTO checkpoints (seq, stream, head_hash, created_at, signature, "
            "public_key) VALUES (?,?,?,?,?,?)",
            (cp.seq, cp.stream, cp.head_hash, cp.created_at, cp.signature, cp.public_key),
        )
        self._last_cp_seq = seq
        self._last_cp_at = now
        return cp

    def checkpoint(self) -> Checkpoint | None:
        """Sign the current head now (e.g. at close, or before an export); None when empty.

        Safe from any thread: the writer connection is used under the store's write lock. A store
        opened ``readonly`` signs nothing (it returns ``None``): a reader never vouches for rows.
        """
        if self.readonly:
            return None
        with self._write_lock:
            return self._checkpoint()

    def _checkpoint(self) -> Checkpoint | None:
        conn = self._writer()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                head = conn.execute(
                    "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                cp = None
                if (
                    head is not None
                    and int(head[0]) > self._last_cp_seq
                    and self._consistent_to(conn, int(head[0]), str(head[1]))
                ):
                    cp = self._write_checkpoint(conn, int(head[0]), str(head[1]), self._clock())
                elif head is not None:
                    row = conn.execute(
                        "SELECT stream, seq, head_hash, created_at, signature, public_key "
                        "FROM checkpoints WHERE seq = ?",
                        (int(head[0]),),
                    ).fetchone()
                    cp = checkpoint_from_row(row) if row else None
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: checkpoint failed: {exc}") from exc
        if (
            cp is not None
            and self.anchor_path is not None
            and head is not None
            and (int(head[0]) == self._last_cp_seq)
        ):
            anchored = {c.seq for c in load_anchors(self.anchor_path)}
            if cp.seq not in anchored:
                append_anchor(self.anchor_path, cp)
        return cp

    # -- budgets --------------------------------------------------------------------------
    def budget_ledger(self) -> Any:
        """Budget spend and reservations in this file (its own connections, ``BEGIN IMMEDIATE``
        per reservation), shared by every process that opens it."""
        ledger = getattr(self, "_ledger", None)
        if ledger is None:
            from redline.control.budgets.sql import SQLiteLedger

            ledger = self._ledger = SQLiteLedger(self.path, synchronous=self._synchronous)
        return ledger

    # -- reading --------------------------------------------------------------------------
    def metric_history(
        self, agent: str | None, since: float, until: float, step: int
    ) -> list[HistoryPoint]:
        """Chart points from the per-minute rollups (see :mod:`redline.store._history`).

        A file from before rollups is backfilled a bounded step per call (under the write
        lock); until it is complete, older minutes read as what has been rolled up so far.
        """
        try:
            if not self.readonly:
                with self._write_lock:
                    _history_sqlite.backfill(self._writer())
            return _history_sqlite.history(self._reader(), agent, since, until, step)
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise StoreError(f"{self.path}: history query failed: {exc}") from exc
        # A read-only store over a file without rollups: computed from the events.
        lo = since // step * step  # the first point's start: its whole step is counted
        q = EventQuery(agent=agent, since=lo, until=until, limit=None, order="asc")
        return from_events((s.event for s in self.query(q)), agent, since, until, step)

    def query(self, query: EventQuery) -> Iterator[StoredEvent]:
        """Stream matching events, ordered by time then sequence; tombstones are skipped."""
        sql, params = _select(query, "seq, payload, hash, prev_hash")
        conn = self._reader()
        try:
            cursor = conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: query failed: {exc}") from exc
        return self._rows(cursor)

    @staticmethod
    def _rows(cursor: sqlite3.Cursor) -> Iterator[StoredEvent]:
        while True:
            batch = cursor.fetchmany(512)
            if not batch:
                return
            for seq, payload, h, prev in batch:
                yield StoredEvent(seq=seq, event=_decode_event(payload), hash=h, prev_hash=prev)

    def count(self, query: EventQuery) -> int:
        """How many (non-erased) events match."""
        sql, params = _select(msgspec.structs.replace(query, limit=None), "count(*)")
        sql = sql.split(" ORDER BY ")[0]
        row = self._reader().execute(sql, params).fetchone()
        return int(row[0])

    def counts_by(self, column: str, query: EventQuery) -> dict[str, int]:
        """Event counts grouped by ``agent``, ``event_type``, ``category`` or ``user``."""
        if column not in GROUPABLE_COLUMNS:
            raise ValueError(f"cannot group by {column!r}")
        sql, params = _select(msgspec.structs.replace(query, limit=None), f"{column}, count(*)")
        sql = sql.split(" ORDER BY ")[0] + f" GROUP BY {column}"
        return {str(k): int(v) for k, v in self._reader().execute(sql, params).fetchall()}

    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the newest row (the anchor when empty)."""
        conn = self._reader()
        row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        if row is not None:
            return int(row[0]), str(row[1])
        anchor = self._meta(conn)
        return int(anchor.get("anchor_seq", 0)), anchor.get("anchor_hash", GENESIS)

    def checkpoints(self) -> list[Checkpoint]:
        """Every stored checkpoint, oldest first."""
        rows = (
            self._reader()
            .execute(
                "SELECT stream, seq, head_hash, created_at, signature, public_key "
                "FROM checkpoints ORDER BY seq"
            )
            .fetchall()
        )
        return [checkpoint_from_row(r) for r in rows]

    def verify(self, *, public_key: str | None = None) -> VerifyReport:
        """Walk the whole chain from the anchor and check every checkpoint and anchored head."""
        conn = self._connect()
        try:
            meta = self._meta(conn)
            anchor_seq = int(meta.get("anchor_seq", 0))
            anchor_hash = meta.get("anchor_hash", GENESIS)
            cursor = conn.execute(
                "SELECT seq, prev_hash, hash, payload_sha256, payload, agent, event_type, ts, "
                "session_id, user, category FROM events ORDER BY seq"
            )

            def rows() -> Iterator[ChainRow]:
                while True:
                    batch = cursor.fetchmany(2048)
                    if not batch:
                        return
                    for r in batch:
                        payload = r[4]
                        if isinstance(payload, str):  # someone wrote text over the blob
                            payload = payload.encode()
                        # A tombstone keeps its category and time: what its prune record covers.
                        columns: dict[str, Any] = {"category": r[10], "timestamp": r[7]}
                        if payload is not None:
                            columns = {
                                "agent": r[5],
                                "event_type": r[6],
                                "timestamp": r[7],
                                "session_id": r[8],
                                "user": r[9],
                                "category": r[10],
                            }
                        yield ChainRow(r[0], r[1], r[2], r[3], payload, columns)

            checkpoints = self.checkpoints()
            anchors, anchor_problem = read_anchor_file(
                self.anchor_path, expected=bool(checkpoints) or anchor_seq > 0
            )
            key = public_key or meta.get("public_key")
            ledger = PruneLedger(
                _prune_sqlite.stored_records(conn), public_key=key, pinned=public_key is not None
            )
            return verify_rows(
                rows(),
                anchor_seq=anchor_seq,
                anchor_hash=anchor_hash,
                checkpoints=checkpoints,
                anchors=anchors,
                public_key=key,
                stream=str(self.path),
                anchor_problem=anchor_problem,
                pinned=public_key is not None,
                ledger=ledger,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: verification could not read the store: {exc}") from exc
        finally:
            conn.close()

    # -- retention ------------------------------------------------------------------------
    def prune(
        self, cutoffs: dict[str, float], *, dry_run: bool = False, actor: str | None = None
    ) -> PruneReport:
        """Erase events older than their category's cutoff (epoch seconds), keeping the chain.

        Erased rows become tombstones (content and indexed values gone; seq, hashes, time and
        category kept) so verification still passes. A prefix made only of tombstones up to a
        checkpoint signed by this store's key is then dropped whole, and that checkpoint's head
        becomes the anchor. Whatever changed is accounted for, in the same transaction, by a
        prune record signed with the checkpoint key (``actor`` names who ran it; by default
        ``user@host (pid N)``): without it ``verify`` would have to take the missing rows and
        the tombstones on trust.
        """
        with self._write_lock:
            return self._prune(cutoffs, dry_run=dry_run, actor=actor or default_actor())

    def _prune(self, cutoffs: dict[str, float], *, dry_run: bool, actor: str) -> PruneReport:
        conn = self._writer()
        dropped = 0
        record_id: int | None = None
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                meta = self._meta(conn)
                prior = (int(meta.get("anchor_seq", 0)), meta.get("anchor_hash", GENESIS))
                rules, spans = _prune_sqlite.plan(conn, cutoffs, self._retention_days)
                erased = {category: rule.tombstoned for category, rule in rules.items()}
                anchor = prior
                by_category: dict[str, int] = {}
                if not dry_run:
                    for category, cutoff in cutoffs.items():
                        if erased[category]:
                            conn.execute(
                                "UPDATE events SET payload = NULL, agent = '', event_type = '', "
                                "session_id = NULL, user = NULL "
                                "WHERE category = ? AND ts < ? AND payload IS NOT NULL",
                                (category, cutoff),
                            )
                    point = _prune_sqlite.drop_point(
                        conn, prior, self.signer.public_key, spans, self.path
                    )
                    if point is not None:
                        by_category = _prune_sqlite.count_by_category(conn, prior[0], point[0])
                        dropped = conn.execute(
                            "DELETE FROM events WHERE seq <= ?", (point[0],)
                        ).rowcount
                        conn.execute(
                            "UPDATE meta SET value = ? WHERE key = 'anchor_seq'", (str(point[0]),)
                        )
                        conn.execute(
                            "UPDATE meta SET value = ? WHERE key = 'anchor_hash'", (point[1],)
                        )
                        anchor = point
                        self._verified_to = None  # it may point into the rows just dropped
                    if spans or dropped:
                        record_id = _prune_sqlite.write_record(
                            conn,
                            self.signer,
                            now=self._clock(),
                            actor=actor,
                            rules=rules,
                            spans=spans,
                            by_category=by_category,
                            prior=prior,
                            anchor=anchor,
                        )
                conn.execute("ROLLBACK" if dry_run else "COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: prune failed: {exc}") from exc
        return PruneReport(
            dry_run=dry_run,
            erased=erased,
            dropped_rows=dropped,
            anchor_seq=anchor[0],
            record=record_id,
        )

    # -- kill state -----------------------------------------------------------------------
    def load_kills(self) -> list[KillRecord]:
        """Every kill row."""
        rows = self._reader().execute(f"SELECT {KILL_COLUMNS} FROM kills").fetchall()
        self._last_read_mono = time.monotonic()
        return [KillRecord.from_row(r) for r in rows]

    def put_kill(self, record: KillRecord) -> None:
        """Insert or replace a kill and bump ``kill_version``, in one committed transaction."""
        self._control(
            f"INSERT OR REPLACE INTO kills ({KILL_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
            record.as_row(),
        )

    def delete_kill(self, scope: str, target: str) -> None:
        """Remove a kill and bump ``kill_version``."""
        self._control("DELETE FROM kills WHERE scope = ? AND target = ?", (scope, target))

    def _control(self, sql: str, params: tuple[Any, ...]) -> None:
        with self._control_lock:
            conn = self._control_conn()
            try:
                with conn:
                    conn.execute(sql, params)
                    conn.execute(
                        "UPDATE meta SET value = CAST(value AS INTEGER) + 1 "
                        "WHERE key = 'kill_version'"
                    )
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: writing kill state failed: {exc}") from exc

    def _control_conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self, "_ctl", None)
        if conn is None:
            conn = self._connect()
            self._ctl = conn
        return conn

    def poll_kills(self) -> list[KillRecord] | None:
        """The kill table when ``kill_version`` moved since the last poll (any process)."""
        if self._poll_conn is None:
            self._poll_conn = self._connect()
        conn = self._poll_conn
        try:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            self._last_read_mono = time.monotonic()
            if version == self._last_data_version and self._last_kill_version is not None:
                return None
            self._last_data_version = version
            kv = conn.execute("SELECT value FROM meta WHERE key = 'kill_version'").fetchone()
            kill_version = str(kv[0]) if kv else "0"
            if kill_version == self._last_kill_version:
                return None
            first = self._last_kill_version is None
            self._last_kill_version = kill_version
            rows = conn.execute(f"SELECT {KILL_COLUMNS} FROM kills").fetchall()
        except sqlite3.Error:
            return None
        records = [KillRecord.from_row(r) for r in rows]
        return None if first and not records else records

    def kill_state_age(self) -> float:
        """Seconds since kill state was last read from the file (``inf`` if never): what
        ``kill_switch.fail_mode: closed`` compares with ``stale_after_seconds``."""
        last = self._last_read_mono
        return float("inf") if last is None else time.monotonic() - last

    # -- misc -----------------------------------------------------------------------------
    def _meta(self, conn: sqlite3.Connection) -> dict[str, str]:
        return {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta").fetchall()}

    def info(self) -> dict[str, Any]:
        """Row counts, head, anchor and file size (for ``status`` and readiness checks)."""
        conn = self._reader()
        total, live = conn.execute("SELECT count(*), count(payload) FROM events").fetchone()
        seq, head = self.head()
        meta = self._meta(conn)
        return {
            "path": str(self.path),
            "events": int(total),
            "erased": int(total) - int(live),
            "head_seq": seq,
            "head_hash": head,
            "anchor_seq": int(meta.get("anchor_seq", 0)),
            "checkpoints": conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0],
            "bytes": self.path.stat().st_size if self.path.exists() else 0,
        }

    def close(self) -> None:
        """Sign the head one last time (if this store appended) and close every connection.

        A store that only read, pruned or changed kill state signs nothing: it would vouch for
        rows it never wrote nor verified (and a ``prune --dry-run`` would change the file).
        Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        if not self.readonly and self._appended:
            with contextlib.suppress(StoreError):
                self.checkpoint()
        if not self.readonly and self._appended:
            # Keeps the planner's statistics fresh (SQLite's advice: run it before closing), so
            # counts by agent use the right index as the table grows.
            with contextlib.suppress(sqlite3.Error), self._write_lock:
                self._writer().execute("PRAGMA optimize")
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                continue


def _select(query: EventQuery, columns: str) -> tuple[str, list[Any]]:
    return select_events(query, columns)
