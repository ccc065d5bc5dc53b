"""The budget ledger in the store's own database, shared by every process that opens it.

SQLite: each reservation is one ``BEGIN IMMEDIATE`` transaction (the file's write lock, so racing
processes are serialised by SQLite itself). PostgreSQL: one transaction that first takes each
budget key's transaction-scoped advisory lock, in a fixed order (no deadlock between two
reservations naming the same keys in another order), then reads and writes. The reads are the
current period's spend buckets and the unexpired holds of those keys; the tables are small
(at most ~61 buckets per rolling key, one row per hold in flight), so each reservation is a few
index lookups.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Final

from redline.control.budgets.ledger import Claim, Refusal, Usage, overruns
from redline.exceptions import StoreError

__all__ = ["POSTGRES_MIGRATION", "SQLITE_SCHEMA", "PostgresLedger", "SQLiteLedger"]

SQLITE_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS budget_spend (
    budget TEXT NOT NULL, key TEXT NOT NULL, bucket REAL NOT NULL, spent REAL NOT NULL,
    PRIMARY KEY (budget, key, bucket)
);
CREATE TABLE IF NOT EXISTS budget_holds (
    rid TEXT NOT NULL, budget TEXT NOT NULL, key TEXT NOT NULL,
    amount REAL NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (rid, budget, key)
);
CREATE INDEX IF NOT EXISTS ix_budget_holds_key ON budget_holds(budget, key, expires_at);
"""


#: The statements of PostgreSQL migration 4 (``{s}``: the quoted schema). A reservation and a
#: commit are each one function call (one round trip, then COMMIT): the advisory locks, the
#: reads and the writes run server-side. ``budget_reserve`` applies :func:`overruns` (the same
#: rule, in SQL) and returns the first claim it would overrun, or no row when admitted.
POSTGRES_MIGRATION: Final = (
    """CREATE TABLE IF NOT EXISTS {s}.budget_spend (
        budget text COLLATE "C" NOT NULL, key text COLLATE "C" NOT NULL,
        bucket double precision NOT NULL, spent double precision NOT NULL,
        PRIMARY KEY (budget, key, bucket))""",
    """CREATE TABLE IF NOT EXISTS {s}.budget_holds (
        rid text NOT NULL, budget text COLLATE "C" NOT NULL, key text COLLATE "C" NOT NULL,
        amount double precision NOT NULL, expires_at double precision NOT NULL,
        PRIMARY KEY (rid, budget, key))""",
    "CREATE INDEX IF NOT EXISTS ix_budget_holds_key ON {s}.budget_holds (budget, key, expires_at)",
    """CREATE OR REPLACE FUNCTION {s}.budget_reserve(
        p_rid text, p_budgets text[], p_keys text[], p_since double precision[],
        p_limits double precision[], p_amount double precision, p_expires double precision,
        p_now double precision, p_locks bigint[])
    RETURNS TABLE (idx integer, spent double precision, reserved double precision)
    LANGUAGE plpgsql AS $$
    DECLARE
        i integer;
        v_spent double precision;
        v_held double precision;
    BEGIN
        PERFORM pg_advisory_xact_lock(l) FROM unnest(p_locks) AS l;
        FOR i IN 1 .. coalesce(array_length(p_budgets, 1), 0) LOOP
            SELECT coalesce(sum(b.spent), 0) INTO v_spent FROM {s}.budget_spend b
             WHERE b.budget = p_budgets[i] AND b.key = p_keys[i] AND b.bucket >= p_since[i];
            SELECT coalesce(sum(h.amount), 0) INTO v_held FROM {s}.budget_holds h
             WHERE h.budget = p_budgets[i] AND h.key = p_keys[i] AND h.expires_at > p_now;
            IF v_spent + v_held + p_amount > p_limits[i] + 1e-9
               OR (p_amount <= 0 AND v_spent + v_held >= p_limits[i] - 1e-9) THEN
                idx := i - 1; spent := v_spent; reserved := v_held;
                RETURN NEXT;
                RETURN;
            END IF;
        END LOOP;
        DELETE FROM {s}.budget_holds h USING unnest(p_budgets, p_keys) AS u(b, k)
         WHERE h.budget = u.b AND h.key = u.k AND h.expires_at <= p_now;
        INSERT INTO {s}.budget_holds (rid, budget, key, amount, expires_at)
        SELECT p_rid, u.b, u.k, p_amount, p_expires FROM unnest(p_budgets, p_keys) AS u(b, k);
    END $$""",
    """CREATE OR REPLACE FUNCTION {s}.budget_add(
        p_rid text, p_budgets text[], p_keys text[], p_since double precision[],
        p_buckets double precision[], p_costs double precision[], p_locks bigint[])
    RETURNS SETOF double precision
    LANGUAGE plpgsql AS $$
    DECLARE
        i integer;
        v_total double precision;
    BEGIN
        PERFORM pg_advisory_xact_lock(l) FROM unnest(p_locks) AS l;
        IF p_rid IS NOT NULL THEN
            DELETE FROM {s}.budget_holds WHERE rid = p_rid;
        END IF;
        FOR i IN 1 .. coalesce(array_length(p_budgets, 1), 0) LOOP
            INSERT INTO {s}.budget_spend AS b (budget, key, bucket, spent)
            VALUES (p_budgets[i], p_keys[i], p_buckets[i], p_costs[i])
            ON CONFLICT (budget, key, bucket) DO UPDATE SET spent = b.spent + excluded.spent;
            DELETE FROM {s}.budget_spend
             WHERE budget = p_budgets[i] AND key = p_keys[i] AND bucket < p_since[i];
            SELECT coalesce(sum(b.spent), 0) INTO v_total FROM {s}.budget_spend b
             WHERE b.budget = p_budgets[i] AND b.key = p_keys[i] AND b.bucket >= p_since[i];
            RETURN NEXT v_total;
        END LOOP;
    END $$""",
)


