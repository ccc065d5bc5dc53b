"""Benchmark compliance exports of a large SQLite store (DESIGN.md: "Stream; never cap").

Builds (once, then reuses) a hash-chained SQLite store of ``--events`` events written straight
through ``SQLiteStore.append`` in batches of 10,000: 10 agents, a mix of action / tool_call /
llm_call with cost and latency, 2 % denials, 1 % errors, an anomaly and an alert every 10,000
events and a kill followed by a revive every 100,000. Then, for each format, it times
``redline.compliance.export(store, fmt, output=<file>)`` and prints events/s by wall clock and by
this process's CPU time (the two differ when the machine is shared), the file size and the peak
RSS so far. ``verify`` (the whole-chain walk the manifest carries) is timed on its own as well,
and each export is run with and without it.

    .venv/bin/python bench/export.py                          # 1,000,000 events, json and soc2
    .venv/bin/python bench/export.py --formats json,soc2,jsonl,csv --events 200000
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from redline.compliance import export
from redline.events import AgentEvent
from redline.store.base import EventQuery
from redline.store.sqlite import SQLiteStore

T0 = 1_700_000_000.0
BATCH = 10_000


def event(i: int) -> AgentEvent:
    """Event ``i`` of the synthetic fleet (deterministic)."""
    agent = f"agent-{i % 10}"
    ts = T0 + i * 0.01
    session = f"s-{i // 200}"
    user = f"u-{i % 997}"
    if i % 100_000 == 50_000:
        return AgentEvent(
            timestamp=ts,
            agent=agent,
            event_type="kill",
            level="critical",
            data={"scope": "agent", "target": agent, "reason": "cost spike", "actor": "policy:x"},
        )
    if i % 100_000 == 50_100:
        return AgentEvent(
            timestamp=ts,
            agent=f"agent-{(i - 100) % 10}",
            event_type="revive",
            data={
                "scope": "agent",
                "target": f"agent-{(i - 100) % 10}",
                "actor": "oncall",
                "killed_at": ts - 1.0,
            },
        )
    if i % 10_000 == 5_000:
        return AgentEvent(
            timestamp=ts,
            agent=agent,
            event_type="anomaly",
            data={"kind": "zscore", "rule": "cost", "severity": "high", "message": "cost z=4.2"},
        )
    if i % 10_000 == 5_001:
        return AgentEvent(
            timestamp=ts,
            agent=agent,
            event_type="alert",
            data={"id": f"al-{i}", "kind": "zscore", "severity": "high", "message": "cost"},
        )
    if i % 50 == 7:
        return AgentEvent(
            timestamp=ts,
            agent=agent,
            event_type="denial",
            session_id=session,
            user=user,
            data={"reason": "pii", "tool": "send_email"},
        )
    if i % 100 == 13:
        return AgentEvent(
            timestamp=ts, agent=agent, event_type="error", session_id=session, user=user,
            data={"error_type": "Timeout"},
        )  # fmt: skip
    if i % 3 == 0:
        return AgentEvent(
            timestamp=ts, agent=agent, event_type="llm_call", session_id=session, user=user,
            model="gpt-4o", cost_usd=0.0021, latency_ms=812.5, tokens_in=1200, tokens_out=180,
            status="ok",
        )  # fmt: skip
    return AgentEvent(
        timestamp=ts, agent=agent, event_type="tool_call", session_id=session, user=user,
        tool="search", latency_ms=35.0, status="ok", data={"query": "order status", "n": i},
    )  # fmt: skip


def build(path: Path, n: int) -> SQLiteStore:
    """Open the store at ``path``, (re)building it when it does not hold ``n`` events."""
    if path.exists():
        store = SQLiteStore(path)
        if store.count(EventQuery()) == n:
            return store
        store.close()
        for p in path.parent.glob(path.name + "*"):
            p.unlink()
    store = SQLiteStore(path)
    t = time.perf_counter()
    for start in range(0, n, BATCH):
        store.append([event(i) for i in range(start, min(n, start + BATCH))])
    dt = time.perf_counter() - t
    print(f"built {n:,} events in {dt:.1f}s ({n / dt:,.0f} events/s) at {path}", flush=True)
    return store


def rss_mb() -> float:
    """Peak RSS of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(label: str, n: int, fn: Any) -> Any:
    """Run ``fn``, print wall and CPU rates for ``n`` events, return its result."""
    w, c = time.perf_counter(), time.process_time()
    result = fn()
    dw, dc = time.perf_counter() - w, time.process_time() - c
    print(
        f"{label:<26} {dw:7.2f} s wall {n / dw:>10,.0f} ev/s   "
        f"{dc:7.2f} s cpu {n / dc:>10,.0f} ev/s   peak RSS {rss_mb():6.0f} MB",
        flush=True,
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--formats", default="json,soc2")
    parser.add_argument(
        "--db", type=Path, default=Path(tempfile.gettempdir()) / "redline-bench-export.db"
    )
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    n = args.events
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load {os.getloadavg()}")
    store = build(args.db, n)
    try:
        report = timed("verify() alone", n, store.verify)
        assert report.ok, report
        for fmt in args.formats.split(","):
            out = args.out / f"redline-export.{fmt}"
            for verify in (True, False):
                label = f"export {fmt} verify={verify}"
                run = functools.partial(export, store, fmt, output=out, verify=verify, now=T0 + n)
                manifest = timed(label, n, run)
                assert manifest["count"] == n, manifest["count"]
                assert verify is False or manifest["verification"]["ok"]
            print(f"{'':<26} {out.stat().st_size / 1e6:,.1f} MB written to {out}")
            out.unlink()
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
