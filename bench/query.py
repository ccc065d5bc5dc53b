"""Benchmark store queries on a 10-million-event SQLite store (DESIGN.md, "Performance").

The store is built once through ``SQLiteStore.append`` in batches of 50,000 (so every row is
encoded, hashed and chained exactly as in production) and cached at
``bench/results/query-10m.db`` (gitignored); later runs reuse it. The data: the shared event mix
(``bench/_peer_record.Mix``) for 20 agents over 10 days (~11.6 events/s, so one agent has ~2,080
events in any hour and each session 500 events).

Timed, each as 1 warm-up run then 20 runs (p50, p99 = max of 20, and the rows returned), with
"now" = the newest event's time and every result fully consumed (rows decoded into events):

* one agent's last hour, ``limit=1000`` (the CLI's and API's default page) and without a limit;
* one session (all 500 events);
* one event type over a day (``denial``: ~20,000 rows decoded), and a ``count`` of a common type
  (``tool_call``) over a day;
* count by agent, over the last hour and over all 10 M rows.

``EXPLAIN QUERY PLAN`` of each is printed, so a regression to a scan shows. Target (DESIGN.md):
< 50 ms for one agent's last hour. Results go to ``bench/results/query.json``.

    .venv/bin/python bench/query.py                 # build (first time: several minutes) and time
    .venv/bin/python bench/query.py --rows 1000000  # a smaller store (cached separately)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _peer_record import Mix
from redline import AgentEvent
from redline.store.base import EventQuery
from redline.store.sqlite import SQLiteStore, _select

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
T0 = 1_700_000_000.0
AGENTS = 20
DAYS = 10
BATCH = 50_000
RUNS = 20
TARGET_MS = 50.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def spec_of(rows: int) -> dict[str, Any]:
    return {"rows": rows, "agents": AGENTS, "days": DAYS, "t0": T0, "version": 1}


def build(path: Path, rows: int) -> dict[str, Any]:
    """Append ``rows`` events through SQLiteStore in batches of 50k; record the spec in meta."""
    for p in path.parent.glob(path.name + "*"):
        p.unlink()
    rate = rows / (DAYS * 86_400.0)
    mix = Mix(rate, agents=AGENTS, t0=T0)
    store = SQLiteStore(path, checkpoint_every=100_000)
    started = time.perf_counter()
    appended = 0
    for start in range(0, rows, BATCH):
        batch = []
        for i in range(start, min(rows, start + BATCH)):
            t, agent, etype, data, session, cost, latency = mix.spec(i)
            batch.append(
                AgentEvent(
                    timestamp=t,
                    agent=agent,
                    event_type=etype,
                    data=data,
                    session_id=session,
                    cost_usd=cost,
                    latency_ms=latency,
                )
            )
        store.append(batch)
        appended += len(batch)
        if appended % 1_000_000 == 0:
            rate_now = appended / (time.perf_counter() - started)
            log(f"   {appended:,} rows ({rate_now:,.0f} rows/s incl. building events)")
    elapsed = time.perf_counter() - started
    store.close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('bench_spec', ?)",
            (json.dumps(spec_of(rows)),),
        )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return {"seconds": elapsed, "rows_per_s": rows / elapsed}


def cached(path: Path, rows: int) -> bool:
    if not path.exists():
        return False
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        row = conn.execute("SELECT value FROM meta WHERE key = 'bench_spec'").fetchone()
        conn.close()
    except sqlite3.Error:
        return False
    return row is not None and json.loads(row[0]) == spec_of(rows)


def timed(fn: Callable[[], int]) -> dict[str, Any]:
    first_t = time.perf_counter()
    first_rows = fn()
    first = (time.perf_counter() - first_t) * 1e3
    samples = []
    for _ in range(RUNS):
        t = time.perf_counter()
        rows = fn()
        samples.append((time.perf_counter() - t) * 1e3)
        assert rows == first_rows
    samples.sort()
    return {
        "rows": first_rows,
        "first_ms": first,
        "p50_ms": statistics.median(samples),
        "p99_ms": samples[-1],
        "min_ms": samples[0],
        "runs": RUNS,
    }


def plan(
    store: SQLiteStore,
    query: EventQuery,
    columns: str = "seq, payload, hash, prev_hash",
    group_by: str | None = None,
) -> str:
    """The plan of the SQL the store runs (count/counts_by drop ORDER BY, add GROUP BY)."""
    sql, params = _select(query, columns)
    if columns.startswith(("count(", "agent, count(")) or group_by:
        sql = sql.split(" ORDER BY ")[0]
    if group_by:
        sql += f" GROUP BY {group_by}"
    conn = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True)
    try:
        rows = conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    finally:
        conn.close()
    return "; ".join(str(r[-1]) for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    rows = args.rows
    label = f"{rows // 1_000_000}m" if rows % 1_000_000 == 0 else str(rows)
    path = RESULTS / f"query-{label}.db"
    RESULTS.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {
        "machine": {
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "platform": platform.platform(),
            "loadavg_at_start": os.getloadavg(),
        },
        "command": " ".join([".venv/bin/python", "bench/query.py", *sys.argv[1:]]),
        "rows": rows,
    }
    if args.rebuild or not cached(path, rows):
        log(f"building {rows:,} rows at {path} (batches of {BATCH:,})")
        out["build"] = build(path, rows)
        log(f"   built in {out['build']['seconds']:.0f}s")
    else:
        log(f"reusing {path}")
        out["build"] = "cached"

    store = SQLiteStore(path, readonly=True)
    info = store.info()
    out["store"] = {"events": info["events"], "bytes": info["bytes"]}
    now = next(store.query(EventQuery(limit=1))).event.timestamp
    agent = "agent-007"
    middle = rows // 2
    session = f"{agent}-s{middle // AGENTS // 500}"

    def consume(q: EventQuery) -> Callable[[], int]:
        return lambda: sum(1 for _ in store.query(q))

    cases: list[tuple[str, Callable[[], int], str]] = []
    q_hour = EventQuery(agent=agent, since=now - 3600, limit=1000)
    cases.append(("agent last hour, limit 1000", consume(q_hour), plan(store, q_hour)))
    q_hour_all = EventQuery(agent=agent, since=now - 3600)
    cases.append(("agent last hour, no limit", consume(q_hour_all), plan(store, q_hour_all)))
    q_session = EventQuery(session_id=session)
    cases.append(("one session", consume(q_session), plan(store, q_session)))
    q_type = EventQuery(event_type="denial", since=now - 86_400)
    cases.append(("event type over a day (denial)", consume(q_type), plan(store, q_type)))
    q_count = EventQuery(event_type="tool_call", since=now - 86_400)
    cases.append(
        (
            "count one type over a day (tool_call)",
            lambda: store.count(q_count),
            plan(store, q_count, "count(*)"),
        )
    )
    q_agents_hour = EventQuery(since=now - 3600)
    cases.append(
        (
            "count by agent, last hour",
            lambda: sum(store.counts_by("agent", q_agents_hour).values()),
            plan(store, q_agents_hour, "agent, count(*)", "agent"),
        )
    )
    q_agents = EventQuery()
    cases.append(
        (
            "count by agent, all rows",
            lambda: sum(store.counts_by("agent", q_agents).values()),
            plan(store, q_agents, "agent, count(*)", "agent"),
        )
    )

    out["queries"] = {}
    for name, fn, query_plan in cases:
        log(f"timing: {name}")
        result = timed(fn)
        result["plan"] = query_plan
        out["queries"][name] = result
    store.close()
    out["machine"]["loadavg_at_end"] = os.getloadavg()
    (RESULTS / "query.json").write_text(json.dumps(out, indent=2, default=str))

    m = out["machine"]
    print(f"machine: nproc={m['nproc']} python={m['python']} sqlite={m['sqlite']}")
    print(f"load average: start {m['loadavg_at_start']}, end {m['loadavg_at_end']}")
    print(f"store: {info['events']:,} events, {info['bytes'] / 1e9:.2f} GB; build: {out['build']}")
    for name, r in out["queries"].items():
        flag = ""
        if name.startswith("agent last hour"):
            flag = "  PASS" if r["p50_ms"] < TARGET_MS else "  FAIL"
        print(
            f"{name:<40} p50 {r['p50_ms']:9.2f} ms  p99 {r['p99_ms']:9.2f} ms  first "
            f"{r['first_ms']:9.2f} ms  rows {r['rows']:>9,}{flag}"
        )
        print(f"{'':<40} plan: {r['plan']}")


if __name__ == "__main__":
    main()
