"""Benchmark budgets: what reserve() + commit() costs per model call, and how many reservations a
fleet of processes gets admitted per second, on each ledger.

In one run, per backend (memory: the per-process ledger; SQLite: the store's file; PostgreSQL:
the store's schema, skipped when unreachable):

* **reserve+commit** p50/p99 in one process, one thread, against a budget that never runs out,
  next to the floor the ledger cannot go below: one durable one-row upsert transaction on the
  same engine and connection settings (a reservation and its commit are two such
  transactions, so a ratio near 2 is the engine's own cost), measured alternately so both see
  the same machine;
* **admitted/s** with ``--procs`` processes (default 8) racing to reserve $0.0001 and commit it
  against one fleet budget, with the check that the budget was never over-admitted.

    .venv/bin/python bench/budgets.py
    .venv/bin/python bench/budgets.py --calls 2000 --procs 8 --seconds 5
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import secrets
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from redline import BudgetExceededError, Monitor, parse_config

PG_DSN = os.environ.get("REDLINE_TEST_PG_DSN", "host=127.0.0.1 port=5432 dbname=test user=postgres")


def _config(storage: dict[str, Any], limit: float) -> Any:
    return parse_config(
        {
            "storage": storage,
            "budgets": [
                {"name": "per-agent", "scope": "agent", "limit_usd": limit},
                {"name": "fleet", "scope": "fleet", "limit_usd": limit},
            ],
        }
    )


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency(storage: dict[str, Any], calls: int) -> tuple[list[float], list[float]]:
    """(reserve+commit samples, baseline transaction samples), in microseconds."""
    monitor = Monitor(_config(storage, 1e12))
    baseline = _baseline(monitor)
    ours: list[float] = []
    base: list[float] = []
    try:
        for i in range(calls + 50):
            t0 = time.perf_counter()
            monitor.reserve("agent-1", estimate_usd=0.001).commit(0.001)
            t1 = time.perf_counter()
            baseline()
            t2 = time.perf_counter()
            if i >= 50:  # warm-up: connections, caches
                ours.append((t1 - t0) * 1e6)
                base.append((t2 - t1) * 1e6)
    finally:
        monitor.close()
    return ours, base


def _baseline(monitor: Monitor) -> Any:
    store = monitor.store
    upsert = (
        "INSERT INTO bench_floor (k, n) VALUES (1, 1) "
        "ON CONFLICT (k) DO UPDATE SET n = bench_floor.n + 1"
    )
    if store.backend == "sqlite":
        conn = sqlite3.connect(store.path, isolation_level=None)  # type: ignore[attr-defined]
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE IF NOT EXISTS bench_floor (k INTEGER PRIMARY KEY, n INTEGER)")

        def sqlite_tx() -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(upsert)
            conn.execute("COMMIT")

        return sqlite_tx
    if store.backend == "postgres":
        reading = store._reading  # type: ignore[attr-defined]  # the ledger's own pool
        schema = store._q  # type: ignore[attr-defined]
        with reading() as conn:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {schema}.bench_floor (k int PRIMARY KEY, n int)"
            )
        pg_upsert = upsert.replace("bench_floor", f"{schema}.bench_floor", 1)

        def pg_tx() -> None:
            with reading() as conn, conn.transaction():
                conn.execute(pg_upsert)

        return pg_tx
    return lambda: None


def _racer(storage: dict[str, Any], limit: float, seconds: float, start: Any, out: Any) -> None:
    monitor = Monitor(_config(storage, limit))
    start.wait()
    admitted = denied = 0
    deadline = time.perf_counter() + seconds
    agent = f"agent-{os.getpid()}"
    while time.perf_counter() < deadline:
        try:
            monitor.reserve(agent, estimate_usd=0.0001).commit(0.0001)
            admitted += 1
        except BudgetExceededError:
            denied += 1
    monitor.close()
    out.put((admitted, denied))


def throughput(storage: dict[str, Any], procs: int, seconds: float) -> tuple[float, bool]:
    """Admitted reservations per second across ``procs`` processes, and whether the fleet
    budget held (admitted spend never above the limit)."""
    limit = 0.0001 * 10_000_000  # far above what a run admits: this measures throughput
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    out = ctx.Queue()
    workers = [
        ctx.Process(target=_racer, args=(storage, limit, seconds, start, out)) for _ in range(procs)
    ]
    for w in workers:
        w.start()
    time.sleep(3.0)  # let every process import and open its monitor before the gun
    start.set()
    results = [out.get(timeout=seconds + 120) for _ in workers]
    for w in workers:
        w.join()
    admitted = sum(a for a, _ in results)
    with Monitor(_config(storage, limit)) as monitor:
        fleet = [s for s in monitor.budgets() if s.name == "fleet"]
    spent = fleet[0].spent_usd if fleet else 0.0
    held = abs(spent - admitted * 0.0001) < 1e-6 and spent <= limit
    return admitted / seconds, held


def _postgres() -> dict[str, Any] | None:
    try:
        import psycopg

        with psycopg.connect(PG_DSN, connect_timeout=3):
            pass
    except Exception:  # no driver or no server: the row is skipped, and says so
        return None
    return {"backend": "postgres", "dsn": PG_DSN, "schema": f"bench_{secrets.token_hex(4)}"}


def _drop(storage: dict[str, Any]) -> None:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {storage['schema']} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--procs", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="redline-bench-budgets-"))
    backends: list[tuple[str, dict[str, Any] | None]] = [
        ("memory", {}),
        ("sqlite", {"path": str(tmp / "events.db")}),
        ("postgres", _postgres()),
    ]
    print(f"reserve()+commit() per call, {args.calls} calls, one thread (µs)")
    print(f"{'ledger':<10} {'p50':>8} {'p99':>8} {'base p50':>9} {'base p99':>9} {'p50 ratio':>9}")
    for name, storage in backends:
        if storage is None:
            print(f"{name:<10} skipped: PostgreSQL unreachable at {PG_DSN!r}")
            continue
        ours, base = latency(storage, args.calls)
        ratio = statistics.median(ours) / max(statistics.median(base), 1e-9)
        print(
            f"{name:<10} {_pct(ours, 0.5):8.1f} {_pct(ours, 0.99):8.1f} "
            f"{_pct(base, 0.5):9.1f} {_pct(base, 0.99):9.1f} "
            f"{ratio if name != 'memory' else float('nan'):9.1f}"
        )
    print()
    print(
        f"admitted reservations/s, {args.procs} processes, {args.seconds:.0f} s, one fleet budget"
    )
    print(f"{'ledger':<10} {'admitted/s':>11} {'budget held':>12}")
    for name, storage in backends[1:]:
        if storage is None:
            print(f"{name:<10} skipped")
            continue
        race = (
            {"path": str(tmp / "race.db")}
            if name == "sqlite"
            else {**storage, "schema": f"bench_{secrets.token_hex(4)}"}
        )
        rate, held = throughput(race, args.procs, args.seconds)
        print(f"{name:<10} {rate:11.0f} {'yes' if held else 'NO':>12}")
        if name == "postgres":
            with contextlib.suppress(Exception):
                _drop(race)
    for name, storage in backends:
        if name == "postgres" and storage is not None:
            with contextlib.suppress(Exception):
                _drop(storage)


if __name__ == "__main__":
    main()