class _SQLLedger:
    """The statements both databases run; subclasses say how a transaction is opened."""

    shared = True
    _p = "?"  # the parameter marker
    _t = ""  # the schema-qualified table prefix

    def _tx(self, claims: Sequence[Claim], write: bool = True) -> AbstractContextManager[Any]:
        """One transaction; a writing one holds each claim's key against other writers."""
        raise NotImplementedError

    def _usage(self, cur: Any, claim: Claim, now: float) -> Usage:
        p, t = self._p, self._t
        spent, reserved = cur.execute(
            f"SELECT (SELECT coalesce(sum(spent), 0) FROM {t}budget_spend "
            f"WHERE budget = {p} AND key = {p} AND bucket >= {p}), "
            f"(SELECT coalesce(sum(amount), 0) FROM {t}budget_holds "
            f"WHERE budget = {p} AND key = {p} AND expires_at > {p})",
            (claim.budget, claim.key, claim.since, claim.budget, claim.key, now),
        ).fetchone()
        return Usage(float(spent), float(reserved))

    def reserve(
        self, claims: Sequence[Claim], rid: str, amount: float, expires_at: float, now: float
    ) -> Refusal | None:
        p, t = self._p, self._t
        with self._tx(claims) as cur:
            for claim in claims:
                use = self._usage(cur, claim, now)
                if overruns(use, amount, claim.limit):
                    return Refusal(claim, use)
            cur.executemany(
                f"INSERT INTO {t}budget_holds (rid, budget, key, amount, expires_at) "
                f"VALUES ({p}, {p}, {p}, {p}, {p})",
                [(rid, c.budget, c.key, amount, expires_at) for c in claims],
            )
            if claims:
                cur.execute(f"DELETE FROM {t}budget_holds WHERE expires_at <= {p}", (now,))
        return None

    def commit(self, rid: str, claims: Sequence[Claim], cost: float) -> list[float]:
        with self._tx(claims) as cur:
            cur.execute(f"DELETE FROM {self._t}budget_holds WHERE rid = {self._p}", (rid,))
            return self._add(cur, [(c, cost) for c in claims])

    def _add(self, cur: Any, items: Sequence[tuple[Claim, float]]) -> list[float]:
        p, t = self._p, self._t
        cur.executemany(
            f"INSERT INTO {t}budget_spend AS s (budget, key, bucket, spent) "
            f"VALUES ({p}, {p}, {p}, {p}) "
            "ON CONFLICT (budget, key, bucket) DO UPDATE SET spent = s.spent + excluded.spent",
            [(c.budget, c.key, c.bucket, cost) for c, cost in items],
        )
        cur.executemany(
            f"DELETE FROM {t}budget_spend WHERE budget = {p} AND key = {p} AND bucket < {p}",
            list({(c.budget, c.key, c.since) for c, _ in items}),
        )
        return [
            float(
                cur.execute(
                    f"SELECT coalesce(sum(spent), 0) FROM {t}budget_spend "
                    f"WHERE budget = {p} AND key = {p} AND bucket >= {p}",
                    (c.budget, c.key, c.since),
                ).fetchone()[0]
            )
            for c, _ in items
        ]

    def release(self, rid: str) -> None:
        with self._tx((), write=True) as cur:
            cur.execute(f"DELETE FROM {self._t}budget_holds WHERE rid = {self._p}", (rid,))

    def add_spend(self, items: Sequence[tuple[Claim, float]]) -> list[float]:
        if not items:
            return []
        with self._tx([c for c, _ in items]) as cur:
            return self._add(cur, items)

    def keys(self, budgets: Sequence[str], now: float) -> list[tuple[str, str]]:
        if not budgets:
            return []
        p, t = self._p, self._t
        marks = ", ".join([p] * len(budgets))
        with self._tx((), write=False) as cur:
            rows = cur.execute(
                f"SELECT budget, key FROM {t}budget_spend WHERE budget IN ({marks}) "
                f"UNION SELECT budget, key FROM {t}budget_holds "
                f"WHERE budget IN ({marks}) AND expires_at > {p}",
                (*budgets, *budgets, now),
            ).fetchall()
        return sorted((str(b), str(k)) for b, k in rows)

    def usage(self, claims: Sequence[Claim], now: float) -> list[Usage]:
        with self._tx((), write=False) as cur:
            return [self._usage(cur, c, now) for c in claims]


