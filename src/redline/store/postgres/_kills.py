"""Kill state by LISTEN/NOTIFY, and fleet leadership by advisory lock.

A change commits and ``NOTIFY``\\ s in one transaction. :meth:`Kills.poll_kills` drains
notifications without blocking from a dedicated connection and re-reads the table every
``reread_interval`` seconds and after every reconnect (notifications sent while disconnected are
lost); :meth:`Kills.kill_state_age` says how fresh the state is, so a monitor can fail closed
when PostgreSQL is unreachable.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import psycopg

from redline.exceptions import StoreError
from redline.store.base import KILL_COLUMNS, KillRecord
from redline.store.postgres._core import PgCore
from redline.store.postgres.migrations import lock_key

__all__ = ["Kills"]


class Kills(PgCore):
    """``load_kills``, ``put_kill``, ``delete_kill``, ``poll_kills``, ``kill_state_age``,
    ``try_lead`` and ``resign``."""

    def load_kills(self) -> list[KillRecord]:
        """Every kill row."""
        with self._reading() as conn:
            rows = conn.execute(f"SELECT {KILL_COLUMNS} FROM {self._q}.kills").fetchall()
        self._last_read_mono = time.monotonic()
        return [KillRecord.from_row(r) for r in rows]

    def put_kill(self, record: KillRecord) -> None:
        """Insert or replace a kill and ``NOTIFY`` its version, in one committed transaction."""
        self._kill_change(
            f"INSERT INTO {self._q}.kills ({KILL_COLUMNS}, version) "
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
            rows = conn.execute(f"SELECT {KILL_COLUMNS} FROM {self._q}.kills").fetchall()
        except psycopg.Error as exc:
            self._drop_listener(exc)
            return None
        self._last_read_mono = time.monotonic()
        records = frozenset(KillRecord.from_row(r) for r in rows)
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