class SQLiteLedger(_SQLLedger):
    """The ledger in the SQLite file of the store (its own connections, one per thread)."""

    def __init__(
        self, path: str | Path, *, busy_timeout_ms: int = 30_000, synchronous: str = "NORMAL"
    ) -> None:
        self.path = Path(path)
        self._busy = busy_timeout_ms
        self._synchronous = synchronous
        self._local = threading.local()
        # A read-only file: the ledger reads what is there (or reports its absence).
        with contextlib.suppress(sqlite3.OperationalError):
            self._conn().executescript(SQLITE_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=self._busy / 1000, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA busy_timeout={self._busy}")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            self._local.conn = conn
        return conn

    def _tx(self, claims: Sequence[Claim], write: bool = True) -> AbstractContextManager[Any]:
        return _sqlite_tx(self._conn(), write)

    def after_fork(self) -> None:
        self._local = threading.local()  # the parent's connections must not cross the fork

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class _sqlite_tx(AbstractContextManager[sqlite3.Cursor]):
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error); errors as ``StoreError``."""

    def __init__(self, conn: sqlite3.Connection, write: bool) -> None:
        self._conn = conn
        self._begin = "BEGIN IMMEDIATE" if write else "BEGIN"

    def __enter__(self) -> sqlite3.Cursor:
        try:
            self._conn.execute(self._begin)
        except sqlite3.Error as exc:
            raise StoreError(f"budget ledger: {exc}") from exc
        return self._conn.cursor()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self._conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")
        except sqlite3.Error as error:
            if exc_type is None:
                raise StoreError(f"budget ledger: {error}") from error
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"budget ledger: {exc}") from exc


class PostgresLedger(_SQLLedger):
    """The ledger in the PostgreSQL schema of the store, through the store's pool.

    Reservations and commits call the migration's functions (one round trip each, plus the
    COMMIT); reads are the shared statements.
    """

    _p = "%s"

    def __init__(
        self,
        connection: Callable[[], AbstractContextManager[Any]],
        schema_sql: str,
        lock_key: Callable[[str], int],
    ) -> None:
        self._connection = connection
        self._t = schema_sql + "."
        self._lock_key = lock_key

    def _locks(self, claims: Sequence[Claim]) -> list[int]:
        # Sorted: two reservations naming the same keys lock them in one order (no deadlock).
        return sorted({self._lock_key(f"budget:{c.budget}:{c.key}") for c in claims})

    def reserve(
        self, claims: Sequence[Claim], rid: str, amount: float, expires_at: float, now: float
    ) -> Refusal | None:
        if not claims:
            return None
        with self._tx(()) as cur:
            row = cur.execute(
                f"SELECT idx, spent, reserved FROM {self._t}budget_reserve"
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    rid,
                    [c.budget for c in claims],
                    [c.key for c in claims],
                    [c.since for c in claims],
                    [c.limit for c in claims],
                    amount,
                    expires_at,
                    now,
                    self._locks(claims),
                ),
            ).fetchone()
        if row is None:
            return None
        return Refusal(claims[row[0]], Usage(float(row[1]), float(row[2])))

    def commit(self, rid: str, claims: Sequence[Claim], cost: float) -> list[float]:
        return self._add_all(rid, [(c, cost) for c in claims])

    def add_spend(self, items: Sequence[tuple[Claim, float]]) -> list[float]:
        return self._add_all(None, items) if items else []

    def _add_all(self, rid: str | None, items: Sequence[tuple[Claim, float]]) -> list[float]:
        claims = [c for c, _ in items]
        with self._tx(()) as cur:
            rows = cur.execute(
                f"SELECT * FROM {self._t}budget_add(%s, %s, %s, %s, %s, %s, %s)",
                (
                    rid,
                    [c.budget for c in claims],
                    [c.key for c in claims],
                    [c.since for c in claims],
                    [c.bucket for c in claims],
                    [cost for _, cost in items],
                    self._locks(claims),
                ),
            ).fetchall()
        return [float(r[0]) for r in rows]

    def _tx(self, claims: Sequence[Claim], write: bool = True) -> AbstractContextManager[Any]:
        return self._pg_tx()

    @contextlib.contextmanager
    def _pg_tx(self) -> Iterator[Any]:
        import psycopg

        try:
            with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
                yield cur
        except psycopg.Error as exc:
            raise StoreError(f"budget ledger: {exc}") from exc

    def after_fork(self) -> None:
        return None  # the store renews its pool

    def close(self) -> None:
        return None  # the store's pool
